import NIOCore

/// RFC 9112 syntax shared by the request and the response parser: field lines and decimal
/// lengths, over bytes whose CTLs, bare CRs and bare LFs `HTTP1SectionScanner` has refused.
enum HTTP1Syntax {
    /// Calls `field` with the name, the trimmed value and the end (after its CRLF) of each field
    /// line from `start` to the section's final empty line.
    /// - Throws: `HTTP1ParseError` for obs-fold, whitespace before a colon or a name that is not a
    ///   token.
    static func parseFields(
        _ bytes: UnsafeRawBufferPointer,
        from start: Int,
        _ field: (UnsafeRawBufferPointer.SubSequence, UnsafeRawBufferPointer.SubSequence, Int) throws -> Void
    ) throws {
        var index = start
        while bytes[index] != .cr {
            if bytes[index] == .space || bytes[index] == .htab {
                throw HTTP1ParseError(.malformed, "obs-fold (a field line starting with whitespace)")
            }
            let nameStart = index
            while bytes[index].isTokenCharacter { index += 1 }
            guard bytes[index] == UInt8(ascii: ":") else {
                throw HTTP1ParseError(
                    .malformed,
                    bytes[index] == .space || bytes[index] == .htab
                        ? "whitespace between a field name and its colon" : "a field line without a valid name"
                )
            }
            guard index > nameStart else { throw HTTP1ParseError(.malformed, "an empty field name") }
            let name = bytes[nameStart..<index]
            index += 1
            while bytes[index] == .space || bytes[index] == .htab { index += 1 }
            let valueStart = index
            // A value (a token of a kilobyte) is found to its end eight bytes at a time.
            while index + 8 <= bytes.count,
                !ByteWord.has(.cr, in: bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self))
            {
                index += 8
            }
            while bytes[index] != .cr { index += 1 }
            var valueEnd = index
            while valueEnd > valueStart, bytes[valueEnd - 1] == .space || bytes[valueEnd - 1] == .htab {
                valueEnd -= 1
            }
            index += 2
            try field(name, bytes[valueStart..<valueEnd], index)
        }
    }

    /// `1*DIGIT`, at most 18 digits.
    static func decimal(_ bytes: UnsafeRawBufferPointer.SubSequence) -> Int? {
        guard !bytes.isEmpty, bytes.count <= 18 else { return nil }
        var value = 0
        for byte in bytes {
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return value
    }

    static var contentLength: UnsafeBufferPointer<UInt8> { ascii("content-length") }
    static var transferEncoding: UnsafeBufferPointer<UInt8> { ascii("transfer-encoding") }
    static var connection: UnsafeBufferPointer<UInt8> { ascii("connection") }
    static var upgrade: UnsafeBufferPointer<UInt8> { ascii("upgrade") }
    static var chunked: UnsafeBufferPointer<UInt8> { ascii("chunked") }
    static var trailers: UnsafeBufferPointer<UInt8> { ascii("trailers") }

    /// A literal's bytes, which are static: no array, no lazy global, no closure.
    @inline(__always) static func ascii(_ literal: StaticString) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
    }
}

/// Finds the end of a head or trailer section as its bytes arrive, refusing a bare CR or LF and
/// control characters on the way, so a section that arrives in pieces is scanned once.
struct HTTP1SectionScanner {
    /// How far into the unfinished section the bytes have been checked, and where its current
    /// line starts (offsets from the buffer's reader index).
    private(set) var scanned = 0
    private var lineStart = 0

    /// The section's length, final empty line included, or `nil` while it is incomplete. Once it
    /// returns a length, the next call starts a new section.
    /// - Throws: `HTTP1ParseError`; `.headTooLarge` past `limit` bytes.
    mutating func scan(_ buffer: ByteBuffer, limit: Int) throws -> Int? {
        let result: Int? = try buffer.withUnsafeReadableBytes { bytes in
            var index = scanned
            while index < bytes.count {
                // Eight bytes at a time while none is a control character (CR and LF included)
                // or DEL: a field value (a token of a kilobyte) is mostly such runs.
                while index + 8 <= bytes.count {
                    let word = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                    if ByteWord.hasControlOrDelete(word) { break }
                    index += 8
                }
                guard index < bytes.count else { break }
                let byte = bytes[index]
                if byte == .cr {
                    guard index + 1 < bytes.count else { break }
                    guard bytes[index + 1] == .lf else { throw HTTP1ParseError(.malformed, "a bare CR") }
                    if index == lineStart { return index + 2 }
                    index += 2
                    lineStart = index
                    continue
                }
                if byte == .lf { throw HTTP1ParseError(.malformed, "a bare LF") }
                if byte < 0x20 && byte != .htab || byte == 0x7F {
                    throw HTTP1ParseError(.malformed, "a control character in the head")
                }
                index += 1
            }
            scanned = index
            return nil
        }
        if let result {
            scanned = 0
            lineStart = 0
            guard result <= limit + 2 else { throw HTTP1ParseError(.headTooLarge, "the head is too large") }
            return result
        }
        guard scanned <= limit else { throw HTTP1ParseError(.headTooLarge, "the head is too large") }
        return nil
    }

}

/// Tests on eight bytes at once (a little-endian load of a field's bytes), for the long runs of
/// plain bytes a head is mostly made of. Each says whether any byte is flagged, exactly: a byte
/// is flagged by its own test before any borrow it passes on can matter, and a borrow only
/// starts at a flagged byte. Where one is, the caller goes on byte by byte.
enum ByteWord {
    private static let ones: UInt64 = 0x0101_0101_0101_0101
    private static let highBits: UInt64 = 0x8080_8080_8080_8080

    /// Any byte below 0x20 or equal to 0x7F.
    static func hasControlOrDelete(_ word: UInt64) -> Bool {
        let belowSpace = (word &- ones &* 0x20) & ~word & highBits
        return belowSpace | isZero(word ^ (ones &* 0x7F)) != 0
    }

    /// Any byte equal to `byte`.
    static func has(_ byte: UInt8, in word: UInt64) -> Bool {
        isZero(word ^ (ones &* UInt64(byte))) != 0
    }

    /// Any byte that is not visible ASCII (0x20 and below, 0x7F and above): a token68 has none.
    static func hasNonVisible(_ word: UInt64) -> Bool {
        let atMostSpace = (word &- ones &* 0x21) & ~word & highBits
        return atMostSpace | (word & highBits) | isZero(word ^ (ones &* 0x7F)) != 0
    }

    /// The high bit of each zero byte (and possibly of bytes above a zero one).
    private static func isZero(_ word: UInt64) -> UInt64 {
        (word &- ones) & ~word & highBits
    }
}

extension UInt8 {
    static let cr = UInt8(ascii: "\r")
    static let lf = UInt8(ascii: "\n")
    static let space = UInt8(ascii: " ")
    static let htab = UInt8(ascii: "\t")

    /// RFC 9110 §5.6.2 tchar.
    var isTokenCharacter: Bool { tokenCharacters[Int(self)] }

    var hexValue: Int? {
        switch self {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(self - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(self - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(self - UInt8(ascii: "A") + 10)
        default: nil
        }
    }

    var isDigit: Bool { self >= UInt8(ascii: "0") && self <= UInt8(ascii: "9") }
}

private let tokenCharacters: [Bool] = (0..<256).map { value in
    let byte = UInt8(value)
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
        UInt8(ascii: "0")...UInt8(ascii: "9"):
        return true
    default:
        return "!#$%&'*+-.^_`|~".utf8.contains(byte)
    }
}

extension UInt8 {
    /// The byte with ASCII upper case folded to lower case.
    @inline(__always) var asciiLowercased: UInt8 { self &- UInt8(ascii: "A") < 26 ? self | 0x20 : self }
}

extension Collection where Element == UInt8 {
    /// ASCII case-insensitive equality with `lowercased`, which is in lower case: the proxy's one
    /// comparison of field names and list tokens. With `underscoreAsHyphen`, `_` in `self` reads
    /// as `-` (CGI, PHP, WSGI and Rack read `X_Forwarded_For` as `X-Forwarded-For`).
    @inline(__always)
    func equalsIgnoringASCIICase(_ lowercased: some Collection<UInt8>, underscoreAsHyphen: Bool = false) -> Bool {
        // Field bytes, literals and native strings are contiguous: compared as buffers, without
        // a generic index step per byte.
        let contiguous = withContiguousStorageIfAvailable { bytes in
            lowercased.withContiguousStorageIfAvailable { other in
                guard bytes.count == other.count else { return false }
                for offset in 0..<bytes.count {
                    var folded = bytes[offset].asciiLowercased
                    if underscoreAsHyphen && folded == UInt8(ascii: "_") { folded = UInt8(ascii: "-") }
                    if folded != other[offset] { return false }
                }
                return true
            }
        }
        if let contiguous, let result = contiguous { return result }
        guard count == lowercased.count else { return false }
        var otherIndex = lowercased.startIndex
        for byte in self {
            var folded = byte.asciiLowercased
            if underscoreAsHyphen && folded == UInt8(ascii: "_") { folded = UInt8(ascii: "-") }
            guard folded == lowercased[otherIndex] else { return false }
            lowercased.formIndex(after: &otherIndex)
        }
        return true
    }
}
