import Crypto

/// Where an issuer's keys come from.
public enum KeySetSource: Sendable, Equatable {
    /// A JWKS URL.
    case jwksURI(String)
    /// The issuer's OpenID discovery document, whose `jwks_uri` is then fetched.
    case discovery(issuer: String)
    /// Keys given up front (a local file read with the configuration).
    case fixed(JSONWebKeySetBox)
    /// The issuer running in this process (`issuer:` in the configuration): its keys and token
    /// store are read directly, through `InProcessIssuers`.
    case inProcess
}

/// Wraps a key set so `KeySetSource` can be `Equatable`: two fixed sets are equal when their key
/// material is, so a key replaced under the same `kid` (or a key without one) is a change.
public struct JSONWebKeySetBox: Sendable, Equatable {
    public let keySet: JSONWebKeySet
    /// SHA-256 of the document the set was read from, or of the keys' material.
    let fingerprint: [UInt8]

    /// - Parameter document: the JWKS bytes the set was parsed from, when there are any.
    public init(_ keySet: JSONWebKeySet, document: [UInt8]? = nil) {
        self.keySet = keySet
        if let document {
            fingerprint = Array(SHA256.hash(data: document))
        } else {
            var hasher = SHA256()
            for key in keySet.keys { hasher.update(data: Array(key.materialDescription.utf8)) }
            fingerprint = Array(hasher.finalize())
        }
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.fingerprint == rhs.fingerprint }
}

/// How often keys are refreshed and how long old ones are trusted.
public struct KeySetRefreshPolicy: Sendable, Equatable {
    /// Bounds for the Cache-Control max-age of the key set response.
    public var minimumRefresh: Double = 60
    public var maximumRefresh: Double = 3600
    /// Used when the response has no max-age.
    public var defaultRefresh: Double = 300
    /// An unknown `kid` triggers a refetch at most this often.
    public var unknownKeyCooldown: Double = 30
    /// After a failed refresh the last good set keeps verifying for this long after it was fetched.
    public var maximumStale: Double = 86400
    public var timeout: Double = 5
    public var maximumBodyBytes: Int = 512 * 1024
    public var allowInsecureHTTP = false

    public init() {}

    func refreshInterval(maxAge: Double?) -> Double {
        min(max(maxAge ?? defaultRefresh, minimumRefresh), maximumRefresh)
    }
}
