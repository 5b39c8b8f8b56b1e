import AsyncHTTPClient
import Logging

extension TokenVerifier {
    /// Builds the verifier for a loaded configuration: one key cache and introspection client per
    /// issuer, sharing `client`. A verified JWT keeps only what the configuration reads
    /// (`ClaimProjection`): a configuration that reads other claims needs a new verifier.
    ///
    /// - Parameter previous: the configuration and verifier being replaced: an issuer configured
    ///   exactly as before keeps its key cache (loaded keys, refresh schedule) and introspection
    ///   client, so a reload neither refetches its keys nor waits for them.
    public convenience init(
        configuration: TollgateConfiguration,
        reusing previous: (configuration: TollgateConfiguration, verifier: TokenVerifier)? = nil,
        inProcess: InProcessIssuers = InProcessIssuers(),
        client: HTTPClient,
        logger: Logger = Logger(label: "tollgate.verifier"),
        now: @escaping @Sendable () -> Double = wallClockSeconds
    ) {
        let issuers = configuration.issuers.map { issuer in
            if let previous,
                let index = previous.configuration.issuers.firstIndex(where: {
                    $0.policy.name == issuer.policy.name && $0 == issuer
                }), index < previous.verifier.issuers.count
            {
                return previous.verifier.issuers[index]
            }
            if issuer.keySource == .inProcess {
                let sources = inProcess.sources[issuer.policy.name]
                return IssuerVerifier(
                    policy: issuer.policy,
                    keys: sources?.keys,
                    introspection: sources?.introspection,
                    revocations: sources?.revocations
                )
            }
            return Self.makeIssuerVerifier(issuer, client: client, logger: logger, now: now)
        }
        self.init(
            issuers: issuers,
            cache: VerifiedTokenCache(maximumEntries: configuration.cacheEntries),
            claimProjection: ClaimProjection(configuration),
            now: now
        )
    }

    static func makeIssuerVerifier(
        _ issuer: IssuerConfiguration,
        client: HTTPClient,
        logger: Logger,
        now: @escaping @Sendable () -> Double
    ) -> IssuerVerifier {
        let hmacKeys = issuer.hmacSecret.map { [VerificationKey.hmac(secret: Array($0.value.utf8))] } ?? []
        // An issuer with only an HMAC secret gets a fixed, otherwise empty, key set.
        let source = issuer.keySource ?? (hmacKeys.isEmpty ? nil : .fixed(JSONWebKeySetBox(.empty)))
        let keys = source.map { source in
            JWKSCache(
                issuerName: issuer.policy.name,
                source: source,
                policy: issuer.refresh,
                additionalKeys: hmacKeys,
                client: client,
                logger: logger,
                now: now
            )
        }
        return IssuerVerifier(
            policy: issuer.policy,
            keys: keys,
            introspection: issuer.introspection.map { settings in
                IntrospectionClient(
                    settings: settings,
                    policy: issuer.policy,
                    client: client,
                    logger: logger,
                    now: now,
                    // RFC 9701: signed answers are verified with the issuer's own key set.
                    responseKeys: keys.map { keys in
                        { @Sendable refresh in
                            if refresh { await keys.refreshForUnknownKey() }
                            return keys.currentKeys()
                        }
                    }
                )
            }
        )
    }
}

/// The issuers running in this process, by their name in the configuration: their key sources,
/// introspection sources and revoked grants, handed to the verifier instead of a JWKS URL and an
/// endpoint.
public struct InProcessIssuers: Sendable {
    public struct Sources: Sendable {
        public var keys: any VerificationKeySource
        public var introspection: any IntrospectionSource
        public var revocations: (any GrantRevocationSource)?

        public init(
            keys: any VerificationKeySource,
            introspection: any IntrospectionSource,
            revocations: (any GrantRevocationSource)? = nil
        ) {
            self.keys = keys
            self.introspection = introspection
            self.revocations = revocations
        }
    }

    public var sources: [String: Sources]

    public init(sources: [String: Sources] = [:]) {
        self.sources = sources
    }
}
