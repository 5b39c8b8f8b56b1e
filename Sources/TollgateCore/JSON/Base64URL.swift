/// Base64url without padding (RFC 7515 §2), strict.
///
/// Hand-written rather than Foundation's `Data(base64Encoded:)`: that one wants the standard alphabet
/// and padding, so every token segment would first be copied and rewritten. This decodes straight
/// from the token's UTF-8 bytes and refuses padding, whitespace and non-canonical trailing bits.
public enum Base64URL {
    private static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
        return table
    }()

    private static let encodeTable: [UInt8] = Array(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8
    )

    /// Decodes unpadded base64url; `nil` on any character outside the alphabet or an impossible length.
    public static func decode(_ input: some Collection<UInt8>) -> [UInt8]? {
        if let result = input.withContiguousStorageIfAvailable({ decode($0) }) { return result }
        return Array(input).withUnsafeBufferPointer { decode($0) }
    }

    /// Four characters to three bytes at a time into storage sized once.
    public static func decode(_ input: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        let count = input.count
        if count % 4 == 1 { return nil }
        let outputCount = count * 3 / 4
        var valid = true
        let output = decodeTable.withUnsafeBufferPointer { table in
            [UInt8](unsafeUninitializedCapacity: outputCount) { buffer, initialized in
                var read = 0
                var written = 0
                while read + 4 <= count {
                    let a = UInt32(table[Int(input[read])])
                    let b = UInt32(table[Int(input[read + 1])])
                    let c = UInt32(table[Int(input[read + 2])])
                    let d = UInt32(table[Int(input[read + 3])])
                    if (a | b | c | d) & 0xC0 != 0 {
                        valid = false
                        return
                    }
                    let word = (a << 18) | (b << 12) | (c << 6) | d
                    buffer[written] = UInt8(truncatingIfNeeded: word >> 16)
                    buffer[written + 1] = UInt8(truncatingIfNeeded: word >> 8)
                    buffer[written + 2] = UInt8(truncatingIfNeeded: word)
                    read += 4
                    written += 3
                }
                let rest = count - read
                if rest >= 2 {
                    let a = UInt32(table[Int(input[read])])
                    let b = UInt32(table[Int(input[read + 1])])
                    let c = rest == 3 ? UInt32(table[Int(input[read + 2])]) : 0
                    if (a | b | c) & 0xC0 != 0 {
                        valid = false
                        return
                    }
                    let word = (a << 18) | (b << 12) | (c << 6)
                    buffer[written] = UInt8(truncatingIfNeeded: word >> 16)
                    written += 1
                    // Leftover bits must be zero, otherwise two encodings decode to the same bytes.
                    if rest == 2 {
                        if b & 0x0F != 0 { valid = false }
                    } else {
                        buffer[written] = UInt8(truncatingIfNeeded: word >> 8)
                        written += 1
                        if c & 0x03 != 0 { valid = false }
                    }
                }
                initialized = written
            }
        }
        return valid ? output : nil
    }

    public static func decode(_ string: String) -> [UInt8]? {
        decode(string.utf8)
    }

    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        var output = [UInt8]()
        output.reserveCapacity((bytes.count * 4 + 2) / 3)
        let table = encodeTable
        var accumulator: UInt32 = 0
        var bits = 0
        for byte in bytes {
            accumulator = (accumulator << 8) | UInt32(byte)
            bits += 8
            while bits >= 6 {
                bits -= 6
                output.append(table[Int((accumulator >> UInt32(bits)) & 0x3F)])
            }
        }
        if bits > 0 {
            output.append(table[Int((accumulator << UInt32(6 - bits)) & 0x3F)])
        }
        return String(decoding: output, as: UTF8.self)
    }
}
