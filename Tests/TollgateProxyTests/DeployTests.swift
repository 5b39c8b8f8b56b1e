import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Testing
import TollgateCore
import TollgateTestSupport

/// What ships in deploy/: `tollgate inject` on a sample workload, and the sidecar's ConfigMap
/// running unchanged (but for the issuer URL) in front of a real upstream with a real issuer.
@Suite("Deploy", .serialized)
struct DeployTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let sample = root.appendingPathComponent("Tests/Interop/kubernetes/plain-app.yaml").path

    static func run(
        _ arguments: [String],
        input: String? = nil
    ) throws -> (status: Int32, output: String, error: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TollgateBinary.path)
        process.arguments = arguments
        let output = Pipe()
        let error = Pipe()
        let stdin = Pipe()
        process.standardOutput = output
        process.standardError = error
        process.standardInput = stdin
        try process.run()
        if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
        try stdin.fileHandleForWriting.close()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    @Test func injectAddsANativeSidecarRetargetsTheServiceAndIsIdempotent() throws {
        let once = try Self.run(["inject", Self.sample])
        #expect(once.status == 0, "\(once.error)")
        let twice = try Self.run(["inject"], input: once.output)
        #expect(twice.status == 0)
        #expect(twice.output == once.output, "injecting twice changes nothing")
        let documents = once.output.components(separatedBy: "---\n")
        #expect(documents.count == 4)
        let deployment = documents[0]
        #expect(deployment.contains("initContainers:\n      - name: tollgate"))
        #expect(deployment.contains("restartPolicy: Always"))
        #expect(deployment.contains("path: /readyz"))
        #expect(deployment.contains("terminationGracePeriodSeconds: 30"))
        #expect(deployment.contains("readOnlyRootFilesystem: true"))
        #expect(deployment.contains("prometheus.io/scrape: \"true\""))
        #expect(deployment.contains("name: tollgate-config\n        configMap:\n          name: tollgate-config"))
        #expect(documents[1].contains("targetPort: tollgate"), "the Service targets the gate, not the app")
        #expect(documents[2].contains("LOG_LEVEL: info"), "other documents pass through")
        #expect(documents[3].contains("targetPort: 3000"), "a Service selecting other pods is left alone")
    }

    @Test(arguments: [
        (
            "kind: Deployment\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      hostNetwork: true\n      containers: [{name: a, image: b}]\n",
            "hostNetwork"
        ),
        ("kind: Service\nmetadata: {name: x}\n", "no workload with a pod template"),
        ("kind: List\nitems: []\n", "a List"),
        ("kind: Deployment\nmetadata: {name: x}\nspec: {}\n", "has no spec.template.spec"),
        (
            "kind: Deployment\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      containers: [{name: a, image: b, ports: [{containerPort: 8080}]}]\n",
            "already uses port 8080"
        ),
        (
            "kind: Deployment\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      containers: [{name: a, image: b, ports: [{containerPort: 1}, {containerPort: 2}]}]\n",
            "--app-port"
        ),
        ("{not yaml: [", "not YAML"),
    ])
    func injectRefusesWhatItCannotHandle(_ input: String, _ reason: String) throws {
        let refused = try Self.run(["inject"], input: input)
        #expect(refused.status == 2)
        #expect(refused.error.contains(reason), "\(refused.error)")
        #expect(refused.output.isEmpty, "nothing half-injected is written")
    }

    /// `serve` logs one startup summary — one JSON line when its output is not a terminal — and
    /// `check-config` prints the routes as a table with their requirements.
    @Test func serveLogsOneJSONStartupSummaryAndCheckConfigPrintsTheRouteTable() async throws {
        let example = Self.root.appendingPathComponent("deploy/examples/tollgate.yaml").path
        let checked = try Self.run(["check-config", example])
        #expect(checked.status == 0)
        let lines = checked.output.split(separator: "\n").map(String.init)
        let header = try #require(lines.firstIndex { $0.hasPrefix("ROUTE ") })
        #expect(lines[header].contains("METHODS") && lines[header].contains("REQUIRES"))
        let matchColumn = try #require(lines[header].range(of: "MATCH")).lowerBound.utf16Offset(in: lines[header])
        let orders = try #require(lines.first { $0.hasPrefix("orders-read ") })
        #expect(orders.contains("prefix /orders") && orders.contains("all of [@team/orders.read]"))
        #expect(orders.dropFirst(matchColumn).hasPrefix("prefix /orders"), "columns are aligned")
        #expect(lines.contains { $0.hasPrefix("(default)") && $0.hasSuffix("deny") })

        let local = Self.root.appendingPathComponent("deploy/examples/local.yaml").path
        let port = try Ports.free()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("local.yaml")
        try String(contentsOfFile: local, encoding: .utf8)
            .replacingOccurrences(of: "listen: 127.0.0.1:8080", with: "listen: 127.0.0.1:\(port)")
            .replacingOccurrences(of: "admin: 127.0.0.1:9901", with: "admin: 127.0.0.1:\(try Ports.free())")
            .replacingOccurrences(
                of: "jwks_file: demo-jwks.json",
                with: "jwks_file: \(Self.root.path)/deploy/examples/demo-jwks.json"
            )
            .write(to: file, atomically: true, encoding: .utf8)
        let serve = try ExternalProcess(TollgateBinary.path, ["serve", "--config", file.path])
        defer { serve.stop() }
        try await Ports.waitUntilListening(port)
        let summaries = serve.log.split(separator: "\n").filter { $0.hasPrefix("{") }
        #expect(summaries.count == 1, "\(serve.log)")
        let summary = try JSONParser.parse(String(try #require(summaries.first)))
        #expect(summary["message"]?.stringValue == "tollgate started")
        #expect(summary["listen"]?.stringValue == "127.0.0.1:\(port)")
        #expect(summary["issuers"]?.arrayValue?.first?["keys"]?.stringValue == "jwks_file (1 keys)")
        #expect(summary["routes"]?.arrayValue?.count == 2)
        #expect(summary["default"]?.stringValue == "deny")
    }

    /// The ConfigMap's tollgate.yaml from deploy/kubernetes, unchanged but for the issuer URL,
    /// against a real issuer (JWTs by discovery and JWKS, opaque tokens by introspection with the
    /// projected client secret) and a real upstream on 127.0.0.1:3000.
    @Test func theShippedSidecarConfigurationRunsUnchanged() async throws {
        let upstream = try await TestHTTPServer.start(port: 3000, handler: ProxyEnvironment.echo)
        defer { Task { try? await upstream.shutdown() } }
        let gateSecret = "gate-secret-0123456789abcdef0123456789"
        let issuer = try IssuerFixture(
            storage: .sqlite,
            extraClients: """
                - client_id: "@team/orders-gate"
                  type: machine
                  client_secret_file: gate.secret
                """
        )
        try gateSecret.write(
            to: issuer.directory.appendingPathComponent("gate.secret"),
            atomically: true,
            encoding: .utf8
        )
        defer { issuer.stop() }
        try await issuer.serve()

        // The ConfigMap's file, as the projected volume lays it out: tollgate.yaml and client-secret.
        let manifest = try String(
            contentsOf: Self.root.appendingPathComponent("deploy/kubernetes/configmap.yaml"),
            encoding: .utf8
        )
        let marker = "  tollgate.yaml: |\n"
        let block = try #require(manifest.range(of: marker)).upperBound
        let file = manifest[block...].split(separator: "\n", omittingEmptySubsequences: false)
            .prefix { $0.isEmpty || $0.hasPrefix("    ") }
            .map { $0.dropFirst(min(4, $0.count)) }
            .joined(separator: "\n")
            .replacingOccurrences(of: "https://idp.example.com/team", with: issuer.issuer)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "tollgate-sidecar-\(UUID().uuidString)"
        )
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try file.write(to: directory.appendingPathComponent("tollgate.yaml"), atomically: true, encoding: .utf8)
        try gateSecret.write(to: directory.appendingPathComponent("client-secret"), atomically: true, encoding: .utf8)
        let gate = try ExternalProcess(
            TollgateBinary.path,
            ["serve", "--config", directory.appendingPathComponent("tollgate.yaml").path]
        )
        defer { gate.stop() }
        try await Ports.waitUntilListening(8080)
        let base = "http://127.0.0.1:8080"

        // A JWT with the read scope passes; the echo carries the claim headers.
        let (_, jwt) = try await IssuerProcessTests.clientCredentials(
            issuer,
            id: "@team/svc",
            secret: IssuerFixture.machineSecret
        )
        let token = try #require(jwt["access_token"] as? String)
        var answer = try await IssuerProcessTests.get(base + "/orders/7", token: token)
        for _ in 0..<50 where answer.0 == 503 {
            try await Task.sleep(for: .milliseconds(100))
            answer = try await IssuerProcessTests.get(base + "/orders/7", token: token)
        }
        #expect(answer.0 == 200, "\(answer.1)\n\(gate.log)")
        #expect(answer.1.contains("X-Auth-Subject: @team/svc"))
        // Writing needs the write scope: 403. No token: 401. The public health route: 200.
        var write = HTTPClientRequest(url: base + "/orders")
        write.method = .POST
        write.headers.add(name: "Authorization", value: "Bearer \(token)")
        let written = try await HTTPClient.shared.execute(write, timeout: .seconds(10))
        #expect(written.status.code == 403)
        #expect(try await IssuerProcessTests.get(base + "/orders/7").0 == 401)
        #expect(try await IssuerProcessTests.get(base + "/healthz").0 == 200)
        // An opaque token goes to the issuer's introspection endpoint, authenticated with the
        // projected client secret: an unknown one is inactive (401 invalid_token), which a wrong
        // secret would have made 503 (introspection unavailable).
        var opaque = HTTPClientRequest(url: base + "/orders/7")
        opaque.headers.add(name: "Authorization", value: "Bearer not-a-token-the-issuer-knows")
        let refused = try await HTTPClient.shared.execute(opaque, timeout: .seconds(10))
        #expect(refused.status.code == 401)
        #expect(refused.headers.first(name: "www-authenticate")?.contains("invalid_token") == true)
    }
}
