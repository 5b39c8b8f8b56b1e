import Crypto
import TollgateCore

/// The issuer's rules for spending what a person granted, as plain functions of the records and
/// the request: the stores run them inside their transactions and know nothing of them.
enum GrantRules {
    /// What a token request offers to redeem an authorization code.
    struct CodeRequest: Sendable {
        var clientID: String
        var redirectURI: String?
        var codeVerifier: String?
        var resource: String?
        var now: Int
    }

    /// Why `request` may not redeem `code`, or `nil` when it may (RFC 6749 §4.1.3, RFC 7636
    /// §4.6, RFC 8707 §2.2): the code's client, unexpired, the redirect URI of the
    /// authorization request, the PKCE verifier, and a resource authorised there.
    static func refusal(
        toRedeem code: AuthorizationCodeRecord,
        _ request: CodeRequest,
        options: IssuerOptions
    ) -> IssuerError? {
        guard code.clientID == request.clientID else { return .invalidGrant("the code was issued to another client") }
        guard code.expiresAt > request.now else { return .invalidGrant("the code has expired") }
        guard request.redirectURI == code.redirectURI else {
            return .invalidGrant("'redirect_uri' does not match the authorization request")
        }
        if let challenge = code.codeChallenge {
            guard let verifier = request.codeVerifier, pkceMatches(verifier: verifier, challenge: challenge) else {
                return .invalidGrant("the code verifier does not match")
            }
        } else if request.codeVerifier != nil {
            return .invalidGrant("the authorization request had no code challenge")
        }
        if let resource = request.resource, resource != authorizedAudience(code.resource, scopes: code.scopes, options)
        {
            return .invalidTarget("'resource' was not authorised for this code")
        }
        return nil
    }

    /// Why a device code's token request may not have `resource`: only the one authorised with
    /// it (RFC 8707 §2.2), checked before the poll spends anything.
    static func refusal(
        ofResource resource: String?,
        for device: DeviceAuthorizationRecord,
        options: IssuerOptions
    ) -> IssuerError? {
        guard let resource, resource != authorizedAudience(device.resource, scopes: device.scopes, options) else {
            return nil
        }
        return .invalidTarget("'resource' was not authorised for this device code")
    }

    /// The audience an authorization covers: the resource it named, or the API of its scopes.
    static func authorizedAudience(_ resource: String?, scopes: [String], _ options: IssuerOptions) -> String? {
        resource ?? scopes.lazy.compactMap { options.api(forScope: $0)?.audience }.first
    }

    /// RFC 8707 §2: the API a token is for. A named resource must be a known API of which the
    /// granted `scopes` hold at least one scope; without one, the API of the first API scope.
    /// A token never names an audience none of its scopes belong to.
    static func audience(
        forResource resource: String?,
        scopes: [String],
        options: IssuerOptions
    ) throws(IssuerError) -> APIDefinition? {
        guard let resource else { return scopes.lazy.compactMap { options.api(forScope: $0) }.first }
        guard let api = options.apis.first(where: { $0.audience == resource }) else {
            throw .invalidTarget("'resource' is not a known API")
        }
        guard scopes.contains(where: api.scopes.contains) else {
            throw .invalidTarget("no scope of '\(resource)' is requested and granted to this client")
        }
        return api
    }

    /// RFC 7636 §4.6: BASE64URL(SHA256(verifier)) == challenge.
    static func pkceMatches(verifier: String, challenge: String) -> Bool {
        guard isPKCEValue(verifier) else { return false }
        let computed = Base64URL.encode(Array(SHA256.hash(data: Array(verifier.utf8))))
        return StoredSecret.keeping(challenge).matches(computed)
    }

    /// RFC 7636 §4.1: 43 to 128 unreserved characters.
    static func isPKCEValue(_ value: String) -> Bool {
        (43...128).contains(value.utf8.count)
            && value.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                    UInt8(ascii: "~"):
                    true
                default: false
                }
            }
    }

    /// The narrower scopes a refresh asks for, or the grant's own; widening is `invalid_scope`.
    static func refreshScopes(requested: String?, granted: [String]) throws(IssuerError) -> [String] {
        guard let requested else { return granted }
        let narrower = requested.split(separator: " ").map(String.init)
        guard Set(narrower).isSubset(of: Set(granted)) else { throw .invalidScope("a refresh cannot widen the scopes") }
        return narrower
    }

    /// RFC 7662: a refresh token is active while unspent, unrevoked and unexpired.
    static func isActive(_ token: RefreshTokenRecord, now: Int) -> Bool {
        !token.revoked && token.spentAt == nil && token.expiresAt > now
    }

    /// What presenting a refresh token that lost (or never could win) the compare-and-set of a
    /// rotation means (RFC 9700 §4.14.2).
    enum Reuse: Sendable, Equatable {
        /// Unknown, another client's, or never spent (revoked, expired): refused, nothing more.
        case refuse
        /// Its client again within the reuse interval, the successor unused: the answer given.
        case replay(String)
        /// Any other reuse of a spent token: a stolen token in play; the grant goes.
        case revokeGrant
    }

    /// The rule for a refresh token `token` presented by `clientID` after it was not rotated:
    /// `successorUsed` says whether the token it was exchanged for has been spent since.
    static func reuse(
        of token: RefreshTokenRecord?,
        by clientID: String,
        successorUsed: Bool,
        now: Int,
        reuseInterval: Int
    ) -> Reuse {
        guard let token, token.clientID == clientID, let spentAt = token.spentAt else { return .refuse }
        if !token.revoked, now - spentAt <= reuseInterval, !successorUsed, let answer = token.successorAnswer {
            return .replay(answer)
        }
        return .revokeGrant
    }

    /// The rule for a code presented again after its redemption (RFC 6749 §4.1.2): the grant it
    /// started is revoked, whoever presents it.
    static func grantToRevoke(onReplayOf code: AuthorizationCodeRecord) -> String? {
        code.redeemed ? code.familyID : nil
    }
}
