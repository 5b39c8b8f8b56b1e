/// What a route that serves the Model Context Protocol (streamable HTTP) asks of each JSON-RPC
/// request on top of the route's own requirement: rules per method, per tool, per prompt and per
/// resource URI, read from the request body before anything reaches the server.
///
/// Every rule that applies must hold: the route's `require`, the method's rule, and for
/// `tools/call`, `prompts/get` and `resources/read` the named tool's, prompt's or resource's
/// rule (or `default` when it has none).
public struct MCPPolicy: Sendable, Equatable {
    /// One rule: refused outright, or scopes and claim conditions to hold.
    public enum Rule: Sendable, Equatable {
        case deny
        case require(scopes: ScopeRequirement?, conditions: [ClaimCondition])
    }

    /// The JSON-RPC body's bound (a body over it is refused with 413 before it is read whole).
    public var maximumBodyBytes: Int
    /// Whether `tools/list` answers are cut to the tools the caller's token may call.
    public var filtersToolList: Bool
    /// The bound on a `tools/list` answer (or one server-sent event) read to filter it.
    public var maximumToolListBytes: Int
    public var methods: [String: Rule]
    public var tools: [String: Rule]
    public var prompts: [String: Rule]
    public var resources: [String: Rule]
    /// The rule of a tool, prompt or resource that has none of its own; `nil`: the route's
    /// requirement alone.
    public var defaultRule: Rule?

    public static let defaultMaximumBodyBytes = 1 << 20
    public static let defaultMaximumToolListBytes = 4 << 20

    public init(
        maximumBodyBytes: Int = MCPPolicy.defaultMaximumBodyBytes,
        filtersToolList: Bool = true,
        maximumToolListBytes: Int = MCPPolicy.defaultMaximumToolListBytes,
        methods: [String: Rule] = [:],
        tools: [String: Rule] = [:],
        prompts: [String: Rule] = [:],
        resources: [String: Rule] = [:],
        defaultRule: Rule? = nil
    ) {
        self.maximumBodyBytes = maximumBodyBytes
        self.filtersToolList = filtersToolList
        self.maximumToolListBytes = maximumToolListBytes
        self.methods = methods
        self.tools = tools
        self.prompts = prompts
        self.resources = resources
        self.defaultRule = defaultRule
    }

    /// The methods whose request names what it acts on, and the member that names it.
    public static func namedMember(of method: String) -> String? {
        switch method {
        case "tools/call", "prompts/get": "name"
        case "resources/read": "uri"
        default: nil
        }
    }

    /// The rules that apply to a request for `method` naming `name` (on top of the route's).
    public func rules(method: String, name: String?) -> [Rule] {
        var applied: [Rule] = []
        if let rule = methods[method] { applied.append(rule) }
        if let name {
            let named: Rule?
            switch method {
            case "tools/call": named = tools[name]
            case "prompts/get": named = prompts[name]
            case "resources/read": named = resources[name]
            default: named = nil
            }
            if let rule = named ?? defaultRule { applied.append(rule) }
        }
        return applied
    }

    /// Whether `token` may call the tool `name` (what a filtered `tools/list` keeps).
    public func mayCall(tool name: String, _ token: VerifiedToken) -> Bool {
        rules(method: "tools/call", name: name).allSatisfy { $0.decision(for: token) == .allowed }
    }

    /// Every scope any rule names, sorted (for the resource's `scopes_supported`).
    public var allScopes: [String] {
        var scopes: Set<String> = []
        for rule in Array(methods.values) + tools.values + prompts.values + resources.values
            + [defaultRule].compactMap({ $0 })
        {
            guard case .require(let requirement?, _) = rule else { continue }
            scopes.formUnion(requirement.all + requirement.any)
        }
        return scopes.sorted()
    }

    /// Every scope the rules for a request name, in order and once each, for an
    /// `insufficient_scope` challenge that lists all of them.
    public func scopes(method: String, name: String?) -> [String] {
        var scopes: [String] = []
        for rule in rules(method: method, name: name) {
            guard case .require(let requirement?, _) = rule else { continue }
            for scope in requirement.all + requirement.any where !scopes.contains(scope) { scopes.append(scope) }
        }
        return scopes
    }
}

extension MCPPolicy.Rule {
    public func decision(for token: VerifiedToken) -> AuthorizationDecision {
        switch self {
        case .deny:
            return .conditionFailed("denied by the MCP rule")
        case .require(let scopes, let conditions):
            if let scopes, !scopes.isSatisfied(by: token.scopeSet) { return .insufficientScope(scopes.challengeScope) }
            for condition in conditions where !condition.isSatisfied(by: token.claims) {
                return .conditionFailed(condition.description)
            }
            return .allowed
        }
    }
}
