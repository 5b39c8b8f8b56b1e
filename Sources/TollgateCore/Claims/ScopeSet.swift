/// A token's granted scopes as one space-separated string: one allocation however many scopes
/// there are, for the verified-token cache. Scope tokens never contain a space (RFC 6749 §3.3),
/// and a configured scope cannot either, so an element of a `scope` array that holds one could
/// never satisfy a route and is dropped rather than split into scopes it did not grant.
public struct ScopeSet: Sendable, Equatable, Sequence {
    /// The scopes, each once, separated by single spaces.
    public let joined: String

    public init(_ scopes: [String]) {
        var kept: [String] = []
        kept.reserveCapacity(scopes.count)
        for scope in scopes where !scope.isEmpty && !scope.utf8.contains(0x20) && !kept.contains(scope) {
            kept.append(scope)
        }
        joined = kept.joined(separator: " ")
    }

    /// Exact, case-sensitive membership, without allocating.
    public func contains(_ scope: String) -> Bool {
        let needle = scope.utf8
        let haystack = joined.utf8
        guard !needle.isEmpty, needle.count <= haystack.count else { return false }
        var start = haystack.startIndex
        while start < haystack.endIndex {
            let end = haystack[start...].firstIndex(of: 0x20) ?? haystack.endIndex
            if haystack[start..<end].elementsEqual(needle) { return true }
            if end == haystack.endIndex { break }
            start = haystack.index(after: end)
        }
        return false
    }

    public var isEmpty: Bool { joined.isEmpty }

    public func makeIterator() -> some IteratorProtocol<String> {
        joined.split(separator: " ").lazy.map(String.init).makeIterator()
    }
}
