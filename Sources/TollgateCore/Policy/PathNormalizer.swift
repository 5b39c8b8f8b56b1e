/// Normalises a request target once, so route matching and forwarding see the same path.
///
/// Rules: the query and fragment are split off and never matched; percent-escapes of unreserved
/// characters are decoded, other escapes are kept (hex upper-cased); `.` and `..` segments are
/// removed (RFC 3986 §5.2.4) and empty segments collapsed. Refused outright: an encoded slash or
/// backslash (`%2F`, `%5C`), `%00`, a raw backslash, a `;` (raw or `%3B`: servlet containers read
/// `/admin;x` as `/admin`), control or non-ASCII bytes, and anything not starting with `/`.
/// These are the shapes of Envoy CVE-2021-29492 and Istio CVE-2021-31920.
public enum PathNormalizer {
    public struct Options: Sendable, Equatable {
        /// Keep `%2F` / `%5C` (still encoded) instead of refusing them.
        public var allowEncodedSlash = false
        /// Keep `;` instead of refusing it.
        public var allowSemicolon = false
        public init() {}
    }

    public struct Rejection: Error, Sendable, Equatable, CustomStringConvertible {
        public let reason: String
        public var description: String { reason }
    }

    public struct Normalized: Sendable, Equatable {
        public let path: String
        /// The raw query (without `?`), forwarded untouched.
        public let query: String?

        /// The path and query as they go to the upstream.
        public var requestTarget: String {
            if let query { return path + "?" + query }
            return path
        }
    }

    public static func normalize(_ target: String, options: Options = Options()) -> Result<Normalized, Rejection> {
        if let plain = alreadyNormal(target) { return .success(plain) }
        return normalizeInFull(target, options: options)
    }

    /// Most targets are normal already: visible ASCII without `%`, `\`, `;`, `#`, empty or dot
    /// segments. For those the path is the target's own text, as the full rules would produce it.
    static func alreadyNormal(_ target: String) -> Normalized? {
        var target = target
        return target.withUTF8 { bytes -> Normalized? in
            guard bytes.first == UInt8(ascii: "/") else { return nil }
            var segmentStart = 1
            var end = bytes.count
            var index = 1
            while index < bytes.count {
                let byte = bytes[index]
                switch byte {
                case UInt8(ascii: "?"):
                    end = index
                case UInt8(ascii: "/"):
                    if !isPlainSegment(bytes, segmentStart, index) { return nil }
                    segmentStart = index + 1
                case UInt8(ascii: "%"), UInt8(ascii: "\\"), UInt8(ascii: ";"), UInt8(ascii: "#"):
                    return nil
                case 0x21...0x7E:
                    break
                default:
                    return nil
                }
                if end < bytes.count { break }
                index += 1
            }
            // The last segment may be empty (a trailing slash, or the root).
            if end > segmentStart, !isPlainSegment(bytes, segmentStart, end) { return nil }
            if end == bytes.count { return Normalized(path: String(decoding: bytes, as: UTF8.self), query: nil) }
            // The query is forwarded untouched; a fragment after it is cut, as in full.
            let rest = UnsafeBufferPointer(rebasing: bytes[(end + 1)...])
            let queryEnd = rest.firstIndex(of: UInt8(ascii: "#")) ?? rest.endIndex
            return Normalized(
                path: String(decoding: bytes[..<end], as: UTF8.self),
                query: String(decoding: rest[..<queryEnd], as: UTF8.self)
            )
        }
    }

    /// Not empty, not `.` and not `..`.
    private static func isPlainSegment(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Bool {
        switch end - start {
        case 0: false
        case 1: bytes[start] != UInt8(ascii: ".")
        case 2: !(bytes[start] == UInt8(ascii: ".") && bytes[start + 1] == UInt8(ascii: "."))
        default: true
        }
    }

    /// The full rules, for any target.
    static func normalizeInFull(_ target: String, options: Options) -> Result<Normalized, Rejection> {
        var utf8 = Substring(target).utf8[...]
        var query: String?
        if let hash = utf8.firstIndex(of: UInt8(ascii: "#")) {
            utf8 = utf8[..<hash]
        }
        if let question = utf8.firstIndex(of: UInt8(ascii: "?")) {
            query = String(Substring(utf8[utf8.index(after: question)...]))
            utf8 = utf8[..<question]
        }
        guard utf8.first == UInt8(ascii: "/") else {
            return .failure(Rejection(reason: "the path must start with '/'"))
        }
        // Decode into segments.
        var segments: [[UInt8]] = []
        var current: [UInt8] = []
        var endsWithSlash = false
        var lastWasDotSegment = false
        func finishSegment() {
            if current.isEmpty {
                // `//` collapses.
            } else if current == [UInt8(ascii: ".")] {
                lastWasDotSegment = true
            } else if current == [UInt8(ascii: "."), UInt8(ascii: ".")] {
                if !segments.isEmpty { segments.removeLast() }
                lastWasDotSegment = true
            } else {
                segments.append(current)
                lastWasDotSegment = false
            }
            current.removeAll(keepingCapacity: true)
        }
        var index = utf8.index(after: utf8.startIndex)
        while index < utf8.endIndex {
            let byte = utf8[index]
            switch byte {
            case UInt8(ascii: "/"):
                finishSegment()
                endsWithSlash = true
                index = utf8.index(after: index)
                continue
            case UInt8(ascii: "%"):
                let first = utf8.index(after: index)
                guard first < utf8.endIndex, utf8.index(after: first) < utf8.endIndex,
                    let high = hexValue(utf8[first]), let low = hexValue(utf8[utf8.index(after: first)])
                else {
                    return .failure(Rejection(reason: "invalid percent-encoding"))
                }
                let value = high << 4 | low
                switch value {
                case 0x00:
                    return .failure(Rejection(reason: "an encoded NUL is not allowed"))
                case 0x2F, 0x5C:
                    guard options.allowEncodedSlash else {
                        return .failure(Rejection(reason: "an encoded slash or backslash is not allowed"))
                    }
                    appendEscape(value, to: &current)
                case 0x3B:
                    guard options.allowSemicolon else {
                        return .failure(Rejection(reason: "a ';' in the path is not allowed"))
                    }
                    appendEscape(value, to: &current)
                default:
                    if isUnreserved(value) {
                        current.append(value)
                    } else {
                        appendEscape(value, to: &current)
                    }
                }
                index = utf8.index(index, offsetBy: 3)
            case UInt8(ascii: "\\"):
                return .failure(Rejection(reason: "a backslash in the path is not allowed"))
            case UInt8(ascii: ";"):
                guard options.allowSemicolon else {
                    return .failure(Rejection(reason: "a ';' in the path is not allowed"))
                }
                current.append(byte)
                index = utf8.index(after: index)
            case 0x21...0x7E:
                current.append(byte)
                index = utf8.index(after: index)
            default:
                return .failure(Rejection(reason: "control, space or non-ASCII bytes must be percent-encoded"))
            }
            endsWithSlash = false
        }
        finishSegment()
        var path: [UInt8] = [UInt8(ascii: "/")]
        for (position, segment) in segments.enumerated() {
            if position > 0 { path.append(UInt8(ascii: "/")) }
            path.append(contentsOf: segment)
        }
        if (endsWithSlash || lastWasDotSegment) && !segments.isEmpty {
            path.append(UInt8(ascii: "/"))
        }
        return .success(Normalized(path: String(decoding: path, as: UTF8.self), query: query))
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"):
            true
        default: false
        }
    }

    private static func appendEscape(_ value: UInt8, to bytes: inout [UInt8]) {
        let hex = Array("0123456789ABCDEF".utf8)
        bytes.append(UInt8(ascii: "%"))
        bytes.append(hex[Int(value >> 4)])
        bytes.append(hex[Int(value & 0x0F)])
    }
}
