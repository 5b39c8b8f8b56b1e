import Foundation
import Testing

@testable import TollgateCore

/// Tokens of every supported algorithm, and hostile ones, minted by joserfc (an independent JOSE
/// library from PyPI) with fresh keys, then checked by TollgateCore.
@Suite struct InteropTests {
    struct Minted {
        struct Case {
            let name: String
            let token: String
            let expect: String
        }
        let jwks: [UInt8]
        let hmacSecret: String
        let issuer: String
        let audience: String
        let cases: [Case]
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
        let document = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let cases = try #require(document["cases"] as? [[String: String]]).map {
            Minted.Case(name: $0["name"] ?? "", token: $0["token"] ?? "", expect: $0["expect"] ?? "")
        }
        return Minted(
            jwks: Array(try JSONSerialization.data(withJSONObject: try #require(document["jwks"]))),
            hmacSecret: try #require(document["hmac_secret"] as? String),
            issuer: try #require(document["issuer"] as? String),
            audience: try #require(document["audience"] as? String),
            cases: cases
        )
    }

    @Test func joserfcTokensVerifyOrFailAsExpected() async throws {
        let minted = try Self.mint()
        let keySet = try JSONWebKeySet.parse(minted.jwks)
        #expect(keySet.skipped.count == 1, "the Ed448 key is skipped, the others load")
        #expect(keySet.keys.count == 7)
        let policy = IssuerPolicy(
            name: "joserfc",
            issuer: minted.issuer,
            audiences: [minted.audience],
            algorithms: Set(JWSAlgorithm.allCases),
            requiredTokenType: "at+jwt"
        )
        let keys = JWKSCache(
            issuerName: "joserfc",
            source: .fixed(JSONWebKeySetBox(keySet)),
            additionalKeys: [.hmac(secret: Array(minted.hmacSecret.utf8), keyID: "hmac")],
            client: nil
        )
        let issuer = IssuerVerifier(policy: policy, keys: keys)
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
