import Crypto
import Foundation
import NIOHTTP1
import Testing
import TollgateCore
import TollgateTestSupport

@testable import TollgateProxy

/// DPoP at the gate (RFC 9449): proofs made by joserfc (Tests/Interop/dpop_proofs.py), an
/// independent JOSE library, sent through the real listener. The gate's origin comes from the
/// forwarding headers of a trusted proxy (the test client's address is trusted).
@Suite("DPoP at the gate")
struct DPoPTests {
    static let routes = """
          - name: bound
            match: { prefix: /dpop }
            issuers: [main]
            dpop: required
          - name: either
            match: { prefix: /either }
            issuers: [main]
          - name: tools
            match: { prefix: /mcp }
            issuers: [main]
            resource: https://tools.test/mcp
            dpop: required
        """
    static let forwarded = ["X-Forwarded-Proto: https", "X-Forwarded-Host: api.test"]

    struct Key {
        let key = P256.Signing.PrivateKey()

        var jwk: [String: String] {
            let point = Array(key.publicKey.x963Representation)
            return [
                "kty": "EC", "crv": "P-256", "x": Base64URL.encode(point[1..<33]), "y": Base64URL.encode(point[33...]),
                "d": Base64URL.encode(Array(key.rawRepresentation)),
            ]
        }

        var thumbprint: String {
            var members: [String: JSONValue] = [:]
            for (name, value) in jwk where name != "d" { members[name] = .string(value) }
            return DPoPProofVerifier.thumbprint(of: members)!
        }
    }

    /// Proofs for `cases` (each `name`, `htu`, `token` and what differs), made by joserfc with
    /// keys `a` and `b`; checks joserfc's RFC 7638 thumbprints against the gate's own.
    static func proofs(_ keys: [String: Key], _ cases: [[String: Any]]) throws -> [String: String] {
        let spec: [String: Any] = ["keys": keys.mapValues { $0.jwk }, "cases": cases]
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Interop/dpop_proofs.py").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(try JSONSerialization.data(withJSONObject: spec))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let answer = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let thumbprints = try #require(answer["thumbprints"] as? [String: String])
        for (name, key) in keys { #expect(thumbprints[name] == key.thumbprint, "RFC 7638 thumbprint of \(name)") }
        return try #require(answer["proofs"] as? [String: String])
    }

    static func bound(to key: Key) -> String {
        TestIssuer.shared.token(scope: "@team/orders.read", ["cnf": ["jkt": key.thumbprint]])
    }

    @Test("a proof by the token's key for this request is accepted; every other proof is refused")
    func proofsAreHeldToTheRequestAndTheKey() async throws {
        let a = Key()
        let b = Key()
        let token = Self.bound(to: a)
        let htu = "https://api.test/dpop/orders"
        func proof(_ name: String, _ changes: [String: Any] = [:]) -> [String: Any] {
            var spec: [String: Any] = ["name": name, "htu": htu, "token": token]
            for (key, value) in changes { spec[key] = value }
            return spec
        }
        let proofs = try Self.proofs(
            ["a": a, "b": b],
            [
                proof("good"), proof("query ignored", ["htu": htu + "?page=2#x"]),
                proof("replayed", ["jti": "once"]), proof("post", ["htm": "POST"]),
                proof("lower-case method", ["htm": "get"]),
                proof("another host", ["htu": "https://other.test/dpop/orders"]),
                proof("another path", ["htu": "https://api.test/dpop/other"]),
                proof("stale", ["iat": -600]), proof("future", ["iat": 600]),
                proof("wrong ath", ["token": "another-token"]), proof("another key", ["key": "b"]),
                proof("private key", ["private_jwk": true]), proof("alg none", ["alg": "none"]),
                proof("HS256", ["alg": "HS256"]), proof("no jti", ["omit": ["jti"]]),
                proof("no ath", ["omit": ["ath"]]), proof("typ jwt", ["typ": "JWT"]),
            ]
        )
        try await ProxyEnvironment.with(routes: Self.routes) { environment in
            func send(
                _ proofs: [String],
                scheme: String = "DPoP",
                path: String = "/dpop/orders"
            ) async throws
                -> RawHTTPClient.Response
            {
                try await environment.send(
                    path,
                    headers: Self.forwarded + ["Authorization: \(scheme) \(token)"] + proofs.map { "DPoP: \($0)" }
                )
            }
            #expect(try await send([proofs["good"]!]).status == 200)
            #expect(try await send([proofs["query ignored"]!], path: "/dpop/orders?page=2").status == 200)
            #expect(try await send([proofs["replayed"]!]).status == 200)
            let replay = try await send([proofs["replayed"]!])
            #expect(replay.status == 401, "a proof is good once")
            #expect(replay.headers.contains { $0.0 == "WWW-Authenticate" && $0.1.contains("invalid_dpop_proof") })
            for name in [
                "post", "lower-case method", "another host", "another path", "stale", "future", "wrong ath",
                "another key", "private key", "alg none", "HS256", "no jti", "no ath", "typ jwt",
            ] {
                let response = try await send([proofs[name]!])
                #expect(response.status == 401, "\(name)")
                let challenges = response.headers.filter { $0.0 == "WWW-Authenticate" }.map(\.1)
                #expect(challenges.count == 2, "\(name): Bearer and DPoP challenges")
                #expect(
                    challenges.contains { $0.hasPrefix("DPoP algs=\"") && $0.contains("ES256") },
                    "\(name): \(challenges)"
                )
            }
            // Two proofs, or none.
            #expect(try await send([proofs["good"]!, proofs["good"]!]).status == 401)
            #expect(try await send([]).status == 401)
            // A bound token sent as a bearer token: refused even where DPoP is only allowed.
            let downgrade = try await send([], scheme: "Bearer", path: "/either/orders")
            #expect(downgrade.status == 401)
            #expect(downgrade.body.contains("invalid_token"))
            // A bearer token that is not bound: refused where DPoP is required, taken elsewhere.
            let plain = TestIssuer.shared.token(scope: "@team/orders.read")
            let required = try await environment.send(
                "/dpop/orders",
                headers: Self.forwarded + ["Authorization: Bearer \(plain)"]
            )
            #expect(required.status == 401)
            #expect(required.headers.contains { $0.0 == "WWW-Authenticate" && $0.1.hasPrefix("DPoP algs=") })
            #expect(
                try await environment.send("/either/orders", headers: ["Authorization: Bearer \(plain)"]).status == 200
            )
            // A confirmation the gate cannot check is never read as no binding.
            let unknown = TestIssuer.shared.token(scope: "@team/orders.read", ["cnf": ["jwk": ["kty": "EC"]]])
            #expect(
                try await environment.send("/either/orders", headers: ["Authorization: Bearer \(unknown)"]).status
                    == 401
            )
            // Where DPoP is required, even the answer to no token names the DPoP scheme.
            let missing = try await environment.send("/dpop/orders")
            #expect(missing.status == 401)
            #expect(missing.headers.contains { $0.0 == "WWW-Authenticate" && $0.1.hasPrefix("DPoP algs=") })
            #expect(environment.upstream.requestCount == 4)
        }
    }

    @Test("without a trusted proxy or a configured public URL the gate does not know its origin: refused")
    func theOriginIsNeverTheClientsHost() async throws {
        let a = Key()
        let token = Self.bound(to: a)
        let proofs = try Self.proofs(
            ["a": a],
            [["name": "good", "htu": "https://api.test/dpop/orders", "token": token]]
        )
        try await ProxyEnvironment.with(trustedProxies: [], routes: Self.routes) { environment in
            // The client's own Host and X-Forwarded-* name the proof's origin, but are not trusted.
            let response = try await environment.send(
                "/dpop/orders",
                headers: Self.forwarded + ["Authorization: DPoP \(token)", "DPoP: \(proofs["good"]!)"]
            )
            #expect(response.status == 401)
            #expect(environment.upstream.requestCount == 0)
        }
    }

    @Test("with nonces required: 401 use_dpop_nonce with a DPoP-Nonce, then the nonce round trip")
    func theServerNonceRoundTrip() async throws {
        let a = Key()
        let token = Self.bound(to: a)
        let htu = "https://api.test/dpop/orders"
        try await ProxyEnvironment.with(extra: "dpop:\n  nonce: true", routes: Self.routes) { environment in
            let first = try Self.proofs(
                ["a": a],
                [
                    ["name": "no nonce", "htu": htu, "token": token],
                    ["name": "made up", "htu": htu, "token": token, "nonce": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
                ]
            )
            var nonce: String?
            for name in ["no nonce", "made up"] {
                let response = try await environment.send(
                    "/dpop/orders",
                    headers: Self.forwarded + ["Authorization: DPoP \(token)", "DPoP: \(first[name]!)"]
                )
                #expect(response.status == 401, "\(name)")
                #expect(
                    response.headers.contains { $0.0 == "WWW-Authenticate" && $0.1.contains("use_dpop_nonce") },
                    "\(name)"
                )
                nonce = response.header("DPoP-Nonce")
                #expect(nonce != nil, "\(name)")
            }
            let second = try Self.proofs(
                ["a": a],
                [["name": "with nonce", "htu": htu, "token": token, "nonce": try #require(nonce)]]
            )
            let accepted = try await environment.send(
                "/dpop/orders",
                headers: Self.forwarded + ["Authorization: DPoP \(token)", "DPoP: \(second["with nonce"]!)"]
            )
            #expect(accepted.status == 200)
        }
    }

    @Test("an answer to a proof whose nonce is aging carries the current one, in place of the upstream's")
    func anAgingNonceIsAnsweredWithTheNextOne() async throws {
        let a = Key()
        let token = Self.bound(to: a)
        let htu = "https://api.test/dpop/orders"
        let secretFile = FileManager.default.temporaryDirectory.appendingPathComponent("nonce-\(UUID().uuidString)")
        let secret = "a-nonce-secret-of-forty-bytes-0123456789"
        try secret.write(to: secretFile, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: secretFile) }
        let nonces = DPoPNonces(secret: Secret(secret), purpose: .resource)
        func slot() -> Int { Int(Date().timeIntervalSince1970 / nonces.period) }
        let upstream: TestHTTPServer.Handler = { _ in
            .init(status: 200, headers: [("DPoP-Nonce", "the-upstream's")], body: Array("ok".utf8))
        }
        let extra = "dpop:\n  nonce: true\n  nonce_secret_file: \(secretFile.path)"
        try await ProxyEnvironment.with(extra: extra, upstreamHandler: upstream, routes: Self.routes) { environment in
            // The nonces move every 30 s: an attempt that crosses a slot's end proves nothing and
            // is made again.
            for _ in 0..<3 {
                let started = slot()
                let now = Date().timeIntervalSince1970
                let (previous, current) = (nonces.current(now: now - nonces.period), nonces.current(now: now))
                let proofs = try Self.proofs(
                    ["a": a],
                    [
                        ["name": "aging", "htu": htu, "token": token, "nonce": previous],
                        ["name": "aging over h2", "htu": htu, "token": token, "nonce": previous],
                        ["name": "current", "htu": htu, "token": token, "nonce": current],
                    ]
                )
                let aging = try await environment.send(
                    "/dpop/orders",
                    headers: Self.forwarded + ["Authorization: DPoP \(token)", "DPoP: \(proofs["aging"]!)"]
                )
                let (status, headers, _) = try await HTTP2Tests.h2cRequest(
                    port: environment.proxy.port,
                    path: "/dpop/orders",
                    headers: [
                        ("x-forwarded-proto", "https"), ("x-forwarded-host", "api.test"),
                        ("authorization", "DPoP \(token)"), ("dpop", proofs["aging over h2"]!),
                    ]
                )
                let fresh = try await environment.send(
                    "/dpop/orders",
                    headers: Self.forwarded + ["Authorization: DPoP \(token)", "DPoP: \(proofs["current"]!)"]
                )
                if slot() != started { continue }
                #expect(aging.status == 200)
                #expect(aging.headers.filter { $0.0.lowercased() == "dpop-nonce" }.map(\.1) == [current])
                #expect(status == 200)
                #expect(headers["dpop-nonce"] == [current])
                #expect(fresh.status == 200)
                #expect(
                    fresh.header("DPoP-Nonce") == "the-upstream's",
                    "the current nonce needs no other: relayed as is"
                )
                return
            }
            Issue.record("three attempts each crossed the end of a nonce slot")
        }
    }

    @Test("a protected resource: its identifier is the proofs' origin, and its metadata says DPoP is required")
    func aResourceIsTheOrigin() async throws {
        let a = Key()
        let token = TestIssuer.shared.token(
            scope: "@team/orders.read",
            ["cnf": ["jkt": a.thumbprint], "aud": [TestIssuer.audience, "https://tools.test/mcp"]]
        )
        let proofs = try Self.proofs(
            ["a": a],
            [
                ["name": "resource", "htu": "https://tools.test/mcp", "token": token],
                ["name": "host", "htu": "http://api.test/mcp", "token": token],
            ]
        )
        try await ProxyEnvironment.with(routes: Self.routes) { environment in
            let document = try #require(
                try JSONSerialization.jsonObject(
                    with: Data(try await environment.send("/.well-known/oauth-protected-resource/mcp").body.utf8)
                ) as? [String: Any]
            )
            #expect(document["dpop_bound_access_tokens_required"] as? Bool == true)
            // No forwarding headers: the resource identifier names the origin, not the Host.
            let send = { (proof: String) in
                try await environment.send("/mcp", headers: ["Authorization: DPoP \(token)", "DPoP: \(proof)"])
            }
            #expect(try await send(proofs["resource"]!).status == 200)
            #expect(try await send(proofs["host"]!).status == 401)
        }
    }

    @Test("the replay cache is bounded: full of live proofs, it refuses rather than forgets")
    func theReplayCacheIsBounded() {
        let cache = DPoPReplayCache(capacity: 2, window: 100)
        let proofs = (0..<3).map { DPoPProof(thumbprint: "k", jti: "\($0)", issuedAt: 100) }
        #expect(cache.accept(proofs[0], now: 100))
        #expect(!cache.accept(proofs[0], now: 101))
        #expect(cache.accept(proofs[1], now: 101))
        #expect(!cache.accept(proofs[2], now: 102), "full of proofs that may be live")
        // One window on, the first generation is still remembered (and still takes room) ...
        #expect(!cache.accept(proofs[0], now: 200))
        #expect(!cache.accept(proofs[2], now: 201), "still full")
        // ... two windows on it is gone, and with it the room it took.
        #expect(cache.accept(proofs[2], now: 301))
        #expect(cache.accept(proofs[0], now: 302), "forgotten after at least a whole window")
        #expect(cache.count == 2)
    }

    @Test(arguments: [
        ("dpop:\n  nonce_secret_env: SHORT", "dpop.nonce_secret_env", "at least 32 bytes"),
        ("dpop:\n  nonce_secret_env: UNSET", "dpop.nonce_secret_env", "not set"),
        ("dpop:\n  algorithms: [HS256]", "dpop.algorithms[0]", "not an asymmetric"),
        ("dpop:\n  nonce: maybe", "dpop.nonce", "true or false"),
    ])
    func dpopConfigurationErrorsNameTheField(section: String, field: String, message: String) {
        ConfigurationErrors.expectRefused(
            ConfigurationErrors.oneRoute(prefix: "/", section),
            file: "dpop.yaml",
            field: field,
            message: message,
            environment: ["SHORT": "too short"]
        )
    }

    @Test("a new bound or window keeps what the cache remembers, as long as the old window would have")
    func aReloadKeepsTheProofsSeen() {
        let cache = DPoPReplayCache(capacity: 10, window: 100)
        let proof = DPoPProof(thumbprint: "k", jti: "1", issuedAt: 100)
        let other = DPoPProof(thumbprint: "k", jti: "2", issuedAt: 100)
        #expect(cache.accept(proof, now: 100))
        #expect(cache.accept(other, now: 101))
        cache.reconfigure(capacity: 1, window: 10)
        #expect(!cache.accept(proof, now: 150), "still within the old window")
        #expect(!cache.accept(proof, now: 299), "remembered up to the old window's end")
        #expect(
            !cache.accept(DPoPProof(thumbprint: "k", jti: "3", issuedAt: 300), now: 300),
            "over the lower bound: refused, nothing forgotten"
        )
        #expect(cache.accept(proof, now: 401), "then forgotten")
        cache.forget(proof)
        #expect(cache.accept(proof, now: 402), "a forgotten proof is taken again")
    }

    @Test("nonces made with the same secret agree between processes; another secret's are refused")
    func noncesFromASecretAgree() {
        let secret = Secret(String(repeating: "s", count: 32))
        let one = DPoPNonces(secret: secret, purpose: .resource)
        let two = DPoPNonces(secret: secret, purpose: .resource)
        let other = DPoPNonces(secret: Secret(String(repeating: "t", count: 32)), purpose: .resource)
        let nonce = one.current(now: 1000)
        #expect(two.current(now: 1000) == nonce)
        #expect(two.isValid(nonce, now: 1029) && two.isValid(nonce, now: 1031))
        #expect(two.isValid(nonce, now: 985), "a replica whose clock is behind takes the next slot's")
        #expect(!two.isValid(nonce, now: 1061), "two slots on, stale")
        #expect(!two.isValid(nonce, now: 955), "two slots early, not yet")
        #expect(!other.isValid(nonce, now: 1000))
        let authorizationServer = DPoPNonces(secret: secret, purpose: .authorizationServer)
        #expect(!authorizationServer.isValid(nonce, now: 1000), "the token endpoint takes only its own")
        #expect(!DPoPNonces().isValid(nonce, now: 1000), "without a secret, a key of the process's own")
    }
}
