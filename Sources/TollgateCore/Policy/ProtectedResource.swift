/// The OAuth protected resource a route is (RFC 9728): what its metadata document and its
/// challenges name. The identifier is configured whole, so nothing a client sends (`Host`,
/// `X-Forwarded-*`) can change the document or the `resource_metadata` URL a challenge gives.
public struct ProtectedResource: Sendable, Equatable {
    /// The resource identifier (RFC 8707 §2, RFC 9728 §1.2): an `https` URL, or `http` on a
    /// loopback host, without query, fragment or user information.
    public let identifier: String
    public let name: String?
    /// A page for people about the resource (`resource_documentation`).
    public let documentation: String?
    /// Other `aud` values a token for this resource may carry instead of the identifier (an
    /// issuer that names the API otherwise).
    public let audiences: [String]
    /// Where the metadata document is served: `/.well-known/oauth-protected-resource` and the
    /// identifier's path (RFC 9728 §3.1: inserted between the host and the path, a lone `/`
    /// dropped).
    public let metadataPath: String
    /// The document's URL, for `resource_metadata` in challenges (RFC 9728 §5.1).
    public let metadataURL: String

    public static let wellKnownPath = "/.well-known/oauth-protected-resource"

    /// - Returns: `nil` with the reason when `identifier` is not a resource identifier.
    public static func make(
        identifier: String,
        name: String?,
        documentation: String?,
        audiences: [String] = []
    ) -> Result<ProtectedResource, Refusal> {
        guard let parts = URLParts(identifier) else {
            return .failure(Refusal("must be an absolute https URL (http only on a loopback host)"))
        }
        if parts.hasQueryOrFragment { return .failure(Refusal("must have no query and no fragment (RFC 9728 §1.2)")) }
        if parts.hasUserInformation { return .failure(Refusal("must have no user information")) }
        if parts.scheme == "http" && !parts.isLoopback {
            return .failure(Refusal("must use https (http only on a loopback host)"))
        }
        let path = parts.path == "/" ? "" : parts.path
        let metadataPath = wellKnownPath + path
        return .success(
            ProtectedResource(
                identifier: identifier,
                name: name,
                documentation: documentation,
                audiences: audiences,
                metadataPath: metadataPath,
                metadataURL: parts.scheme + "://" + parts.authority + metadataPath
            )
        )
    }

    /// Whether a token's `aud` (a string or a list of strings, RFC 7519 §4.1.3) names this
    /// resource: its identifier, compared exactly, or one of `audiences`.
    public func isAudience(of claims: JSONValue) -> Bool {
        let values: [String]
        switch claims["aud"] {
        case .string(let value)?: values = [value]
        case .array(let items)?: values = items.compactMap(\.stringValue)
        default: return false
        }
        return values.contains { $0 == identifier || audiences.contains($0) }
    }

    public struct Refusal: Error, Sendable, Equatable {
        public let reason: String

        init(_ reason: String) {
            self.reason = reason
        }
    }

    /// `scheme://authority/path` split without normalising anything (the identifier is compared
    /// code point by code point, RFC 9728 §6).
    struct URLParts {
        let scheme: String
        let authority: String
        let path: String
        let hasQueryOrFragment: Bool
        let hasUserInformation: Bool
        let isLoopback: Bool

        init?(_ text: String) {
            let scheme: String
            if text.hasPrefix("https://") {
                scheme = "https"
            } else if text.hasPrefix("http://") {
                scheme = "http"
            } else {
                return nil
            }
            let rest = text.dropFirst(scheme.count + 3)
            let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
            let authority = String(rest[..<authorityEnd])
            guard !authority.isEmpty,
                authority.unicodeScalars.allSatisfy({ $0.isASCII && $0.value > 0x20 && $0.value < 0x7F })
            else { return nil }
            let tail = rest[authorityEnd...]
            let pathEnd = tail.firstIndex { $0 == "?" || $0 == "#" } ?? tail.endIndex
            let path = String(tail[..<pathEnd])
            guard path.unicodeScalars.allSatisfy({ $0.isASCII && $0.value > 0x20 && $0.value < 0x7F }) else {
                return nil
            }
            self.scheme = scheme
            self.authority = authority
            self.path = path.isEmpty ? "/" : path
            hasQueryOrFragment = pathEnd != tail.endIndex
            hasUserInformation = authority.contains("@")
            var host = authority
            if let colon = host.lastIndex(of: ":"), !host.hasSuffix("]") { host = String(host[..<colon]) }
            isLoopback = host == "localhost" || host == "127.0.0.1" || host == "[::1]"
        }
    }
}
