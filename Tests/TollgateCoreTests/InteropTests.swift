import Foundation
import Testing

@testable import TollgateCore

/// Tokens of every supported algorithm, and hostile ones, minted by joserfc (an independent JOSE
/// library from PyPI) with fresh keys, then checked by TollgateCore.
@Suite struct InteropTests {
    struct Minted: Decodable {
        struct Case: Decodable {
            let name: String
            let token: String
            let expect: String
        }
        let jwks: JSONValueBox
        let hmac_secret: String
        let issuer: String
        let audience: String
        let cases: [Case]
    }

    /// Keeps the JWKS as raw JSON text.
    struct JSONValueBox: Decodable {
        let text: String
        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            let any = try container.decode(AnyJSON.self)
            text = String(decoding: try JSONSerialization.data(withJSONObject: any.value), as: UTF8.self)
        }
    }

    struct AnyJSON: Decodable {
        let value: Any
        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let object = try? container.decode([String: AnyJSON].self) {
                value = object.mapValues(\.value)
            } else if let array = try? container.decode([AnyJSON].self) {
                value = array.map(\.value)
            } else if let string = try? container.decode(String.self) {
                value = string
            } else if let number = try? container.decode(Double.self) {
                value = number
            } else if let flag = try? container.decode(Bool.self) {
                value = flag
            } else {
                value = NSNull()
            }
        }
    }

    static func mint() throws -> Minted {
        let script = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Interop/mint_tokens.py")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "mint_tokens.py failed (is joserfc installed?)")
        return try JSONDecoder().decode(Minted.self, from: data)
    }

    @Test func joserfcTokensVerifyOrFailAsExpected() async throws {
        let minted = try Self.mint()
        let keySet = try JSONWebKeySet.parse(Array(minted.jwks.text.utf8))
        #expect(keySet.skipped.count == 1, "the Ed448 key is skipped, the others load")
        #expect(keySet.keys.count == 7)
        let policy = IssuerPolicy(
            name: "joserfc",
            issuer: minted.issuer,
            audiences: [minted.audience],
            algorithms: Set(JWSAlgorithm.allCases),
            requiredTokenType: "at+jwt"
        )
        let keys = JWKSCache(issuerName: "joserfc", source: .fixed(JSONWebKeySetBox(keySet)), client: nil)
        let issuer = IssuerVerifier(
            policy: policy,
            keys: keys,
            hmacKeys: [.hmac(secret: Array(minted.hmac_secret.utf8), keyID: "hmac")]
        )
        let verifier = TokenVerifier(issuers: [issuer])
        #expect(minted.cases.count >= 30)
        for testCase in minted.cases {
            let result = await verifier.verify(testCase.token)
            switch result {
            case .success(let token):
                #expect(testCase.expect == "ok", "\(testCase.name) verified but should fail with \(testCase.expect)")
                #expect(token.subject == "user-42")
                #expect(token.scopes == ["@team/orders.read", "openid"])
            case .failure(let failure):
                #expect(failure.code.rawValue == testCase.expect, "\(testCase.name): \(failure)")
            }
        }
    }
}
