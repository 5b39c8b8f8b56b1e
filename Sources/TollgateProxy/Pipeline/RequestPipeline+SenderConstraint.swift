import NIOCore
import TollgateCore

/// Sender-constrained tokens in the pipeline: DPoP proofs (RFC 9449) and client certificates
/// (RFC 8705), the origin a proof is held to, and the challenges that go with them.
extension RequestPipeline {
    /// `error` with a DPoP challenge beside the Bearer one when the route requires DPoP
    /// (RFC 9449 §7.1).
    func withDPoPChallenge(_ error: GateError, _ matched: MatchedRequest?) -> GateError {
        guard error.dpopChallenge == nil, let index = matched?.routeIndex,
            snapshot.configuration.routes.routes[index].dpop == .required
        else { return error }
        var error = error
        error.dpopChallenge = dpopChallenge
        return error
    }

    /// The DPoP mode for `matched` and the issuer of `token`: the route's, else the issuer's.
    func dpopMode(_ matched: MatchedRequest?, issuerName: String?) -> DPoPMode {
        if let index = matched?.routeIndex, let mode = snapshot.configuration.routes.routes[index].dpop { return mode }
        if let issuerName, let issuer = snapshot.configuration.issuer(named: issuerName) { return issuer.policy.dpop }
        return .allowed
    }

    var dpopChallenge: GateError.DPoPChallenge {
        GateError.DPoPChallenge(
            algorithms: snapshot.dpopAlgorithms,
            nonce: snapshot.configuration.dpop.requiresNonce
                ? snapshot.dpop.nonces.current(now: wallClockSeconds()) : nil
        )
    }

    /// RFC 9449 §7: a token bound to a key (`cnf.jkt`) only with a proof by that key; a proof
    /// only with a bound token; the DPoP mode of the route (or the issuer) respected.
    func bindingRefusal(_ token: VerifiedToken, matched: MatchedRequest, binding: TokenBinding) -> GateError? {
        let confirmation = token.claims["cnf"]
        let boundTo = confirmation?["jkt"]
        // A confirmation this gate does not know how to check (`cnf.jwk`, `cnf.kid`, a member of
        // another type) is never taken as no binding.
        if case .object(let members)? = confirmation {
            for (name, value) in members where !(["jkt", "x5t#S256"].contains(name) && value.stringValue != nil) {
                return GateError(.dpopBinding, "the token's cnf holds '\(name.prefix(40))', which is not checked here")
            }
        } else if confirmation != nil {
            return GateError(.dpopBinding, "the token's cnf is not an object")
        }
        if case .bearer = binding, boundTo == nil, !snapshot.requiresDPoPSomewhere { return nil }
        let mode = dpopMode(matched, issuerName: token.issuerName)
        var error: GateError
        switch binding {
        case .bearer:
            if boundTo == nil && mode != .required { return nil }
            error = GateError(
                .dpopBinding,
                boundTo != nil ? "a DPoP-bound token sent as a bearer token" : "DPoP is required on this route"
            )
        case .dpop(let proof):
            if mode == .off {
                error = GateError(.dpopBinding, "DPoP is off for this route")
            } else if case .string(let expected)? = boundTo {
                if expected == proof.thumbprint {
                    // RFC 9449 §11.1: the proof is good once.
                    if snapshot.dpop.replays.accept(proof, now: wallClockSeconds()) { return nil }
                    error = GateError(.invalidDPoPProof, "the proof was used before (or the replay cache is full)")
                    error.dpopChallenge = dpopChallenge
                    return error
                }
                error = GateError(.invalidDPoPProof, "the proof's key is not the one the token is bound to")
            } else {
                error = GateError(.dpopBinding, "a token that is not DPoP-bound sent with the DPoP scheme")
            }
        }
        error.dpopChallenge = dpopChallenge
        return error
    }

    /// The proof of a request presenting its token with the DPoP scheme (RFC 9449 §4.3 and §7.1),
    /// against this gate's own origin: the route's resource identifier, `server.public_url`, or
    /// the scheme and host a trusted proxy forwarded; never the client's own `Host`.
    func checkProof(
        digest: TokenDigest,
        method: String,
        target: String,
        head: RequestHead,
        matched: MatchedRequest
    ) -> Result<DPoPProof, GateError> {
        func refusal(_ code: GateError.Code, _ reason: String) -> Result<DPoPProof, GateError> {
            var error = GateError(code, reason)
            error.dpopChallenge = dpopChallenge
            return .failure(error)
        }
        let proofs = head.values(name: "dpop")
        guard proofs.count == 1 else {
            return refusal(.invalidDPoPProof, proofs.isEmpty ? "no DPoP proof" : "more than one DPoP proof")
        }
        guard let origin = publicOrigin(head: head, matched: matched) else {
            return refusal(.invalidDPoPProof, "this gate's public origin is not known (server.public_url)")
        }
        let now = wallClockSeconds()
        let nonces = snapshot.dpop.nonces
        var aging = false
        switch snapshot.dpopVerifier.verify(
            proofs[0],
            method: method,
            uri: origin + Self.pathOf(target),
            accessToken: digest,
            now: now,
            nonceIsValid: { nonce in
                guard nonces.isValid(nonce, now: now) else { return false }
                aging = nonce != nonces.current(now: now)
                return true
            }
        ) {
        case .failure(let failure):
            return refusal(failure.kind == .useNonce ? .useDPoPNonce : .invalidDPoPProof, failure.reason)
        case .success(var proof):
            proof.nonceIsAging = aging
            return .success(proof)
        }
    }

    /// The client certificate of the request: the TLS connection's; from a trusted proxy, only
    /// the one in its `Client-Cert`, and only when it is trusted to vouch for certificates.
    func presentedCertificate(_ head: RequestHead?) -> String? {
        if clientCertificate == nil && !snapshot.configuration.server.trustsClientCertHeader { return nil }
        guard snapshot.isTrusted(peer) else { return clientCertificate }
        // A trusted proxy (a forward-auth caller among them) terminated the client's TLS: its own
        // certificate is the proxy's and never speaks for the client.
        guard snapshot.configuration.server.trustsClientCertHeader, let head else { return nil }
        let values = head.values(name: "client-cert")
        guard values.count == 1 else { return nil }
        return CertificateBinding.thumbprint(clientCertField: values[0])
    }

    /// This gate's origin as its clients reach it, for `htu`.
    func publicOrigin(head: RequestHead, matched: MatchedRequest) -> String? {
        if let index = matched.routeIndex, let resource = snapshot.configuration.routes.routes[index].resource {
            // The identifier is validated as http(s)://authority[/path].
            let identifier = resource.identifier
            let schemeLength = identifier.hasPrefix("https://") ? 8 : 7
            let afterScheme = identifier.dropFirst(schemeLength)
            let authority = afterScheme.prefix { $0 != "/" }
            if let origin = PublicOrigin(String(identifier.prefix(schemeLength)) + authority) { return origin.text }
        }
        if let configured = snapshot.configuration.server.publicURL { return configured }
        if snapshot.isTrusted(peer), let proto = head.values(name: "x-forwarded-proto").last,
            let host = head.values(name: "x-forwarded-host").last,
            let origin = PublicOrigin(proto.trimmingSpaces() + "://" + host.trimmingSpaces())
        {
            return origin.text
        }
        return nil
    }
}
