import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOPosix
import TollgateCore

/// A started Tollgate: the runtime, the proxy listener and the admin listener. `tollgate serve`
/// runs one under swift-service-lifecycle; tests start them in-process.
public final class RunningProxy: Sendable {
    public let runtime: ProxyRuntime
    public let server: ProxyServer
    public let admin: AdminServer
    public let configurationPath: String?
    private let client: HTTPClient
    private let ownsClient: Bool

    private init(
        runtime: ProxyRuntime,
        server: ProxyServer,
        admin: AdminServer,
        configurationPath: String?,
        client: HTTPClient,
        ownsClient: Bool
    ) {
        self.runtime = runtime
        self.server = server
        self.admin = admin
        self.configurationPath = configurationPath
        self.client = client
        self.ownsClient = ownsClient
    }

    public var port: Int { server.port }
    public var adminPort: Int { admin.port }

    /// The event loops `tollgate serve` runs on: `server.threads`, else one per CPU in the
    /// process's affinity mask (`taskset`, cpusets), not one per CPU of the machine.
    public static func makeEventLoopGroup(for configuration: TollgateConfiguration) -> MultiThreadedEventLoopGroup {
        MultiThreadedEventLoopGroup(numberOfThreads: configuration.server.threads ?? availableCPUs())
    }

    static func availableCPUs() -> Int {
        // `Cpus_allowed` is the affinity mask in hex (glibc's sched_getaffinity is not visible
        // from Swift without _GNU_SOURCE).
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed:") })
        {
            let count = line.dropFirst("Cpus_allowed:".count).reduce(0) { total, character in
                total + (character.hexDigitValue?.nonzeroBitCount ?? 0)
            }
            if count > 0 { return min(count, System.coreCount) }
        }
        return System.coreCount
    }

    /// Starts the listeners named in `configuration` (`listen`, `admin`; port 0 picks a free one).
    public static func start(
        configuration: TollgateConfiguration,
        configurationPath: String? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        client: HTTPClient? = nil,
        logger: Logger = Logger(label: "tollgate"),
        localEndpoints: (any LocalEndpoints)? = nil,
        inProcess: InProcessIssuers = InProcessIssuers()
    ) async throws -> RunningProxy {
        let httpClient = client ?? OutboundHTTP.makeClient()
        do {
            let runtime = try ProxyRuntime(
                configuration: configuration,
                group: group,
                client: httpClient,
                logger: logger,
                localEndpoints: localEndpoints,
                inProcess: inProcess
            )
            let listen = try HostPort(configuration.listen)
            let adminAddress = try HostPort(configuration.admin)
            let server = try await ProxyServer.start(runtime: runtime, host: listen.host, port: listen.port)
            let admin: AdminServer
            do {
                admin = try await AdminServer.start(runtime: runtime, host: adminAddress.host, port: adminAddress.port)
            } catch {
                await server.close()
                throw error
            }
            return RunningProxy(
                runtime: runtime,
                server: server,
                admin: admin,
                configurationPath: configurationPath,
                client: httpClient,
                ownsClient: client == nil
            )
        } catch {
            if client == nil { try? await httpClient.shutdown() }
            throw error
        }
    }

    /// Reloads the configuration file whenever its modification time or size changes, until
    /// cancelled. (SIGHUP reloads at once, see `tollgate serve`.)
    public func watchConfiguration(every interval: Duration = .seconds(1)) async {
        guard let path = configurationPath else { return }
        var last = Self.fingerprint(path)
        while !Task.isCancelled {
            do { try await Task.sleep(for: interval) } catch { return }
            let now = Self.fingerprint(path)
            if now != last {
                last = now
                await runtime.reload(from: path)
            }
        }
    }

    static func fingerprint(_ path: String) -> [Double] {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else { return [] }
        let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        let size = (attributes[.size] as? NSNumber)?.doubleValue ?? 0
        return [modified, size]
    }

    /// Graceful stop: readiness turns false, the listener stops accepting, in-flight requests
    /// finish (up to `grace`), then everything closes.
    public func stop(grace: Duration = .seconds(30)) async {
        runtime.startDraining()
        await server.drain(grace: grace)
        await server.close()
        await admin.close()
        runtime.shutdown()
        AccessLog.flushAll()
        if ownsClient { try? await client.shutdown() }
    }
}

/// `host:port` from the configuration (`[::1]:8080` for IPv6).
struct HostPort {
    var host: String
    var port: Int

    init(_ text: String) throws {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else {
            throw ConfigurationError(
                file: "",
                line: nil,
                column: nil,
                field: "listen",
                message: "bad address '\(text)'"
            )
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.host = host
        self.port = port
    }
}
