import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Testing
import TollgateTestSupport

/// `tollgate demo`, the README's first command: the lines it prints are run exactly as printed,
/// and a second start reuses the data folder.
@Suite("Quickstart", .serialized)
struct QuickstartTests {
    static func start(_ data: URL, port: Int, adminPort: Int) async throws -> ExternalProcess {
        let process = try ExternalProcess(
            TollgateBinary.path,
            ["demo", "--data", data.path, "--port", "\(port)", "--admin-port", "\(adminPort)"]
        )
        let deadline = ContinuousClock.now + .seconds(30)
        while !process.log.contains("Stop with Ctrl-C") && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        return process
    }

    /// Ctrl-C (SIGINT) and SIGTERM end the demo — gate, issuer and demo upstream — well within
    /// the drain grace (30 s), with exit status 0, and the ports are free again.
    @Test(arguments: [SIGINT, SIGTERM])
    func theDemoExitsOnASignal(_ signal: Int32) async throws {
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-demo-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: data) }
        let port = try Ports.free()
        let adminPort = try Ports.free()
        let demo = try await Self.start(data, port: port, adminPort: adminPort)
        defer { demo.stop() }
        #expect(demo.log.contains("Stop with Ctrl-C"))
        demo.signal(signal)
        #expect(await demo.waitForExit(timeout: .seconds(20)), "\(demo.log)")
        #expect(demo.process.terminationStatus == 0)
        #expect(await Ports.refuses(port))
        #expect(await Ports.refuses(adminPort))
    }

    /// The indented lines under "Try it (bash):".
    static func commands(_ log: String) -> [String] {
        var lines: [String] = []
        var inBlock = false
        for line in log.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("Try it") {
                inBlock = true
                continue
            }
            if inBlock {
                if line.isEmpty { break }
                lines.append(String(line.dropFirst(2)))
            }
        }
        return lines
    }

    @Test func thePrintedLinesShowA200A401AndA403AndTheDataIsReused() async throws {
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-demo-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: data) }
        let port = try Ports.free()
        let adminPort = try Ports.free()
        let demo = try await Self.start(data, port: port, adminPort: adminPort)
        let log = demo.log
        #expect(log.contains("created now"))
        let commands = Self.commands(log)
        #expect(commands.count == 4, "\(log)")
        #expect(commands.allSatisfy { $0.hasPrefix("curl ") || $0.hasPrefix("TOKEN=$(curl ") })
        // The secret is read from its file, never printed.
        let secret = try String(contentsOf: data.appendingPathComponent("svc.secret"), encoding: .utf8)
        #expect(!log.contains(secret))

        // Exactly the printed lines, in one shell, one after the other.
        let script = commands.map { $0 + "\necho '--- next ---'" }.joined(separator: "\n")
        let shell = try ExternalProcess("/bin/bash", ["-c", script])
        #expect(await shell.waitForExit(timeout: .seconds(30)))
        let outputs = shell.log.components(separatedBy: "--- next ---\n")
        shell.stop()
        #expect(outputs.count == 5, "\(outputs)")
        #expect(outputs[1].contains("The demo upstream received:"))
        #expect(outputs[1].contains("X-Auth-Subject: @demo/svc"))
        #expect(outputs[1].contains("X-Auth-Scope: @demo/orders.read"))
        #expect(outputs[2].hasPrefix("HTTP/1.1 401"))
        #expect(outputs[2].contains(#"WWW-Authenticate: Bearer realm="demo""#))
        #expect(outputs[3].hasPrefix("HTTP/1.1 403"))
        #expect(outputs[3].contains(#"error="insufficient_scope""#))

        // The browser line opens the sign-in page.
        let authorize = try #require(
            log.split(separator: "\n").first { $0.contains("/oauth2/authorize?") }?.trimmingCharacters(in: .whitespaces)
        )
        let page = try await HTTPClient.shared.execute(HTTPClientRequest(url: authorize), timeout: .seconds(10))
        #expect(page.status.code == 200)
        let html = String(buffer: try await page.body.collect(upTo: 1 << 20))
        #expect(html.contains("name=\"password\""))

        let jwksBefore = try await Self.jwks(port)
        demo.stop()
        let again = try await Self.start(data, port: port, adminPort: adminPort)
        defer { again.stop() }
        #expect(again.log.contains("reused"))
        #expect(try await Self.jwks(port) == jwksBefore, "the signing key survives the restart")
    }

    static func jwks(_ port: Int) async throws -> String {
        let response = try await HTTPClient.shared.execute(
            HTTPClientRequest(url: "http://127.0.0.1:\(port)/oauth2/jwks"),
            timeout: .seconds(10)
        )
        return String(buffer: try await response.body.collect(upTo: 1 << 16))
    }
}
