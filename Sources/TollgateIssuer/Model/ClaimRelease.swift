import TollgateCore

/// Which of a person's claims a token, userinfo or introspection answer carries: each granted
/// scope releases the claims the `claims` mapping gives it (OpenID Connect Core §5.4 for
/// `profile`, `email`, `address` and `phone`, plus the configuration's own scopes), and an API's
/// access tokens carry the claims the API lists.
public enum ClaimRelease {
    /// OpenID Connect Core §5.4.
    public static let standardScopes: [String: [String]] = [
        "profile": [
            "name", "family_name", "given_name", "middle_name", "nickname", "preferred_username", "profile",
            "picture", "website", "gender", "birthdate", "zoneinfo", "locale", "updated_at",
        ],
        "email": ["email", "email_verified"],
        "address": ["address"],
        "phone": ["phone_number", "phone_number_verified"],
    ]

    /// Claims a token's own members decide (RFC 7519 §4.1, OpenID Connect Core §2 and §3.1.3.6,
    /// RFC 9068, RFC 7662, RFC 8693, RFC 9449, and this issuer's `grant_id`): a person's claim of
    /// one of these names would overwrite or forge them, so the configuration refuses it.
    public static let reservedNames: Set<String> = [
        "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "auth_time", "nonce", "acr", "amr", "azp", "at_hash",
        "c_hash", "s_hash", "sid", "client_id", "scope", "scp", "grant_id", "cnf", "act", "may_act", "active",
        "token_type", "username", "typ",
    ]

    /// The claims of `user` that `scopes` release, plus the names in `extra`: only claims the
    /// person has, but `preferred_username` (the user name when not set) and `email_verified`
    /// (false when not set) beside an `email`.
    static func claims(
        of user: IssuerUser,
        scopes: [String],
        extra: [String] = [],
        mapping: [String: [String]]
    ) -> [String: JSONValue] {
        var names = Set(extra)
        for scope in scopes { names.formUnion(mapping[scope] ?? []) }
        var released: [String: JSONValue] = [:]
        for name in names {
            if let value = user.claims[name] {
                released[name] = value
            } else if name == "preferred_username" {
                released[name] = .string(user.username)
            }
        }
        if released["email"] != nil, released["email_verified"] == nil, names.contains("email_verified") {
            released["email_verified"] = .bool(false)
        }
        return released
    }
}
