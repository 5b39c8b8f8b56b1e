import Foundation
import Testing

@testable import TollgateCore

/// Signature examples from RFC 7515 Appendix A.2/A.3, RFC 8037 A.4 and RFC 7520 §4, checked in as
/// fixtures exactly as the RFCs print them.
@Suite struct RFCVectorTests {
    struct Vector: Decodable, CustomTestStringConvertible, Sendable {
        let alg: String
        let jwk: [String: String]
        let token: String
        let payload: String
        var name = ""
        var testDescription: String { name }

        enum CodingKeys: String, CodingKey { case alg, jwk, token, payload }
    }

    static let vectors: [Vector] = {
        let directory = Bundle.module.url(forResource: "Fixtures/rfc", withExtension: nil)!
        let files = try! FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
        return files.filter { $0.pathExtension == "json" }.sorted { $0.path < $1.path }.map { file in
            var vector = try! JSONDecoder().decode(Vector.self, from: Data(contentsOf: file))
            vector.name = file.deletingPathExtension().lastPathComponent
            return vector
        }
    }()

    static func key(for vector: Vector) throws -> VerificationKey {
        if vector.jwk["kty"] == "oct" {
            return .hmac(secret: Base64URL.decode(vector.jwk["k"]!)!, keyID: vector.jwk["kid"])
        }
        let json = try JSONParser.parse(Array(try JSONEncoder().encode(vector.jwk)))
        return try JSONWebKeySet.parseKey(json).get()
    }

    @Test func allSevenVectorsArePresent() {
        #expect(Self.vectors.count == 7)
    }

    @Test(arguments: vectors)
    func rfcSignatureVerifies(_ vector: Vector) throws {
        let algorithm = try #require(JWSAlgorithm(rawValue: vector.alg))
        let jws = try CompactJWS.parse(vector.token, maximumSize: 8192).get()
        let keySet = JSONWebKeySet(keys: [try Self.key(for: vector)])
        let verified = JWSVerifier(allowedAlgorithms: [algorithm]).verify(jws, keySet: keySet)
        #expect(try verified.get() == algorithm)
        #expect(String(decoding: jws.payload, as: UTF8.self) == vector.payload)
    }

    @Test(arguments: vectors)
    func rfcSignatureFailsWhenOnePayloadByteChanges(_ vector: Vector) throws {
        let algorithm = try #require(JWSAlgorithm(rawValue: vector.alg))
        var parts = vector.token.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        var payload = Base64URL.decode(parts[1])!
        payload[0] ^= 0x01
        parts[1] = Base64URL.encode(payload)
        let jws = try CompactJWS.parse(parts.joined(separator: "."), maximumSize: 8192).get()
        let keySet = JSONWebKeySet(keys: [try Self.key(for: vector)])
        let result = JWSVerifier(allowedAlgorithms: [algorithm]).verify(jws, keySet: keySet)
        #expect(result.failureCodeOfAlgorithm == .signatureInvalid)
    }

    @Test func rfc7515ExampleClaimsAreExpiredLongAgo() async {
        let vector = Self.vectors.first { $0.name == "rfc7515-a2-rs256" }!
        let keySet = JSONWebKeySet(keys: [try! Self.key(for: vector)])
        let policy = IssuerPolicy(name: "rfc", issuer: "joe", audiences: [], algorithms: [.rs256])
        let verifier = TestTokens.verifier(keySet: keySet, policy: policy, now: { 1_800_000_000 })
        #expect(await verifier.verify(vector.token).failureCode == .expired)
        let atIssue = TestTokens.verifier(keySet: keySet, policy: policy, now: { 1_300_819_000 })
        let claims = try? await atIssue.verify(vector.token).get().claims
        #expect(claims?["http://example.com/is_root"] == .bool(true))
    }
}

extension Result where Success == JWSAlgorithm, Failure == VerificationFailure {
    var failureCodeOfAlgorithm: VerificationFailure.Code? {
        if case .failure(let failure) = self { return failure.code }
        return nil
    }
}
