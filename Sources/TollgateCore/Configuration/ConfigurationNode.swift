import Yams

/// A YAML node with the dotted field path that leads to it, so every error can name the file,
/// line and field.
public struct ConfigurationNode {
    let node: Node
    /// The dotted path that leads here (`issuer.clients[0].type`).
    public let field: String
    let file: String

    public var line: Int? { node.mark?.line }
    public var column: Int? { node.mark?.column }

    public func error(_ message: String) -> ConfigurationError {
        ConfigurationError(file: file, line: line, column: column, field: field, message: message)
    }

    private func child(_ node: Node, key: String) -> ConfigurationNode {
        ConfigurationNode(node: node, field: field.isEmpty ? key : "\(field).\(key)", file: file)
    }

    /// The members of a mapping; a key outside `allowed` is an error (it is usually a typo).
    public func mapping(allowed: Set<String>) throws(ConfigurationError) -> Members {
        guard let mapping = node.mapping else { throw error("expected a mapping") }
        var members: [String: ConfigurationNode] = [:]
        for (key, value) in mapping {
            guard let name = key.string else { throw error("mapping keys must be strings") }
            let located = ConfigurationNode(node: key, field: field.isEmpty ? name : "\(field).\(name)", file: file)
            guard allowed.contains(name) else {
                let known = allowed.sorted().joined(separator: ", ")
                throw located.error("unknown field (known here: \(known))")
            }
            if members[name] != nil { throw located.error("appears twice") }
            members[name] = child(value, key: name)
        }
        return Members(owner: self, members: members)
    }

    public struct Members {
        let owner: ConfigurationNode
        let members: [String: ConfigurationNode]

        public subscript(_ key: String) -> ConfigurationNode? { members[key] }

        public func required(_ key: String) throws(ConfigurationError) -> ConfigurationNode {
            guard let node = members[key] else {
                let field = owner.field.isEmpty ? key : "\(owner.field).\(key)"
                throw ConfigurationError(
                    file: owner.file,
                    line: owner.line,
                    column: owner.column,
                    field: field,
                    message: "is required"
                )
            }
            return node
        }

        public func has(_ key: String) -> Bool { members[key] != nil }
    }

    /// A mapping's entries as (name, text) pairs, in file order; `message` when it is not a
    /// mapping or an entry is not text.
    public func textPairs(_ message: String) throws(ConfigurationError) -> [(String, String)] {
        guard let mapping = node.mapping else { throw error(message) }
        var pairs: [(String, String)] = []
        for (key, value) in mapping {
            guard let name = key.string, let text = value.string else { throw error(message) }
            pairs.append((name, text))
        }
        return pairs
    }

    /// An empty value (`key:` with nothing after it, or `~`).
    public var isNull: Bool {
        if case .scalar(let scalar) = node {
            return scalar.style == .plain && ["", "~", "null"].contains(scalar.string)
        }
        return false
    }

    /// A mapping whose keys are names the configuration chooses (tool names, methods), each with
    /// its node, in file order; a name given twice is an error.
    public func namedChildren() throws(ConfigurationError) -> [(String, ConfigurationNode)] {
        guard let mapping = node.mapping else { throw error("expected a mapping") }
        var children: [(String, ConfigurationNode)] = []
        var seen: Set<String> = []
        for (key, value) in mapping {
            guard let name = key.string else { throw error("mapping keys must be strings") }
            let located = ConfigurationNode(node: key, field: "\(field).\(name)", file: file)
            if !seen.insert(name).inserted { throw located.error("appears twice") }
            children.append((name, ConfigurationNode(node: value, field: located.field, file: file)))
        }
        return children
    }

    public func sequence() throws(ConfigurationError) -> [ConfigurationNode] {
        guard let sequence = node.sequence else { throw error("expected a list") }
        return sequence.enumerated().map { index, element in
            ConfigurationNode(node: element, field: "\(field)[\(index)]", file: file)
        }
    }

    public func string() throws(ConfigurationError) -> String {
        guard let scalar = node.scalar else { throw error("expected a string") }
        return scalar.string
    }

    public func nonEmptyString() throws(ConfigurationError) -> String {
        let value = try string()
        if value.isEmpty { throw error("must not be empty") }
        return value
    }

    public func bool() throws(ConfigurationError) -> Bool {
        guard let scalar = node.scalar else { throw error("expected true or false") }
        switch scalar.string.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw error("expected true or false, found '\(scalar.string)'")
        }
    }

    public func positiveInteger() throws(ConfigurationError) -> Int {
        guard let scalar = node.scalar, let value = Int(scalar.string), value > 0 else {
            throw error("expected a positive whole number")
        }
        return value
    }

    public func stringList() throws(ConfigurationError) -> [String] {
        if node.scalar != nil { throw error("expected a list of strings (write [\"…\"] for one)") }
        return try sequence().map { element throws(ConfigurationError) in try element.nonEmptyString() }
    }

    /// `30s`, `15m`, `2h`, `1d`, `500ms`, or a bare number of seconds.
    public func duration() throws(ConfigurationError) -> Double {
        guard let scalar = node.scalar else { throw error("expected a duration such as 30s or 15m") }
        guard let seconds = Self.parseDuration(scalar.string) else {
            throw error("expected a duration such as 30s or 15m, found '\(scalar.string)'")
        }
        return seconds
    }

    public static func parseDuration(_ text: String) -> Double? {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            if let value = Double(number), value >= 0, value.isFinite { return value * factor }
        }
        if let value = Double(text), value >= 0, value.isFinite { return value }
        return nil
    }

    /// A scalar as a JSON value: quoted YAML strings stay strings, plain `42`/`true` become
    /// number/boolean, as a reader of the file would expect.
    public func scalarJSON() throws(ConfigurationError) -> JSONValue {
        guard let scalar = node.scalar else { throw error("expected a string, number or boolean") }
        if scalar.style == .plain {
            switch scalar.string {
            case "true": return .bool(true)
            case "false": return .bool(false)
            default:
                if let number = Double(scalar.string), number.isFinite { return .number(number) }
            }
        }
        return .string(scalar.string)
    }

    /// Any value as JSON, as a reader of the file would expect: scalars as `scalarJSON()` reads
    /// them (plain `null` and `~` are null), lists as arrays, mappings with string keys as
    /// objects.
    public func json() throws(ConfigurationError) -> JSONValue {
        if let sequence = node.sequence {
            return .array(
                try sequence.enumerated().map { index, element throws(ConfigurationError) in
                    try ConfigurationNode(node: element, field: "\(field)[\(index)]", file: file).json()
                }
            )
        }
        if let mapping = node.mapping {
            var members: [String: JSONValue] = [:]
            for (key, value) in mapping {
                guard let name = key.string else { throw error("mapping keys must be strings") }
                if members[name] != nil { throw child(key, key: name).error("appears twice") }
                members[name] = try child(value, key: name).json()
            }
            return .object(members)
        }
        if let scalar = node.scalar, scalar.style == .plain, ["null", "~", ""].contains(scalar.string) {
            return .null
        }
        return try scalarJSON()
    }
}
