/// A condition on one claim, addressed by a dotted path such as `actor.national_id`.
public struct ClaimCondition: Sendable, Equatable, CustomStringConvertible {
    public enum Test: Sendable, Equatable {
        /// The claim is this scalar (string, number or boolean).
        case equals(JSONValue)
        /// The claim is an array holding this value, or a space-separated string listing it.
        case contains(String)
        /// The claim is one of these scalars.
        case oneOf([JSONValue])
    }

    public var claim: String
    public var test: Test

    public init(claim: String, test: Test) {
        self.claim = claim
        self.test = test
    }

    public func isSatisfied(by claims: JSONValue) -> Bool {
        guard let value = claims.value(atPath: claim) else { return false }
        switch test {
        case .equals(let expected):
            return value == expected
        case .contains(let member):
            switch value {
            case .array(let elements): return elements.contains(.string(member))
            case .string(let list): return list.split(separator: " ").contains { $0 == member }
            default: return false
            }
        case .oneOf(let options):
            return options.contains(value)
        }
    }

    public var description: String {
        switch test {
        case .equals(let value): "\(claim) equals \(value.serialized())"
        case .contains(let member): "\(claim) contains \"\(member)\""
        case .oneOf(let options): "\(claim) one of \(JSONValue.array(options).serialized())"
        }
    }
}
