import AsyncHTTPClient
import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Testing
import TollgateTestSupport

@testable import TollgateCore

/// RFC 9701 at the gate: with `introspection.signed`, only an answer that is a JWS of type
/// `token-introspection+jwt`, signed with one of the issuer's keys, for this client (`aud`),
/// from this issuer (`iss`) and recent (`iat`) is taken. The answers are minted by joserfc
/// (Tests/Interop/sign_jws.py) and served by a real HTTP endpoint.
@Suite struct SignedIntrospectionTests {
    static func jwk(_ key: P256.Signing.PrivateKey, private: Bool) -> [String: String] {
        let point = Array(key.publicKey.x963Representation)
        var jwk = [
            "kty": "EC", "crv": "P-256", "kid": "as-1", "x": Base64URL.encode(point[1..<33]),
            "y": Base64URL.encode(point[33...]),
        ]
        if `private` { jwk["d"] = Base64URL.encode(Array(key.rawRepresentation)) }
        return jwk
    }

    static func sign(_ keys: [String: P256.Signing.PrivateKey], _ cases: [[String: Any]]) throws -> [String: String] {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Interop/sign_jws.py").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        let spec: [String: Any] = ["keys": keys.mapValues { Self.jwk($0, private: true) }, "cases": cases]
        input.fileHandleForWriting.write(try JSONSerialization.data(withJSONObject: spec))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: String])
    }

    @Test func onlyASignedAnswerForThisClientFromTheIssuerIsTaken() async throws {
        let issuerKey = P256.Signing.PrivateKey()
        let otherKey = P256.Signing.PrivateKey()
        let now = Int(Date().timeIntervalSince1970)
        let active: [String: Any] = ["active": true, "sub": "svc-7", "scope": "orders.read", "exp": now + 300]
        func answer(
            _ name: String,
            key: String = "as",
            typ: String = "token-introspection+jwt",
            _ changes: [String: Any] = [:]
        )
            -> [String: Any]
        {
            var payload: [String: Any] = [
                "iss": "https://as.test", "aud": "@team/gate", "iat": now, "token_introspection": active,
            ]
            for (name, value) in changes { payload[name] = value }
            return [
                "name": name, "key": key, "header": ["alg": "ES256", "kid": "as-1", "typ": typ], "payload": payload,
            ]
        }
        let answers = try Self.sign(
            ["as": issuerKey, "other": otherKey],
            [
                answer("good"), answer("good, aud list", ["aud": ["x", "@team/gate"]]),
                answer("wrong aud", ["aud": "@team/other"]), answer("wrong iss", ["iss": "https://evil.test"]),
                answer("wrong typ", typ: "JWT"), answer("other key", key: "other"),
                answer("stale", ["iat": now - 3600]),
                answer("no answer", ["token_introspection": NSNull()]),
            ]
        )
        let served = NIOLockedValueBox("")
        try await TestHTTPServer.serving({ _ in
            let body = served.withLockedValue { $0 }
            if body.hasPrefix("{") { return .json(body) }
            return .init(headers: [("Content-Type", "application/token-introspection+jwt")], body: Array(body.utf8))
        }) { server in
            var settings = IntrospectionSettings(
                endpoint: server.url("/introspect"),
                clientID: "@team/gate",
                clientSecret: Secret("s3cret")
            )
            settings.signedResponses = true
            settings.cacheTTL = 0
            settings.negativeCacheTTL = 0
            let keySet = try JSONWebKeySet.parse(
                try JSONSerialization.data(withJSONObject: ["keys": [Self.jwk(issuerKey, private: false)]])
            )
            let policy = IssuerPolicy(name: "as", issuer: "https://as.test", audiences: [], algorithms: [.es256])
            let http = OutboundHTTP.makeClient(readTimeout: .seconds(30))
            let client = IntrospectionClient(
                settings: settings,
                policy: policy,
                client: http,
                responseKeys: { _ in keySet }
            )
            for (name, expected) in [
                ("good", true), ("good, aud list", true), ("wrong aud", false), ("wrong iss", false),
                ("wrong typ", false),
                ("other key", false), ("stale", false), ("no answer", false),
            ] {
                served.withLockedValue { $0 = answers[name]! }
                let result = await client.introspect("opaque-\(name)")
                switch result {
                case .success(let token):
                    #expect(expected, "\(name) was taken")
                    #expect(token.subject == "svc-7")
                case .failure(let failure):
                    #expect(!expected, "\(name): \(failure.reason)")
                    #expect(failure.code == .introspectionUnavailable, "\(name) fails closed as unavailable")
                }
            }
            // An unsigned answer is not taken when signed ones are asked for.
            served.withLockedValue { $0 = #"{"active":true,"sub":"svc-7"}"# }
            if case .success = await client.introspect("opaque-unsigned") {
                Issue.record("an unsigned answer was taken")
            }
            #expect(server.requests.allSatisfy { $0.header("Accept") == "application/token-introspection+jwt" })
            try await http.shutdown()
        }
    }
}
