import Crypto
import Foundation
import Glibc
import TollgateCore

/// Memory each cached token costs: distinct HS256 tokens carrying the 680-byte claim set of
/// CoreBenchmarks are verified twice each (the second sighting admits them to the cache), and
/// the growth of resident memory over the second pass, divided by the tokens cached, is the
/// figure. One record kind per process (freed memory stays resident, so a second measurement in
/// the same process would reuse it): `full`, every claim and the payload; `lean`, what the proxy
/// keeps when it forwards `sub`, `scope` and `actor.national_id` as headers (their values, no
/// claims); `payload`, the same with `payload_header`; `none`, no claims and no headers (the
/// cache's own cost per entry).
///
///   for kind in full lean payload none; do swift run -c release CacheFootprint $kind 50000; done
let arguments = CommandLine.arguments
let kind = arguments.count > 1 ? arguments[1] : "lean"
let count = arguments.count > 2 ? Int(arguments[2]) ?? 50_000 : 50_000
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

/// Resident bytes of this process (`/proc/self/statm`): the cache's growth over 50,000 tokens
/// is tens of megabytes, far above the page granularity.
func heapInUse() -> Int {
    let fields = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8))?.split(separator: " ") ?? []
    return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
}

let tokens = (0..<count).map(token)
let digests = tokens.map { TokenDigest(token: $0) }
/// The load harness's and the example configuration's claim headers.
let forward = ClaimHeaderMapping(entries: [
    .init(header: "X-Auth-Subject", claim: "sub"), .init(header: "X-Auth-Scope", claim: "scope"),
    .init(header: "X-Auth-Actor", claim: "actor.national_id"),
])
let projection: ClaimProjection?
switch kind {
case "full": projection = nil
case "none": projection = ClaimProjection(names: [], keepsEncodedClaims: false)
case "payload": projection = ClaimProjection(names: [], keepsEncodedClaims: true, forward: forward)
default: projection = ClaimProjection(names: [], keepsEncodedClaims: false, forward: forward)
}
let measured = verifier(projection)
for (token, digest) in zip(tokens, digests) {
    guard case .verified = measured.verifyLocally(token, digest: digest, acceptedIssuers: nil) else {
        fatalError("a benchmark token did not verify")
    }
}
let before = heapInUse()
for (token, digest) in zip(tokens, digests) {
    _ = measured.verifyLocally(token, digest: digest, acceptedIssuers: nil)
}
let after = heapInUse()
let cached = measured.cache.count
print("\(kind) record: \(cached) tokens cached, \((after - before) / max(cached, 1)) bytes each")
