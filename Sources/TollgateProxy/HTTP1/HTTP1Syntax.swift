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

    static let contentLength = Array("content-length".utf8)
    static let transferEncoding = Array("transfer-encoding".utf8)
    static let connection = Array("connection".utf8)
    static let proxyConnection = Array("proxy-connection".utf8)
    static let upgrade = Array("upgrade".utf8)
    static let chunked = Array("chunked".utf8)
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
                    if Self.hasControlOrDelete(word) { break }
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

    /// Whether any of the eight bytes is below 0x20 or is 0x7F. The tests are exact: a byte
    /// below the bound is flagged by its own borrow before any borrow it passes on can matter,
    /// and a byte at 0x80 or above never is.
    static func hasControlOrDelete(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highBits: UInt64 = 0x8080_8080_8080_8080
        let belowSpace = (word &- ones &* 0x20) & ~word & highBits
        let delete = word ^ (ones &* 0x7F)
        let isDelete = (delete &- ones) & ~delete & highBits
        return belowSpace | isDelete != 0
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

extension Slice where Base == UnsafeRawBufferPointer {
    /// Like `equalsLowercased`, with `_` read as `-`.
    func equalsLowercasedFoldingUnderscore(_ lowercased: [UInt8]) -> Bool {
        guard count == lowercased.count else { return false }
        var other = lowercased.startIndex
        for byte in self {
            var folded = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
            if folded == UInt8(ascii: "_") { folded = UInt8(ascii: "-") }
            guard folded == lowercased[other] else { return false }
            other += 1
        }
        return true
    }

    /// ASCII case-insensitive comparison with a lower-case name.
    func equalsLowercased(_ lowercased: [UInt8]) -> Bool {
        guard count == lowercased.count else { return false }
        var other = lowercased.startIndex
        for byte in self {
            let folded = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
            guard folded == lowercased[other] else { return false }
            other += 1
        }
        return true
    }
}
