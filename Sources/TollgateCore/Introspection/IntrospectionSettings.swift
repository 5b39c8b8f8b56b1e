/// A secret read from a file or the environment. Its description never shows the value.
public struct Secret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    public let value: String
    public init(_ value: String) { self.value = value }
    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
}

/// How to reach an issuer's RFC 7662 introspection endpoint and how long to trust its answers.
public struct IntrospectionSettings: Sendable, Equatable {
    public enum ClientAuthentication: String, Sendable, Equatable {
        case clientSecretBasic = "client_secret_basic"
        case clientSecretPost = "client_secret_post"
    }

    public var endpoint: String
    public var clientID: String
    public var clientSecret: Secret
    public var authentication: ClientAuthentication = .clientSecretBasic
    /// Positive answers are cached until min(`exp`, now + `cacheTTL`).
    public var cacheTTL: Double = 60
    /// Negative answers (`active: false`, expired, wrong audience) are cached this long.
    public var negativeCacheTTL: Double = 5
    public var timeout: Double = 3
    public var maximumBodyBytes: Int = 64 * 1024
    public var maximumCacheEntries: Int = 100_000
    public var allowInsecureHTTP = false
    /// Ask for the answer as a JWT signed by the issuer (RFC 9701) and take nothing else.
    public var signedResponses = false

    public init(endpoint: String, clientID: String, clientSecret: Secret) {
        self.endpoint = endpoint
        self.clientID = clientID
        self.clientSecret = clientSecret
    }
}
