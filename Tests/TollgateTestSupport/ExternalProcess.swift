import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// A program the tests start for real (nginx, the tollgate binary), stopped when done.
public final class ExternalProcess: @unchecked Sendable {
    public let process: Process
    public let output: URL

    /// - Parameter standardOutput: where the program's standard output goes; by default the
    ///   same file as its standard error (`log`).
    public init(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String]? = nil,
        standardOutput: Pipe? = nil
    ) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        output = FileManager.default.temporaryDirectory.appendingPathComponent(
            "tollgate-process-\(UUID().uuidString).log"
        )
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        let handle = try FileHandle(forWritingTo: output)
        process.standardOutput = standardOutput ?? handle
        process.standardError = handle
        try process.run()
    }

    public var log: String { (try? String(contentsOf: output, encoding: .utf8)) ?? "" }

    public func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// SIGTERM, then SIGKILL after two seconds (some servers, grpcio's among them, ignore SIGTERM).
    public func stop() {
        if process.isRunning {
            process.terminate()
            var waited = 0
            while process.isRunning && waited < 200 {
                usleep(10_000)
                waited += 1
            }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: output)
    }

    /// Waits for the process to exit, up to `timeout`; true when it did.
    public func waitForExit(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        return !process.isRunning
    }
}

public enum Ports {
    /// The next port to try, below Linux's ephemeral range (32768–60999): a server another test
    /// binds to port 0 is given an ephemeral port, so it can never take one handed out here
    /// between the hand-out and the bind of the process it was meant for.
    private static let next = Mutex(20_000 + Int(getpid() % 500) * 20)

    /// A port that was free a moment ago, and that no other test of this process is given.
    public static func free() throws -> Int {
        for _ in 0..<2_000 {
            let port = next.withLock { port -> Int in
                let current = port
                port = port >= 32_000 ? 20_000 : port + 1
                return current
            }
            guard
                let channel = try? ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .bind(host: "127.0.0.1", port: port).wait()
            else { continue }
            try channel.close().wait()
            return port
        }
        throw NoFreePort()
    }

    struct NoFreePort: Error {}

    /// Waits until something accepts connections on `port`.
    public static func waitUntilListening(_ port: Int, timeout: Duration = .seconds(20)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let channel = try? await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: port).get()
            {
                try? await channel.close()
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw RawHTTPClient.Failure(description: "nothing listens on \(port) after \(timeout)")
    }

    /// Whether a connection to `port` is refused now.
    public static func refuses(_ port: Int) async -> Bool {
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: port).get()
            try? await channel.close()
            return false
        } catch {
            return true
        }
    }
}
