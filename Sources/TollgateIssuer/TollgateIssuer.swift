/// The optional in-process OpenID Connect / OAuth 2.1 issuer: framework-independent handlers over
/// swift-http-types values (`OAuthIssuer`), storage behind one protocol (`IssuerStore`), and
/// signing keys kept in that storage (`KeyRing`).
public enum TollgateIssuer {
    /// The module's version, reported by `tollgate --version`.
    public static let version = "0.2.0"
}
