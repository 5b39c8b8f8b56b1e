import AsyncHTTPClient
import Logging

extension TokenVerifier {
    /// Builds the verifier for a loaded configuration: one key cache and introspection client per
    /// issuer, sharing `client`.
    public convenience init(
        configuration: TollgateConfiguration,
        client: HTTPClient,
        logger: Logger = Logger(label: "tollgate.verifier"),
        now: @escaping @Sendable () -> Double = wallClockSeconds
    ) {
        let issuers = configuration.issuers.map { issuer in
            let hmacKeys = issuer.hmacSecret.map { [VerificationKey.hmac(secret: Array($0.value.utf8))] } ?? []
            // An issuer with only an HMAC secret gets a fixed, otherwise empty, key set.
            let source = issuer.keySource ?? (hmacKeys.isEmpty ? nil : .fixed(JSONWebKeySetBox(.empty)))
            return IssuerVerifier(
                policy: issuer.policy,
                keys: source.map { source in
                    JWKSCache(
                        issuerName: issuer.policy.name,
                        source: source,
                        policy: issuer.refresh,
                        additionalKeys: hmacKeys,
                        client: client,
                        logger: logger,
                        now: now
                    )
                },
                introspection: issuer.introspection.map { settings in
                    IntrospectionClient(
                        settings: settings,
                        policy: issuer.policy,
                        client: client,
                        logger: logger,
                        now: now
                    )
                }
            )
        }
        self.init(issuers: issuers, cache: VerifiedTokenCache(maximumEntries: configuration.cacheEntries), now: now)
    }

    /// Runs every issuer's background key refresh until cancelled.
    public func runKeyRefresh() async {
        await withTaskGroup(of: Void.self) { group in
            for issuer in issuers {
                if let keys = issuer.keys { group.addTask { await keys.run() } }
            }
        }
    }
}
