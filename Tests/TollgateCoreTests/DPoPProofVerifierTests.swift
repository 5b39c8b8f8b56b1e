import Crypto
import Foundation
import Testing

@testable import TollgateCore

/// The parts of a DPoP proof check that are not the signature: the key's RFC 7638 thumbprint,
/// against the RFCs' own examples, and the URIs `htu` is compared as.
@Suite struct DPoPProofVerifierTests {
    struct Vector: Decodable, CustomTestStringConvertible, Sendable {
        let jwk: [String: String]
        let thumbprint: String
        var name = ""
        var testDescription: String { name }

        enum CodingKeys: String, CodingKey { case jwk, thumbprint }
    }

    /// RFC 7638 §3.1 (RSA) and RFC 8037 A.3 (Ed25519), as the RFCs print them.
    static let vectors: [Vector] = {
        let directory = Bundle.module.url(forResource: "Fixtures/thumbprints", withExtension: nil)!
        let files = try! FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
        return files.filter { $0.pathExtension == "json" }.sorted { $0.path < $1.path }.map { file in
            var vector = try! JSONDecoder().decode(Vector.self, from: Data(contentsOf: file))
            vector.name = file.deletingPathExtension().lastPathComponent
            return vector
        }
    }()

    static func normalised(_ uri: String) -> String? {
        DPoPProofVerifier.comparable(uri).map { String(decoding: $0, as: UTF8.self) }
    }

    @Test func bothRFCExamplesArePresent() {
        #expect(Self.vectors.count == 2)
    }

    @Test(arguments: vectors)
    func theThumbprintIsTheRFCs(_ vector: Vector) {
        #expect(DPoPProofVerifier.thumbprint(of: vector.jwk.mapValues(JSONValue.string)) == vector.thumbprint)
    }

    @Test func aMemberThatNeedsEscapingIsWrittenAsJSONWritesIt() {
        let odd: [String: JSONValue] = ["kty": .string("OKP"), "crv": .string("Ed\"25519"), "x": .string("AA")]
        let serialized = #"{"crv":"Ed\"25519","kty":"OKP","x":"AA"}"#
        #expect(
            DPoPProofVerifier.thumbprint(of: odd) == Base64URL.encode(Array(SHA256.hash(data: Array(serialized.utf8))))
        )
    }

    @Test func aKeyOfAnotherTypeHasNoThumbprint() {
        #expect(DPoPProofVerifier.thumbprint(of: ["kty": .string("oct"), "k": .string("AA")]) == nil)
        #expect(
            DPoPProofVerifier.thumbprint(of: ["kty": .string("EC"), "crv": .string("P-256"), "x": .string("AA")]) == nil
        )
    }

    @Test(arguments: [
        ("HTTPS://API.Test:443/Orders/1?x=1#f", "https://api.test/Orders/1"),
        ("http://api.test:80", "http://api.test/"),
        ("https://api.test:443", "https://api.test/"),
        ("https://api.test:8443/a", "https://api.test:8443/a"),
        ("https://[::1]:443/a", "https://[::1]/a"),
        ("https://[::1]:8443/a", "https://[::1]:8443/a"),
    ])
    func aURIIsComparedWithCaseAndDefaultPortNormalised(_ uri: String, _ expected: String) {
        #expect(Self.normalised(uri) == expected)
    }

    @Test(arguments: [
        // Only the scheme's own port is dropped; nothing else is rewritten.
        ("https://api.test:80/a", "https://api.test:80/a"),
        ("https://api.test:/a", "https://api.test:/a"),
        ("https://api.test/%7Ea/./b", "https://api.test/%7Ea/./b"),
    ])
    func anythingElseIsComparedAsWritten(_ uri: String, _ expected: String) {
        #expect(Self.normalised(uri) == expected)
    }

    @Test(arguments: ["https://user@api.test/a", "https:///a", "ftp://api.test/a", "https:/", "api.test/a"])
    func aURIThatIsNotAnHTTPOriginIsNotCompared(_ uri: String) {
        #expect(Self.normalised(uri) == nil)
    }

    @Test func theTokensDigestIsItsSHA256() {
        let token = "eyJhbGciOiJFUzI1NiJ9.e30.c2ln"
        #expect(TokenDigest(token: token).bytes == Array(SHA256.hash(data: Array(token.utf8))))
    }
}
