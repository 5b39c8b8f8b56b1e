import AsyncHTTPClient
import Benchmark
import Crypto
import Foundation
import TollgateCore
import TollgateTestSupport
import _CryptoExtras

/// Signs test tokens in setup; what is measured is only verification.
enum Fixture {
    static let issuer = "https://idp.example.com/team"
    static let now = Date().timeIntervalSince1970
    static let rsa = try! _RSA.Signing.PrivateKey(keySize: .bits2048)
    static let p256 = P256.Signing.PrivateKey()
    static let ed25519 = Curve25519.Signing.PrivateKey()

    static func b64(_ bytes: some Collection<UInt8>) -> String { Base64URL.encode(Array(bytes)) }

    static var jwks: String {
        let rsaKey = try! rsa.publicKey.getKeyPrimitives()
        let point = Array(p256.publicKey.x963Representation)
        return """
            {"keys":[
            {"kty":"RSA","kid":"rsa","n":"\(b64(rsaKey.modulus))","e":"\(b64(rsaKey.publicExponent))"},
            {"kty":"EC","crv":"P-256","kid":"ec","x":"\(b64(point[1..<33]))","y":"\(b64(point[33...]))"},
            {"kty":"OKP","crv":"Ed25519","kid":"ed","x":"\(b64(ed25519.publicKey.rawRepresentation))"}]}
            """
    }

    /// A realistic 680-byte claim set, like an IdP's access token.
    static var claims: String {
        """
        {"iss":"\(issuer)","sub":"user-1234567890","aud":["@team/api","@team/other"],"exp":\(Int(now) + 3600),\
        "iat":\(Int(now)),"nbf":\(Int(now)),"jti":"a1b2c3d4e5f6g7h8i9j0",\
        "scope":"@team/orders.read @team/orders.write openid profile email","client_id":"@team/web",\
        "actor":{"national_id":"1234567890","name":"Alice Example","roles":["admin","user"]},\
        "email":"alice@example.com","email_verified":true,"name":"Alice Example","given_name":"Alice",\
        "family_name":"Example","locale":"en-US","zoneinfo":"Europe/Berlin","updated_at":\(Int(now)),\
        "sid":"session-abcdef123456","auth_time":\(Int(now)),"acr":"urn:mace:incommon:iap:silver",\
        "amr":["pwd","otp"],"azp":"@team/web"}
        """
    }

    static func token(alg: String, kid: String) -> (token: String, signingInput: [UInt8], signature: [UInt8]) {
        let header = b64(Array(#"{"alg":"\#(alg)","kid":"\#(kid)","typ":"at+jwt"}"#.utf8))
        let input = header + "." + b64(Array(claims.utf8))
        let bytes = Array(input.utf8)
        let signature: [UInt8]
        switch alg {
        case "RS256":
            signature = Array(
                try! rsa.signature(for: SHA256.hash(data: bytes), padding: .insecurePKCS1v1_5).rawRepresentation
            )
        case "ES256":
            signature = Array(try! p256.signature(for: SHA256.hash(data: bytes)).rawRepresentation)
        default:
            signature = Array(try! ed25519.signature(for: bytes))
        }
        return (input + "." + b64(signature), bytes, signature)
    }

    /// What `tollgate serve` builds from a configuration forwarding `sub`, `scope` and
    /// `actor.national_id` as headers: only those claims and the checked ones are read.
    static let projection = ClaimProjection(
        names: [],
        keepsEncodedClaims: false,
        forward: ClaimHeaderMapping(entries: [
            .init(header: "X-Auth-Subject", claim: "sub"), .init(header: "X-Auth-Scope", claim: "scope"),
            .init(header: "X-Auth-National-Id", claim: "actor.national_id"),
        ])
    )

    static func verifier(cacheEntries: Int, projection: ClaimProjection? = nil) -> TokenVerifier {
        let keySet = try! JSONWebKeySet.parse(Array(jwks.utf8))
        let policy = IssuerPolicy(
            name: "main",
            issuer: issuer,
            audiences: ["@team/api"],
            algorithms: [.rs256, .es256, .eddsa],
            requiredTokenType: "at+jwt"
        )
        let keys = JWKSCache(issuerName: "main", source: .fixed(JSONWebKeySetBox(keySet)), client: nil)
        return TokenVerifier(
            issuers: [IssuerVerifier(policy: policy, keys: keys)],
            cache: VerifiedTokenCache(maximumEntries: cacheEntries),
            claimProjection: projection
        )
    }

    static func routeTable() -> RouteTable {
        var routes: [Route] = []
        for index in 0..<48 {
            routes.append(
                Route(
                    name: "r\(index)",
                    methods: ["GET", "POST"],
                    pattern: index % 2 == 0 ? .prefix("/service\(index)/v1") : .path("/service\(index)/items/{id}"),
                    scopes: ScopeRequirement(all: ["@team/s\(index).read"])
                )
            )
        }
        routes.append(Route(name: "orders", methods: ["GET"], pattern: .path("/orders/{id}/lines/{line}")))
        routes.append(Route(name: "catch-all", pattern: .prefix("/")))
        return RouteTable(routes: routes)
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        warmupIterations: 100,
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        maxIterations: 1_000_000
    )

    let uncached = Fixture.verifier(cacheEntries: 0)
    let rs256 = Fixture.token(alg: "RS256", kid: "rsa")
    let es256 = Fixture.token(alg: "ES256", kid: "ec")
    let eddsa = Fixture.token(alg: "EdDSA", kid: "ed")

    for (name, fixture) in [("RS256", rs256), ("ES256", es256), ("EdDSA", eddsa)] {
        Benchmark("verify \(name) uncached (full: parse, signature, claims)") { benchmark in
            for _ in benchmark.scaledIterations {
                let digest = TokenDigest(token: fixture.token)
                guard case .verified = uncached.verifyLocally(fixture.token, digest: digest, acceptedIssuers: nil)
                else {
                    fatalError("\(name) did not verify")
                }
            }
        }
    }

    // The full parse with the forwarded claims' headers built from the whole claim set, as the
    // proxy did before projecting: the figure the projected path is compared with.
    let mapping = Fixture.projection.forward!
    for (name, fixture) in [("RS256", rs256), ("ES256", es256)] {
        Benchmark("verify \(name) uncached, full parse + claim headers built") { benchmark in
            for _ in benchmark.scaledIterations {
                let digest = TokenDigest(token: fixture.token)
                guard
                    case .verified(let token) = uncached.verifyLocally(
                        fixture.token,
                        digest: digest,
                        acceptedIssuers: nil
                    ),
                    case .success(let headers) = mapping.headers(for: token), headers.count == 3
                else {
                    fatalError("\(name) did not verify")
                }
            }
        }
    }

    let projected = Fixture.verifier(cacheEntries: 0, projection: Fixture.projection)
    for (name, fixture) in [("RS256", rs256), ("ES256", es256)] {
        Benchmark("verify \(name) uncached, as the proxy (claims projected)") { benchmark in
            for _ in benchmark.scaledIterations {
                let digest = TokenDigest(token: fixture.token)
                guard case .verified = projected.verifyLocally(fixture.token, digest: digest, acceptedIssuers: nil)
                else {
                    fatalError("\(name) did not verify")
                }
            }
        }
    }

    Benchmark("raw swift-crypto RS256 signature check") { benchmark in
        let key = Fixture.rsa.publicKey
        let signature = _RSA.Signing.RSASignature(rawRepresentation: rs256.signature)
        for _ in benchmark.scaledIterations {
            let digest = SHA256.hash(data: rs256.signingInput)
            blackHole(key.isValidSignature(signature, for: digest, padding: .insecurePKCS1v1_5))
        }
    }

    Benchmark("raw swift-crypto ES256 signature check") { benchmark in
        let key = Fixture.p256.publicKey
        let signature = try! P256.Signing.ECDSASignature(rawRepresentation: es256.signature)
        for _ in benchmark.scaledIterations {
            blackHole(key.isValidSignature(signature, for: SHA256.hash(data: es256.signingInput)))
        }
    }

    Benchmark("raw swift-crypto Ed25519 signature check") { benchmark in
        let key = Fixture.ed25519.publicKey
        for _ in benchmark.scaledIterations {
            blackHole(key.isValidSignature(eddsa.signature, for: eddsa.signingInput))
        }
    }

    let cached = Fixture.verifier(cacheEntries: 10_000)
    _ = cached.verifyLocally(rs256.token, digest: TokenDigest(token: rs256.token), acceptedIssuers: nil)
    Benchmark("verified-token cache hit (SHA-256 + lookup + exp check)") { benchmark in
        for _ in benchmark.scaledIterations {
            let digest = TokenDigest(token: rs256.token)
            guard case .verified = cached.verifyLocally(rs256.token, digest: digest, acceptedIssuers: ["main"]) else {
                fatalError("cache miss")
            }
        }
    }

    Benchmark("introspection cache hit") { benchmark in
        let server = try await TestHTTPServer.start { _ in
            .json(#"{"active":true,"sub":"svc","scope":"a b","exp":\#(Int(Fixture.now) + 3600)}"#)
        }
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let policy = IssuerPolicy(name: "opaque", issuer: Fixture.issuer, audiences: [])
        let introspection = IntrospectionClient(
            settings: IntrospectionSettings(endpoint: server.url("/i"), clientID: "gate", clientSecret: Secret("s")),
            policy: policy,
            client: client
        )
        let verifier = TokenVerifier(issuers: [IssuerVerifier(policy: policy, keys: nil, introspection: introspection)])
        let token = "opaque-reference-token-0123456789abcdef"
        _ = await verifier.verify(token)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            guard
                case .verified = verifier.verifyLocally(token, digest: TokenDigest(token: token), acceptedIssuers: nil)
            else { fatalError("introspection cache miss") }
        }
        benchmark.stopMeasurement()
        try await client.shutdown()
        try await server.shutdown()
    }

    let table = Fixture.routeTable()
    Benchmark("route match only, 50 routes") { benchmark in
        for _ in benchmark.scaledIterations {
            guard table.matchIndex(method: "GET", path: "/orders/42/lines/7") == 48 else { fatalError("no match") }
        }
    }

    Benchmark("path normalisation + route match, 50 routes") { benchmark in
        for _ in benchmark.scaledIterations {
            let normalised = try! PathNormalizer.normalize("/orders/%34%32/./lines/7?expand=true").get()
            guard table.match(method: "GET", path: normalised.path)?.name == "orders" else { fatalError("no match") }
        }
    }
}
