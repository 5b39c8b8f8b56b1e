/// A parsed JSON document: what a token's header and claim set, a JWKS and an introspection
/// response are read into.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var numberValue: Double? {
        if case .number(let value) = self { return value }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    public var objectValue: [String: JSONValue]? {
        if case .object(let value) = self { return value }
        return nil
    }

    /// Follows a dotted path (`actor.national_id`) through nested objects.
    ///
    /// A key that itself contains dots (`https://example.com/roles`) is found too: at each level
    /// the longest key that matches a prefix of the remaining path wins.
    public func value(atPath path: String) -> JSONValue? {
        if let direct = self[path] { return direct }
        guard case .object(let members) = self else { return nil }
        var searchStart = path.startIndex
        while let dot = path[searchStart...].firstIndex(of: ".") {
            let head = String(path[path.startIndex..<dot])
            if let child = members[head] {
                let rest = String(path[path.index(after: dot)...])
                if let found = child.value(atPath: rest) { return found }
            }
            searchStart = path.index(after: dot)
        }
        return nil
    }
}
