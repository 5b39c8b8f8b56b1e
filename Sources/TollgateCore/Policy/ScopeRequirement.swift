/// A route's scope rule: every scope in `all`, and at least one of `any` when `any` is not empty.
/// Comparison is exact and case-sensitive (`@team/orders.read` ≠ `@team/Orders.read`).
public struct ScopeRequirement: Sendable, Equatable {
    public var all: [String]
    public var any: [String]

    public init(all: [String] = [], any: [String] = []) {
        self.all = all
        self.any = any
    }

    public func isSatisfied(by scopes: ScopeSet) -> Bool {
        for needed in all where !scopes.contains(needed) { return false }
        if !any.isEmpty && !any.contains(where: scopes.contains) { return false }
        return true
    }

    public func isSatisfied(by scopes: [String]) -> Bool {
        for needed in all where !scopes.contains(needed) { return false }
        if !any.isEmpty && !any.contains(where: scopes.contains) { return false }
        return true
    }

    /// The `scope` attribute of an `insufficient_scope` challenge (RFC 6750 §3).
    public var challengeScope: String {
        (all + any).joined(separator: " ")
    }
}
