/// The optional in-process OpenID Connect / OAuth 2.1 issuer. Its handlers, storage and signing
/// keys arrive in their own change; this module exists now so the package layout and dependency
/// direction (tollgate → Issuer → Core) are fixed from the start.
public enum TollgateIssuer {
    /// The module's version, reported by `tollgate --version`.
    public static let version = "0.1.0"
}
