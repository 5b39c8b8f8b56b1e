import AsyncHTTPClient
import Atomics
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Prometheus
import TollgateCore

/// The live state shared by every connection: the current snapshot (swapped atomically on
/// reload), the metrics and the draining flag. A request reads the snapshot once; nothing on
/// the request path takes a lock or hops to an actor.
public final class ProxyRuntime: Sendable {
    private let current: ManagedAtomic<ProxySnapshot>
    private let draining = ManagedAtomic<Bool>(false)
    public let metrics: ProxyMetrics
    let group: any EventLoopGroup
    let client: HTTPClient
    let logger: Logger
    /// Background key refreshes, by key cache identity, so a reload starts new ones and stops
    /// the ones no longer used.
    private let refreshTasks = NIOLockedValueBox<[ObjectIdentifier: Task<Void, Never>]>([:])

    public init(
        configuration: TollgateConfiguration,
        group: any EventLoopGroup,
        client: HTTPClient,
        metrics: ProxyMetrics = ProxyMetrics(),
        logger: Logger = Logger(label: "tollgate")
    ) throws {
        self.group = group
        self.client = client
        self.metrics = metrics
        self.logger = logger
        let snapshot = try Self.makeSnapshot(
            configuration,
            previous: nil,
            group: group,
            client: client,
            metrics: metrics,
            logger: logger
        )
        current = ManagedAtomic(snapshot)
        startRefreshes(for: snapshot.verifier)
    }

    public var snapshot: ProxySnapshot { current.load(ordering: .acquiring) }

    public var isDraining: Bool { draining.load(ordering: .relaxed) }

    public var isReady: Bool { !isDraining && snapshot.verifier.isReady }

    func startDraining() { draining.store(true, ordering: .relaxed) }

    /// Validates `path` and swaps the new configuration in; an invalid file changes nothing.
    @discardableResult
    public func reload(from path: String) async -> Result<Void, ConfigurationError> {
        let loaded: TollgateConfiguration
        do {
            loaded = try ConfigurationLoader.load(path: path)
        } catch {
            metrics.reloadFailures.increment()
            logger.error("configuration refused, the previous one keeps serving", metadata: ["error": "\(error)"])
            return .failure(error)
        }
        do {
            try await apply(loaded)
        } catch {
            metrics.reloadFailures.increment()
            logger.error("configuration refused, the previous one keeps serving", metadata: ["error": "\(error)"])
            return .failure(
                ConfigurationError(file: path, line: nil, column: nil, field: "", message: "\(error)")
            )
        }
        return .success(())
    }

    /// Swaps in `configuration`. Issuers and the upstream pool are kept when unchanged (keys and
    /// cached claims survive); a changed issuer set gets a new verifier whose keys are loaded,
    /// for up to five seconds, before it starts answering.
    public func apply(_ configuration: TollgateConfiguration) async throws {
        let previous = snapshot
        let next = try Self.makeSnapshot(
            configuration,
            previous: previous,
            group: group,
            client: client,
            metrics: metrics,
            logger: logger
        )
        if next.verifier !== previous.verifier {
            startRefreshes(for: next.verifier)
            let deadline = ContinuousClock.now + .seconds(5)
            while !next.verifier.isReady && ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        current.store(next, ordering: .releasing)
        if next.verifier !== previous.verifier { stopRefreshes(for: previous.verifier) }
        if let oldPools = previous.pools, next.pools !== oldPools { oldPools.closeAll() }
        metrics.reloads.increment()
        logger.info("configuration applied", metadata: ["file": "\(configuration.file)"])
    }

    static func makeSnapshot(
        _ configuration: TollgateConfiguration,
        previous: ProxySnapshot?,
        group: any EventLoopGroup,
        client: HTTPClient,
        metrics: ProxyMetrics,
        logger: Logger
    ) throws -> ProxySnapshot {
        let verifier: TokenVerifier
        if let previous, previous.configuration.issuers == configuration.issuers,
            previous.configuration.cacheEntries == configuration.cacheEntries
        {
            verifier = previous.verifier
        } else {
            verifier = TokenVerifier(configuration: configuration, client: client, logger: logger)
        }
        let pools: UpstreamPools?
        if let upstream = configuration.upstream {
            if let previousPools = previous?.pools, previousPools.settings == upstream {
                pools = previousPools
            } else {
                pools = try UpstreamPools(settings: upstream, group: group)
            }
        } else {
            pools = nil
        }
        return ProxySnapshot(configuration: configuration, verifier: verifier, metrics: metrics, pools: pools)
    }

    private func startRefreshes(for verifier: TokenVerifier) {
        refreshTasks.withLockedValue { tasks in
            for issuer in verifier.issuers {
                guard let keys = issuer.keys else { continue }
                let key = ObjectIdentifier(keys)
                if tasks[key] == nil { tasks[key] = Task { await keys.run() } }
            }
        }
    }

    private func stopRefreshes(for verifier: TokenVerifier) {
        let stillUsed = Set(snapshot.verifier.issuers.compactMap { $0.keys.map(ObjectIdentifier.init) })
        refreshTasks.withLockedValue { tasks in
            for issuer in verifier.issuers {
                guard let keys = issuer.keys else { continue }
                let key = ObjectIdentifier(keys)
                if !stillUsed.contains(key) { tasks.removeValue(forKey: key)?.cancel() }
            }
        }
    }

    /// Stops background work (key refreshes) and closes idle upstream connections.
    public func shutdown() {
        let tasks = refreshTasks.withLockedValue { tasks in
            defer { tasks.removeAll() }
            return Array(tasks.values)
        }
        for task in tasks { task.cancel() }
        snapshot.pools?.closeAll()
    }
}
