/// Writes a head's pieces into memory a `ByteBuffer` lent for one access
/// (`writeWithUnsafeMutableBytes`): each `ByteBuffer.write…` call checks capacity and uniqueness
/// and costs an exclusivity check, and an answer's head is a dozen pieces. The caller lends enough
/// room for every piece.
struct HeadWriter {
    private let destination: UnsafeMutableRawBufferPointer
    /// How many bytes have been written.
    private(set) var count = 0

    init(_ destination: UnsafeMutableRawBufferPointer) {
        self.destination = destination
    }

    mutating func put(_ bytes: Slice<UnsafeRawBufferPointer>) {
        guard !bytes.isEmpty else { return }
        precondition(count + bytes.count <= destination.count, "the head's room was too small")
        UnsafeMutableRawBufferPointer(rebasing: destination[count..<count + bytes.count])
            .copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes))
        count += bytes.count
    }

    mutating func put(_ text: StaticString) {
        put(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount)[...])
    }

    mutating func put(byte: UInt8) {
        precondition(count < destination.count, "the head's room was too small")
        destination[count] = byte
        count += 1
    }
}
