import FuzzSupport
import TollgateCore
import TollgateProxy

/// The compact JWS splitter, the JOSE header and claims JSON parser and the claim checks, as the
/// verifier runs them on a bearer token. Properties: no crash, no hang, and whatever fails, the
/// client's answer is one of the fixed texts (nothing of the token reaches it).
enum FuzzJWS {
    /// The RFC 7515 §A.3 P-256 key, so inputs that keep its `kid` reach the signature check.
    static let keySet = try! JSONWebKeySet.parse(
        Array(
            #"{"keys":[{"kty":"EC","crv":"P-256","kid":"k","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#
                .utf8
        )
    )
    static let verifier = TokenVerifier(
        issuers: [
            IssuerVerifier(
                policy: IssuerPolicy(name: "fuzz", issuer: "joe", audiences: ["api"], algorithms: [.es256, .rs256]),
                keys: JWKSCache(issuerName: "fuzz", source: .fixed(JSONWebKeySetBox(keySet)), client: nil)
            )
        ],
        now: { 1_300_000_000 }
    )
    /// Every answer a refused token can get, by code.
    static let answers: [VerificationFailure.Code: VerdictResponse] = Dictionary(
        uniqueKeysWithValues: VerificationFailure.Code.allCases.map {
            ($0, GateError(VerificationFailure($0, "")).response(realm: "fuzz"))
        }
    )

    static func check(_ bytes: UnsafeRawBufferPointer) {
        let token = String(decoding: bytes, as: UTF8.self)
        _ = CompactJWS.parse(token, maximumSize: 8192)
        switch verifier.verifyLocally(token, digest: TokenDigest(token: token), acceptedIssuers: nil) {
        case .failed(let failure):
            let answer = GateError(failure).response(realm: "fuzz")
            // The fixed text of its code, so nothing of the token can be in it.
            require(answer == answers[failure.code], "the answer to \(failure.code) is not its fixed text")
            for (_, value) in answer.headers {
                require(!value.utf8.contains { $0 < 0x20 || $0 == 0x7F }, "a control character in a header")
            }
            require((try? JSONParser.parse(Array(answer.body.utf8))) != nil, "the body is not JSON")
        case .verified(let token):
            require(token.expiresAt > 1_300_000_000 - 30, "an expired token verified")
        case .needsKeyRefresh, .needsIntrospection:
            break
        }
    }
}

@main
enum Entry {
    static func main() { FuzzEntry.main(FuzzJWS.check) }
}

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    FuzzJWS.check(UnsafeRawBufferPointer(start: start, count: count))
    return 0
}
#endif
