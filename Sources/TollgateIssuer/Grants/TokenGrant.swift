import HTTPTypes
import Logging
import TollgateCore

/// One grant type of the token endpoint (RFC 6749 §4). A new grant (token exchange, a
/// DPoP-bound variant) is one type conforming to this, in a file of its own, its record if it
/// needs one, and one entry in `TokenGrants.registry`.
protocol TokenGrant: Sendable {
    var type: GrantType { get }
    /// Exchanges what `form` presents for tokens, for the authenticated `client`, which the
    /// issuer and the client both allow this grant.
    /// - Parameter binding: the DPoP proof's key and the client certificate the request proved
    ///   it holds, when it did: the tokens are bound to them.
    func exchange(
        client: RegisteredClient,
        form: [String: String],
        binding: SenderBinding,
        issuer: OAuthIssuer
    ) async throws -> IssuerResponse
}

/// The grants the token endpoint knows.
enum TokenGrants {
    static let registry: [GrantType: any TokenGrant] = {
        let grants: [any TokenGrant] = [
            AuthorizationCodeGrant(), RefreshTokenGrant(), ClientCredentialsGrant(), DeviceCodeGrant(),
        ]
        return Dictionary(uniqueKeysWithValues: grants.map { ($0.type, $0) })
    }()
}

extension OAuthIssuer {
    /// The token endpoint (RFC 6749 §3.2): the grant type, client authentication, then the
    /// grant's own exchange.
    func token(_ request: HTTPRequest, form: [String: String]) async throws -> IssuerResponse {
        guard let grantName = form["grant_type"] else { throw IssuerError.invalidRequest("'grant_type' is missing") }
        guard let type = GrantType(rawValue: grantName), options.grantTypes.contains(type),
            let grant = TokenGrants.registry[type]
        else { throw IssuerError.unsupportedGrantType }
        let client = try await authenticateClient(request, form: form)
        guard client.grantTypes.contains(type) else {
            throw IssuerError.unauthorizedClient("the client may not use \(type.rawValue)")
        }
        let proof = try tokenEndpointProof(request)
        if client.requiresDPoP == true && proof == nil {
            throw IssuerError.invalidDPoPProof("this client's tokens are DPoP-bound: a proof is required")
        }
        // RFC 8705 §3: a client declared for certificate-bound tokens gets them only over a
        // connection that presented its certificate.
        var binding = SenderBinding(dpopJKT: proof?.thumbprint)
        if client.certificateBoundAccessTokens == true {
            guard let certificate = Self.clientCertificate else {
                throw IssuerError.invalidRequest("this client's tokens are certificate-bound: no client certificate")
            }
            binding.certificateThumbprint = certificate
        }
        guard let proof else {
            return try await grant.exchange(client: client, form: form, binding: binding, issuer: self)
        }
        // The proof is claimed before the exchange, so two requests with one proof cannot both
        // run it; forgotten again when the exchange fails, so proofs of failing requests (any
        // public client's id is enough to make one) take no room.
        guard dpopReplays.accept(proof, now: Double(now())) else {
            throw IssuerError.invalidDPoPProof("the proof was used before (or too many proofs are remembered)")
        }
        // RFC 9449 §8.2: the nonce for the client's next request goes with every answer to a
        // valid proof, an error (a device's authorization_pending) as well as tokens.
        let nonce = options.dpop.requiresNonce ? dpopNonces.current(now: Double(now())) : nil
        do {
            var answer = try await grant.exchange(client: client, form: form, binding: binding, issuer: self)
            if let nonce { answer.head.headerFields[IssuerResponse.dpopNonce] = nonce }
            return answer
        } catch var error as IssuerError {
            dpopReplays.forget(proof)
            error.dpopNonce = nonce
            throw error
        } catch {
            dpopReplays.forget(proof)
            throw error
        }
    }

    /// One DPoP proof for `request` to `uri`, checked (RFC 9449 §4.3); `nil` without a `DPoP`
    /// header.
    /// A missing or stale server nonce (when `dpop.requiresNonce`) is `use_dpop_nonce` with a
    /// fresh one (RFC 9449 §8).
    func verifiedProof(_ request: HTTPRequest, uri: String, accessToken: String?) throws(IssuerError) -> DPoPProof? {
        let proofs = request.headerFields[values: HTTPField.Name("DPoP")!]
        if proofs.isEmpty { return nil }
        guard proofs.count == 1 else { throw IssuerError.invalidDPoPProof("more than one DPoP proof") }
        let now = Double(now())
        let nonces = dpopNonces
        switch DPoPProofVerifier(settings: options.dpop).verify(
            proofs[0],
            method: request.method.rawValue,
            uri: uri,
            accessToken: accessToken.map { TokenDigest(token: $0) },
            now: now,
            nonceIsValid: { nonces.isValid($0, now: now) }
        ) {
        case .failure(let failure) where failure.kind == .useNonce:
            var error = IssuerError(.useDPoPNonce, failure.reason)
            error.dpopNonce = nonces.current(now: now)
            throw error
        case .failure(let failure): throw IssuerError.invalidDPoPProof(failure.reason)
        case .success(let proof): return proof
        }
    }

    /// RFC 9449 §4–5: a `DPoP` header at the token endpoint is one proof for this POST, by a
    /// key whose thumbprint the tokens are bound to; a bad one is `invalid_dpop_proof`.
    func tokenEndpointProof(_ request: HTTPRequest) throws(IssuerError) -> DPoPProof? {
        try verifiedProof(request, uri: url(.token), accessToken: nil)
    }
}
