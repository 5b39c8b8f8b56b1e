import Crypto
import Foundation
import Glibc
import TollgateCore

/// Heap bytes each cached token costs: distinct HS256 tokens carrying the 680-byte claim set of
/// CoreBenchmarks are verified twice each (the second sighting admits them to the cache), and
/// the growth of the heap in use over the second pass, divided by the tokens cached, is the
/// figure. Printed for the full record and for the record the proxy keeps (the claims its
/// configuration reads: here `sub`, `scope` and `actor`, no payload header).
///
///   swift run -c release CacheFootprint [TOKENS]
let count = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 50_000 : 50_000
let secret = Array("a-benchmark-secret-of-32-bytes!!".utf8)
let issuer = "https://idp.example.com/team"
let now = Int(Date().timeIntervalSince1970)

func b64(_ bytes: [UInt8]) -> String { Base64URL.encode(bytes) }

func token(_ index: Int) -> String {
    let claims = """
        {"iss":"\(issuer)","sub":"user-\(index)","aud":["@team/api","@team/other"],"exp":\(now + 3600),\
        "iat":\(now),"nbf":\(now),"jti":"jti-\(index)-a1b2c3d4e5f6",\
        "scope":"@team/orders.read @team/orders.write openid profile email","client_id":"@team/web",\
        "actor":{"national_id":"1234567890","name":"Alice Example","roles":["admin","user"]},\
        "email":"alice@example.com","email_verified":true,"name":"Alice Example","given_name":"Alice",\
        "family_name":"Example","locale":"en-US","zoneinfo":"Europe/Berlin","updated_at":\(now),\
        "sid":"session-abcdef123456","auth_time":\(now),"acr":"urn:mace:incommon:iap:silver",\
        "amr":["pwd","otp"],"azp":"@team/web"}
        """
    let input = b64(Array(#"{"alg":"HS256","typ":"at+jwt"}"#.utf8)) + "." + b64(Array(claims.utf8))
    let mac = HMAC<SHA256>.authenticationCode(for: Array(input.utf8), using: SymmetricKey(data: secret))
    return input + "." + b64(Array(mac))
}

func verifier(_ projection: ClaimProjection?) -> TokenVerifier {
    let policy = IssuerPolicy(
        name: "main",
        issuer: issuer,
        audiences: ["@team/api"],
        algorithms: [.hs256],
        requiredTokenType: "at+jwt"
    )
    let keys = JWKSCache(
        issuerName: "main",
        source: .fixed(JSONWebKeySetBox(.empty)),
        additionalKeys: [.hmac(secret: secret)],
        client: nil
    )
    return TokenVerifier(
        issuers: [IssuerVerifier(policy: policy, keys: keys)],
        cache: VerifiedTokenCache(maximumEntries: count * 2),
        claimProjection: projection
    )
}

func heapInUse() -> Int { Int(mallinfo2().uordblks) }

let tokens = (0..<count).map(token)
let digests = tokens.map { TokenDigest(token: $0) }
for (name, projection) in [
    ("full record", nil),
    ("lean record (sub, scope, actor)", ClaimProjection(names: ["sub", "scope", "actor"], keepsEncodedClaims: false)),
    ("lean record with payload_header", ClaimProjection(names: ["sub", "scope", "actor"], keepsEncodedClaims: true)),
] as [(String, ClaimProjection?)] {
    let verifier = verifier(projection)
    for (token, digest) in zip(tokens, digests) {
        guard case .verified = verifier.verifyLocally(token, digest: digest, acceptedIssuers: nil) else {
            fatalError("a benchmark token did not verify")
        }
    }
    let before = heapInUse()
    for (token, digest) in zip(tokens, digests) {
        _ = verifier.verifyLocally(token, digest: digest, acceptedIssuers: nil)
    }
    let after = heapInUse()
    let cached = verifier.cache.count
    print("\(name): \(cached) tokens cached, \((after - before) / max(cached, 1)) bytes each")
}
