import Crypto
import HTTPTypes
import Logging
import TollgateCore

extension OAuthIssuer {
    struct IssuedDigests {
        var access: [String]
        var refresh: RefreshTokenRecord?
    }

    /// The token response for a person: access token, ID token with `openid`, refresh token with
    /// `offline_access` (when the client may refresh).
    func tokenAnswer(
        client: RegisteredClient,
        username: String,
        scopes: [String],
        resource: String?,
        authenticatedAt: Int,
        nonce: String?,
        familyID: String,
        generation: Int,
        keepOfflineAccess: Bool = false,
        binding: SenderBinding = SenderBinding()
    ) async throws -> (JSONValue, IssuedDigests) {
        let subject = self.subject(for: username, client: client)
        let minted = try await mintAccessToken(
            client: client,
            subject: subject,
            scopes: scopes,
            resource: resource,
            familyID: familyID,
            username: username,
            authenticatedAt: authenticatedAt,
            binding: binding
        )
        var answer: [String: JSONValue] = [
            "access_token": .string(minted.token),
            // RFC 9449 §5: DPoP when the token is bound to the proof's key.
            "token_type": .string(minted.isBound ? "DPoP" : "Bearer"),
            "expires_in": .number(Double(minted.record.expiresAt - minted.record.issuedAt)),
            "scope": .string(scopes.joined(separator: " ")),
        ]
        if scopes.contains("openid") {
            answer["id_token"] = .string(
                try await idToken(
                    client: client,
                    username: username,
                    subject: subject,
                    scopes: scopes,
                    authenticatedAt: authenticatedAt,
                    nonce: nonce,
                    accessToken: minted.token
                )
            )
        }
        var issued = IssuedDigests(access: [minted.record.digest], refresh: nil)
        if (scopes.contains("offline_access") || keepOfflineAccess), client.grantTypes.contains(.refreshToken),
            options.grantTypes.contains(.refreshToken)
        {
            let refreshToken = RandomToken.make()
            let refreshTTL = options.refreshTokenTTL(for: client)
            answer["refresh_token"] = .string(refreshToken)
            // Not in RFC 6749, but what Keycloak answers and relying parties (py_oidc_auth) read.
            answer["refresh_expires_in"] = .number(Double(refreshTTL))
            issued.refresh = RefreshTokenRecord(
                digest: RandomToken.digest(refreshToken),
                familyID: familyID,
                generation: generation,
                clientID: client.id,
                username: username,
                scopes: scopes,
                resource: resource,
                authenticatedAt: authenticatedAt,
                expiresAt: now() + refreshTTL,
                spentAt: nil,
                successorAnswer: nil,
                successorDigest: nil,
                revoked: false
            )
            issued.refresh?.value = keptValue(refreshToken)
            // RFC 9449 §5 and RFC 8705 §4: a public client's refresh token is bound too (a
            // confidential one authenticates when it refreshes).
            if client.secret == nil {
                issued.refresh?.dpopJKT = binding.dpopJKT
                issued.refresh?.certificateThumbprint = binding.certificateThumbprint
            }
        }
        return (.object(answer), issued)
    }

    /// OpenID Connect Core §2, with `at_hash` (§3.1.3.6) and `azp`.
    func idToken(
        client: RegisteredClient,
        username: String,
        subject: String,
        scopes: [String],
        authenticatedAt: Int,
        nonce: String?,
        accessToken: String
    ) async throws -> String {
        let issuedAt = now()
        let signer = try idTokenSigner(for: client)
        var claims: [String: JSONValue] = [
            "iss": .string(options.issuer),
            "sub": .string(subject),
            "aud": .string(client.id),
            "azp": .string(client.id),
            "iat": .number(Double(issuedAt)),
            "exp": .number(Double(issuedAt + options.idTokenTTL(for: client))),
            "auth_time": .number(Double(authenticatedAt)),
            "acr": .string(options.acr),
            "at_hash": .string(Self.tokenHash(accessToken, hashSize: signer.hashSize)),
        ]
        if let nonce { claims["nonce"] = .string(nonce) }
        if let user = try await store.user(username: username) {
            claims.merge(releasedClaims(user, scopes: scopes)) { own, _ in own }
        }
        return try signer.sign(claims: .object(claims), type: "JWT")
    }

    /// OpenID Connect Core §3.1.3.6 `at_hash` (and §3.3.2.11 `c_hash`): the left half of the
    /// hash of the ID token's `alg` — SHA-256 for RS256, PS256, ES256 and HS256, SHA-384 and
    /// SHA-512 for their 384 and 512 kin, SHA-512 for EdDSA with Ed25519 (as the OpenID
    /// conformance suite and openid-client compute it).
    static func tokenHash(_ value: String, hashSize: Int) -> String {
        let bytes = Array(value.utf8)
        let digest: [UInt8]
        switch hashSize {
        case 384: digest = Array(SHA384.hash(data: bytes))
        case 512: digest = Array(SHA512.hash(data: bytes))
        default: digest = Array(SHA256.hash(data: bytes))
        }
        return Base64URL.encode(digest.prefix(digest.count / 2))
    }

    /// The person's claims the granted scopes release, and those `extra` names.
    func releasedClaims(_ user: IssuerUser, scopes: [String], extra: [String] = []) -> [String: JSONValue] {
        ClaimRelease.claims(of: user, scopes: scopes, extra: extra, mapping: options.scopeClaims)
    }

    /// The user's `sub` for `client`: the user name, or, with `pairwise_secret`, a value that
    /// differs per sector (the host of the client's first redirect URI).
    func subject(for username: String, client: RegisteredClient) -> String {
        guard let secret = options.pairwiseSecret else { return username }
        let sector = client.redirectURIs.first.map(Self.host(of:)) ?? client.id
        let digest = SHA256.hash(data: Array((sector + "\u{0}" + username + "\u{0}" + secret).utf8))
        return Base64URL.encode(Array(digest))
    }

    static func host(of uri: String) -> String {
        let parts = uri.split(separator: "/", maxSplits: 3, omittingEmptySubsequences: false)
        return parts.count >= 3 ? String(parts[2]) : uri
    }

    // MARK: - userinfo (OpenID Connect Core §5.3)

    func userinfo(_ request: HTTPRequest, body: [UInt8]) async throws -> IssuerResponse {
        var token: String?
        var withProof = false
        if let header = request.headerFields[.authorization], header.lowercased().hasPrefix("bearer ") {
            token = String(header.dropFirst(7)).trimmingSpacesAndTabs()
        } else if let header = request.headerFields[.authorization], header.lowercased().hasPrefix("dpop ") {
            token = String(header.dropFirst(5)).trimmingSpacesAndTabs()
            withProof = true
        } else if request.method == .post, let form = try? form(request, body) {
            token = form["access_token"]
        }
        guard let token, !token.isEmpty else {
            throw IssuerError(.missingToken, "the request carries no access token")
        }
        guard let record = try await activeRecord(for: token), record.kind == .access else {
            throw IssuerError(.invalidToken, "the access token is not active")
        }
        // RFC 8705 §3: a certificate-bound token only over a connection with that certificate.
        if let bound = record.certificateThumbprint, bound != Self.clientCertificate {
            throw IssuerError(.invalidToken, "the access token is bound to another client certificate")
        }
        // RFC 9449 §7: a bound token only with the DPoP scheme and a proof by its key.
        if let bound = record.dpopJKT {
            guard withProof else {
                throw IssuerError(.invalidToken, "the access token is DPoP-bound: send it with the DPoP scheme")
            }
            // RFC 9449 §7.1: a bad proof is `invalid_dpop_proof` (or `use_dpop_nonce`) with a DPoP
            // challenge naming the algorithms.
            let algorithms = options.dpop.algorithms.map(\.rawValue).sorted().joined(separator: " ")
            func refusal(_ code: IssuerError.Code, _ description: String, nonce: String? = nil) -> IssuerError {
                var error = IssuerError(code, description)
                error.dpopAlgorithms = algorithms
                error.dpopNonce = nonce
                return error
            }
            let proof: DPoPProof?
            do {
                proof = try verifiedProof(request, uri: url(.userinfo), accessToken: token)
            } catch  where error.code == .useDPoPNonce {
                throw refusal(.useDPoPNonceAtResource, error.description, nonce: error.dpopNonce)
            } catch {
                throw refusal(.invalidDPoPProofAtResource, error.description)
            }
            guard let proof else { throw refusal(.invalidDPoPProofAtResource, "no DPoP proof") }
            guard proof.thumbprint == bound else {
                throw refusal(.invalidDPoPProofAtResource, "the proof's key is not the token's")
            }
            guard dpopReplays.accept(proof, now: Double(now())) else {
                throw refusal(.invalidDPoPProofAtResource, "the proof was used before")
            }
        } else if withProof {
            throw IssuerError(.invalidToken, "the access token is not DPoP-bound")
        }
        guard record.scope.contains("openid") else {
            throw IssuerError(.insufficientScope, "the access token was not granted openid")
        }
        var claims: [String: JSONValue] = ["sub": .string(record.subject)]
        if let username = record.username, let user = try await store.user(username: username) {
            claims.merge(releasedClaims(user, scopes: record.scope)) { own, _ in own }
        }
        return .json(.object(claims), headers: IssuerResponse.noStore)
    }
}

extension String {
    func trimmingSpacesAndTabs() -> String {
        var text = Substring(self)
        while text.first == " " || text.first == "\t" { text = text.dropFirst() }
        while text.last == " " || text.last == "\t" { text = text.dropLast() }
        return String(text)
    }
}
