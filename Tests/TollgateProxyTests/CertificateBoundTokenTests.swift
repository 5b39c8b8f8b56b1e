import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import Testing
import TollgateCore
import TollgateTestSupport

@testable import TollgateProxy

/// RFC 8705 certificate-bound tokens: a token whose `cnf["x5t#S256"]` names a client
/// certificate is taken only over a TLS connection that presented that certificate (client
/// certificates made with openssl, checked against `server.tls.client_ca_file`), or, behind a
/// TLS-terminating proxy, with that certificate in RFC 9440 `Client-Cert` from a trusted proxy.
@Suite("Certificate-bound tokens", .serialized)
struct CertificateBoundTokenTests {
    struct Certificates {
        let directory: URL
        let server: (certificate: String, key: String)
        let ca: String
        /// Signed by the CA: a, b. Self-signed: stranger.
        let clients: [String: (certificate: String, key: String)]

        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

        static func make() throws -> Certificates {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mtls-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            func openssl(_ arguments: [String]) throws {
                let process = try ExternalProcess("/usr/bin/openssl", arguments)
                process.process.waitUntilExit()
                #expect(process.process.terminationStatus == 0, "\(arguments): \(process.log)")
            }
            func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
            let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
            try openssl(
                ["req", "-x509"] + ec + [
                    "-days", "1", "-subj", "/CN=localhost", "-keyout", path("server.key"), "-out", path("server.pem"),
                ]
            )
            try openssl(
                ["req", "-x509"] + ec + [
                    "-days", "1", "-subj", "/CN=Test CA", "-keyout", path("ca.key"), "-out", path("ca.pem"),
                ]
            )
            var clients: [String: (String, String)] = [:]
            for name in ["a", "b"] {
                try openssl(
                    ["req"] + ec + [
                        "-subj", "/CN=client \(name)", "-keyout", path("\(name).key"), "-out", path("\(name).csr"),
                    ]
                )
                try openssl([
                    "x509", "-req", "-in", path("\(name).csr"), "-CA", path("ca.pem"), "-CAkey", path("ca.key"),
                    "-CAcreateserial", "-days", "1", "-out", path("\(name).pem"),
                ])
                clients[name] = (path("\(name).pem"), path("\(name).key"))
            }
            try openssl(
                ["req", "-x509"] + ec + [
                    "-days", "1", "-subj", "/CN=stranger", "-keyout", path("stranger.key"), "-out",
                    path("stranger.pem"),
                ]
            )
            clients["stranger"] = (path("stranger.pem"), path("stranger.key"))
            return Certificates(
                directory: directory,
                server: (path("server.pem"), path("server.key")),
                ca: path("ca.pem"),
                clients: clients
            )
        }

        /// The certificate's DER, from its PEM.
        func der(_ name: String) throws -> [UInt8] {
            try NIOSSLCertificate.fromPEMFile(clients[name]!.certificate)[0].toDERBytes()
        }

        /// RFC 8705 §3.1: base64url SHA-256 of the DER.
        func thumbprint(_ name: String) throws -> String {
            Base64URL.encode(Array(SHA256.hash(data: try der(name))))
        }
    }

    static func client(certificate: (certificate: String, key: String)?) throws -> HTTPClient {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = .none
        if let certificate {
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate.certificate).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: certificate.key, format: .pem))
        }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.httpVersion = .http1Only
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    static func get(
        _ client: HTTPClient,
        port: Int,
        token: String,
        path: String = "/orders/8",
        headers: [(String, String)] = []
    ) async throws -> (Int, String) {
        var request = HTTPClientRequest(url: "https://localhost:\(port)\(path)")
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        let response = try await client.execute(request, timeout: .seconds(30))
        return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 1 << 20)))
    }

    @Test func aBoundTokenGoesOnlyWithItsCertificate() async throws {
        let certificates = try Certificates.make()
        defer { try? FileManager.default.removeItem(at: certificates.directory) }
        let bound = TestIssuer.shared.token(["cnf": ["x5t#S256": try certificates.thumbprint("a")]])
        let plain = TestIssuer.shared.token()
        let extra = """
            server:
              access_log: false
              tls:
                certificate_file: \(certificates.server.certificate)
                key_file: \(certificates.server.key)
                client_ca_file: \(certificates.ca)
            """
        try await ProxyEnvironment.with(extra: extra, replaceServer: true) { environment in
            let port = environment.proxy.port
            let a = try Self.client(certificate: certificates.clients["a"])
            let b = try Self.client(certificate: certificates.clients["b"])
            let none = try Self.client(certificate: nil)
            #expect(try await Self.get(a, port: port, token: bound).0 == 200)
            #expect(try await Self.get(b, port: port, token: bound).0 == 401, "another certificate")
            #expect(try await Self.get(none, port: port, token: bound).0 == 401, "no certificate")
            // A token that is not bound goes with any certificate, or none (optional).
            #expect(try await Self.get(none, port: port, token: plain).0 == 200)
            // A Client-Cert from a peer that is not a trusted proxy is ignored and kept from the
            // upstream.
            let forged = try await Self.get(
                b,
                port: port,
                token: bound,
                headers: [("Client-Cert", ":" + Data(try certificates.der("a")).base64EncodedString() + ":")]
            )
            #expect(forged.0 == 401)
            let relayed = try await Self.get(
                b,
                port: port,
                token: plain,
                headers: [("Client-Cert", ":" + Data(try certificates.der("a")).base64EncodedString() + ":")]
            )
            #expect(relayed.0 == 200)
            #expect(!relayed.1.lowercased().contains("client-cert"), "\(relayed.1)")
            // A certificate from another CA does not complete the handshake.
            let stranger = try Self.client(certificate: certificates.clients["stranger"])
            await #expect(throws: (any Error).self) { _ = try await Self.get(stranger, port: port, token: plain) }
            for client in [a, b, none, stranger] { try await client.shutdown() }
        }
    }

    @Test func aRouteMayRequireACertificateOrATokenBoundToOne() async throws {
        let certificates = try Certificates.make()
        defer { try? FileManager.default.removeItem(at: certificates.directory) }
        let bound = TestIssuer.shared.token(["cnf": ["x5t#S256": try certificates.thumbprint("a")]])
        let plain = TestIssuer.shared.token()
        let extra = """
            server:
              access_log: false
              tls:
                certificate_file: \(certificates.server.certificate)
                key_file: \(certificates.server.key)
                client_ca_file: \(certificates.ca)
            """
        let routes = """
              - match: { prefix: /mtls/required }
                issuers: [main]
                client_certificate: required
              - match: { prefix: /mtls/bound }
                issuers: [main]
                client_certificate: bound
            """
        try await ProxyEnvironment.with(extra: extra, replaceServer: true, routes: routes) { environment in
            let port = environment.proxy.port
            let a = try Self.client(certificate: certificates.clients["a"])
            let b = try Self.client(certificate: certificates.clients["b"])
            let none = try Self.client(certificate: nil)
            #expect(try await Self.get(a, port: port, token: plain, path: "/mtls/required/1").0 == 200)
            #expect(try await Self.get(b, port: port, token: bound, path: "/mtls/required/1").0 == 401)
            let missing = try await Self.get(none, port: port, token: plain, path: "/mtls/required/1")
            #expect(missing.0 == 400)
            #expect(missing.1.contains("this route requires a client certificate"))
            #expect(try await Self.get(a, port: port, token: bound, path: "/mtls/bound/1").0 == 200)
            let unbound = try await Self.get(a, port: port, token: plain, path: "/mtls/bound/1")
            #expect(unbound.0 == 401)
            #expect(unbound.1.contains("only certificate-bound tokens"))
            #expect(try await Self.get(b, port: port, token: bound, path: "/mtls/bound/1").0 == 401)
            #expect(try await Self.get(none, port: port, token: bound, path: "/mtls/bound/1").0 == 401)
            // Other routes keep the listener's rule (optional).
            #expect(try await Self.get(none, port: port, token: plain).0 == 200)
            for client in [a, b, none] { try await client.shutdown() }
        }
        // From a trusted proxy (this test's own address), the TLS certificate is the proxy's: it
        // satisfies neither rule, nor binds.
        let behindAProxy = extra.replacingOccurrences(
            of: "  access_log: false",
            with: "  access_log: false\n  trusted_proxies: [\"127.0.0.1\"]"
        )
        try await ProxyEnvironment.with(extra: behindAProxy, replaceServer: true, routes: routes) { environment in
            let a = try Self.client(certificate: certificates.clients["a"])
            let port = environment.proxy.port
            #expect(try await Self.get(a, port: port, token: plain, path: "/mtls/required/1").0 == 400)
            #expect(try await Self.get(a, port: port, token: bound, path: "/mtls/bound/1").0 == 401)
            #expect(try await Self.get(a, port: port, token: bound).0 == 401)
            try await a.shutdown()
        }
    }

    @Test func clientCertHeaderTrustNeedsTrustedProxies() throws {
        let yaml = """
            upstream: http://127.0.0.1:1
            server:
              trust_client_cert_header: true
            routes:
              - match: { prefix: / }
                auth: none
            """
        #expect {
            try ConfigurationLoader.parse(yaml: yaml, file: "mtls.yaml", baseDirectory: "/tmp", environment: [:])
        } throws: { error in
            let text = "\(error)"
            return text.contains("mtls.yaml:") && text.contains("server.trust_client_cert_header")
                && text.contains("none are listed")
        }
    }

    @Test(arguments: [
        ("    client_certificate: required", "routes[0].client_certificate", "server.tls.client_ca_file"),
        ("    client_certificate: always", "routes[0].client_certificate", "expected optional, required or bound"),
    ])
    func certificateRuleErrorsNameTheField(member: String, field: String, message: String) {
        ConfigurationErrors.expectRefused(
            ConfigurationErrors.oneRoute(prefix: "/orders", member),
            file: "mtls.yaml",
            field: field,
            message: message
        )
    }

    @Test func behindATrustedProxyTheCertificateComesInClientCert() async throws {
        let certificates = try Certificates.make()
        defer { try? FileManager.default.removeItem(at: certificates.directory) }
        let bound = TestIssuer.shared.token(["cnf": ["x5t#S256": try certificates.thumbprint("a")]])
        let extra = """
            server:
              access_log: false
              header_timeout: 120s
              trusted_proxies: ["127.0.0.1"]
              trust_client_cert_header: true
            """
        try await ProxyEnvironment.with(extra: extra, replaceServer: true) { environment in
            func send(_ name: String) async throws -> RawHTTPClient.Response {
                let value = ":" + Data(try certificates.der(name)).base64EncodedString() + ":"
                return try await environment.send(
                    "/orders/8",
                    headers: ["Authorization: Bearer \(bound)", "Client-Cert: \(value)"]
                )
            }
            let accepted = try await send("a")
            #expect(accepted.status == 200)
            #expect(accepted.body.contains("Client-Cert: :"), "a trusted proxy's Client-Cert goes on")
            #expect(try await send("b").status == 401)
            #expect(try await environment.send("/orders/8", headers: ["Authorization: Bearer \(bound)"]).status == 401)
        }
    }
}
