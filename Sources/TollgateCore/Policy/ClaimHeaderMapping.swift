/// Which verified claims go to the upstream as headers, and which incoming headers are removed
/// so that a client cannot forge them.
public struct ClaimHeaderMapping: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var header: String
        public var claim: String
        public init(header: String, claim: String) {
            self.header = header
            self.claim = claim
        }
    }

    public enum Failure: Error, Sendable, Equatable {
        /// A claim value holds a control character (CR/LF would split the header).
        case unsafeValue(header: String)
    }

    public var entries: [Entry]
    /// When set, the whole claim set as base64url JSON goes in this header.
    public var payloadHeader: String?
    /// More header names to remove from every incoming request.
    public var extraStrippedHeaders: [String]
    /// Lower-case names with `_` as `-`, compared byte by byte without allocating.
    private let strippedKeys: [[UInt8]]

    public init(entries: [Entry], payloadHeader: String? = nil, extraStrippedHeaders: [String] = []) {
        self.entries = entries
        self.payloadHeader = payloadHeader
        self.extraStrippedHeaders = extraStrippedHeaders
        var keys = Set(entries.map { Self.comparisonKey($0.header) })
        if let payloadHeader { keys.insert(Self.comparisonKey(payloadHeader)) }
        for header in extraStrippedHeaders { keys.insert(Self.comparisonKey(header)) }
        strippedKeys = keys.sorted().map { Array($0.utf8) }
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.entries == rhs.entries && lhs.payloadHeader == rhs.payloadHeader
            && lhs.extraStrippedHeaders == rhs.extraStrippedHeaders
    }

    /// Whether an incoming header must be removed: any case, and `_` read as `-`, because some
    /// servers (nginx with `underscores_in_headers`, CGI, many frameworks) treat them alike.
    public func mustStrip(_ name: String) -> Bool {
        var name = name
        return name.withUTF8 { mustStrip(utf8: UnsafeRawBufferPointer($0)[...]) }
    }

    /// `mustStrip(_:)` over a name's bytes, as a request head holds them.
    public func mustStrip(utf8: Slice<UnsafeRawBufferPointer>) -> Bool {
        let count = utf8.count
        for key in strippedKeys where key.count == count {
            var equal = true
            for (byte, expected) in zip(utf8, key) {
                var folded = byte
                if folded >= UInt8(ascii: "A") && folded <= UInt8(ascii: "Z") { folded += 32 }
                if folded == UInt8(ascii: "_") { folded = UInt8(ascii: "-") }
                if folded != expected {
                    equal = false
                    break
                }
            }
            if equal { return true }
        }
        return false
    }

    /// Every header name Tollgate sets from claims (for the `Connection:` rule).
    public var setHeaderNames: [String] {
        entries.map(\.header) + (payloadHeader.map { [$0] } ?? [])
    }

    static func comparisonKey(_ name: String) -> String {
        String(name.lowercased().map { $0 == "_" ? "-" : $0 })
    }

    /// The headers to add for `token`. A missing claim adds nothing; an unsafe value fails.
    public func headers(for token: VerifiedToken) -> Result<[(name: String, value: String)], Failure> {
        var result: [(name: String, value: String)] = []
        result.reserveCapacity(entries.count + 1)
        if let precomputed = token.claimHeaders, precomputed.entries == entries {
            switch precomputed.values {
            case .success(let values):
                for value in values { result.append((value.header, value.value)) }
            case .failure(let failure):
                return .failure(failure)
            }
        } else {
            switch values(from: token.claims) {
            case .success(let values):
                for value in values { result.append((value.header, value.value)) }
            case .failure(let failure):
                return .failure(failure)
            }
        }
        if let payloadHeader {
            result.append((payloadHeader, token.encodedClaims))
        }
        return .success(result)
    }

    /// The claim headers' values for `claims` (the payload header aside).
    func values(from claims: JSONValue) -> Result<[ClaimHeaderValues.Value], Failure> {
        var result: [ClaimHeaderValues.Value] = []
        for entry in entries {
            guard let value = claims.value(atPath: entry.claim), let text = Self.headerValue(value) else {
                continue
            }
            if text.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) {
                return .failure(.unsafeValue(header: entry.header))
            }
            result.append(ClaimHeaderValues.Value(header: entry.header, value: text))
        }
        return .success(result)
    }

    /// Strings as they are, numbers without a needless fraction, arrays joined with `,`, objects as
    /// JSON; `null` is no value.
    static func headerValue(_ value: JSONValue) -> String? {
        switch value {
        case .null: return nil
        case .string(let text): return text
        case .number(let number): return JSONValue.format(number: number)
        case .bool(let flag): return flag ? "true" : "false"
        case .array(let elements):
            return elements.compactMap { element -> String? in
                if case .array = element { return element.serialized() }
                return headerValue(element)
            }.joined(separator: ",")
        case .object: return value.serialized()
        }
    }
}

/// A verified token's claim-header values, computed once when it was verified, for the mapping
/// `entries` (shared by every token of one configuration, so it costs each a reference).
public struct ClaimHeaderValues: Sendable, Equatable {
    public struct Value: Sendable, Equatable {
        public let header: String
        public let value: String
    }

    public let entries: [ClaimHeaderMapping.Entry]
    public let values: Result<[Value], ClaimHeaderMapping.Failure>

    init(_ mapping: ClaimHeaderMapping, claims: JSONValue) {
        entries = mapping.entries
        values = mapping.values(from: claims)
    }
}
