import ArgumentParser
import Foundation
import TollgateCore
import TollgateIssuer

/// `tollgate demo`: the quickstart on loopback — the gate, the issuer in the same process on
/// SQLite in a local data folder (created on the first run, reused after), a demo upstream that
/// echoes what it receives, a demo machine client and a demo user — and the lines to try next.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the quickstart: the gate, its issuer and a demo upstream on 127.0.0.1, and print what to try."
    )

    @Option(help: "The data folder (keys, clients, users, tokens), created on the first run.")
    var data = ".tollgate-demo"

    @Option(help: "The gate's (and the issuer's) port.")
    var port = 8080

    @Option(help: "The admin port (/healthz, /readyz, /metrics).")
    var adminPort = 9901

    func run() async throws {
        let folder = URL(fileURLWithPath: data, isDirectory: true).standardizedFileURL
        let files = try DemoFiles.prepare(in: folder)
        let upstream = try await DemoUpstream.start()
        let path = folder.appendingPathComponent("tollgate.yaml").path
        try DemoFiles.configuration(port: port, adminPort: adminPort, upstreamPort: upstream.port)
            .write(toFile: path, atomically: true, encoding: .utf8)
        let configuration: TollgateConfiguration
        do {
            configuration = try ConfigurationLoader.load(path: path)
        } catch {
            printError("error: \(error)")
            throw ExitCode(2)
        }
        let base = "http://127.0.0.1:\(port)"
        let lines = DemoFiles.instructions(base: base, folder: folder.path, files: files, firstRun: files.created)
        try await GateRunner.run(
            configuration,
            path: path,
            started: { _ in FileHandle.standardOutput.write(Data(lines.utf8)) },
            services: [upstream]
        )
    }
}

enum DemoFiles {
    struct Prepared {
        let secretFile: String
        let passwordFile: String
        let created: Bool
    }

    static let verifier = "tollgate-demo-verifier-0123456789abcdefghijklmnop"

    /// The data folder with the demo client's secret and the demo user's password (and its scrypt
    /// hash), each made once and kept, readable by the owner only.
    static func prepare(in folder: URL) throws -> Prepared {
        let manager = FileManager.default
        let created = !manager.fileExists(atPath: folder.path)
        try manager.createDirectory(
            at: folder,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700]
        )
        let secret = folder.appendingPathComponent("svc.secret")
        let password = folder.appendingPathComponent("demo.password")
        let hash = folder.appendingPathComponent("demo.hash")
        if !manager.fileExists(atPath: secret.path) {
            try write(random(32), to: secret)
        }
        if !manager.fileExists(atPath: password.path) || !manager.fileExists(atPath: hash.path) {
            let text = random(12)
            try write(text, to: password)
            try write(try PasswordHash.make(text), to: hash)
        }
        return Prepared(secretFile: secret.path, passwordFile: password.path, created: created)
    }

    static func write(_ text: String, to url: URL) throws {
        try text.write(to: url, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: url.path)
    }

    static func random(_ length: Int) -> String {
        let alphabet = Array("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        var generator = SystemRandomNumberGenerator()
        return String((0..<length).map { _ in alphabet.randomElement(using: &generator)! })
    }

    static func configuration(port: Int, adminPort: Int, upstreamPort: Int) -> String {
        """
        # Written by `tollgate demo` on every start (the ports may change); the data beside it is kept.
        listen: 127.0.0.1:\(port)
        admin: 127.0.0.1:\(adminPort)
        upstream: http://127.0.0.1:\(upstreamPort)
        realm: demo
        server:
          access_log: false
        issuer:
          issuer: http://127.0.0.1:\(port)
          storage: { sqlite: issuer.sqlite }
          apis:
            - audience: "@demo/orders"
              scopes: ["@demo/orders.read", "@demo/orders.write"]
          clients:
            - client_id: "@demo/svc"
              type: machine
              client_secret_file: svc.secret
              scopes: ["@demo/orders.read"]
            - client_id: "@demo/web"
              type: spa
              redirect_uris: ["http://127.0.0.1:\(port)/callback"]
              scopes: [openid, profile, email, "@demo/orders.read"]
          users:
            - username: demo
              password_hash_file: demo.hash
              claims: { name: Demo User, email: demo@example.invalid }
        routes:
          - name: callback
            match: { path: /callback, methods: [GET] }
            auth: none
          - name: orders
            match: { prefix: /orders, methods: [GET, HEAD] }
            require: { scopes: { all: ["@demo/orders.read"] } }
          - name: orders-write
            match: { prefix: /orders }
            require: { scopes: { all: ["@demo/orders.write"] } }
        default: deny
        forward:
          claims:
            X-Auth-Subject: sub
            X-Auth-Scope: scope
            X-Auth-Client: client_id
        """
    }

    /// What a newcomer runs next; a test runs exactly these lines.
    static func instructions(base: String, folder: String, files: Prepared, firstRun: Bool) -> String {
        // BASE64URL(SHA256(verifier)) of `verifier`, for whoever exchanges the code by hand.
        let challenge = "_xyRKXShTkBUrdm7dHPxLk6MjS6I7rDHIaGH4_1Xo1U"
        let authorize =
            "\(base)/oauth2/authorize?response_type=code&client_id=%40demo%2Fweb"
            + "&redirect_uri=\(FormURLEncoding.encode(base + "/callback"))&scope=openid+profile+%40demo%2Forders.read"
            + "&state=demo&code_challenge=\(challenge)&code_challenge_method=S256"
        return """

            Tollgate demo: the gate and its issuer on \(base), a demo upstream behind the gate that echoes \
            what it receives.
            Data (signing keys, clients, users, tokens) in \(folder)\(firstRun ? ", created now" : ", reused").

            Try it (bash):
              TOKEN=$(curl -s -u "@demo/svc:$(cat \(files.secretFile))" -d grant_type=client_credentials \(base)/oauth2/token); TOKEN=${TOKEN#*'"access_token":"'}; TOKEN=${TOKEN%%'"'*}
              curl -s -H "Authorization: Bearer $TOKEN" \(base)/orders/42
              curl -si \(base)/orders/42
              curl -si -X POST -H "Authorization: Bearer $TOKEN" \(base)/orders

            The first gets a token for the demo machine client; the second calls a protected route \
            through the gate (the echo shows X-Auth-Subject); the third has no token (401); the \
            fourth needs @demo/orders.write, which the token lacks (403).

            The code flow in a browser (user demo, password in \(files.passwordFile)):
              \(authorize)
            The upstream's echo of /callback shows the code. Stop with Ctrl-C.

            """
    }
}
