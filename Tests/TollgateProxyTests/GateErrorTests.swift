import Foundation
import Testing
import TollgateCore
import TollgateProxy

@Suite struct GateErrorTests {
    @Test func missingTokenIsABareChallenge() {
        let response = GateError(.missingToken).response(realm: "tollgate")
        #expect(response.status == 401)
        #expect(response.headers.first { $0.0 == "WWW-Authenticate" }?.1 == #"Bearer realm="tollgate""#)
    }

    @Test func invalidTokenTellsTheFixedTextOfItsCodeNeverTheReason() {
        let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzZWNyZXQtc3ViamVjdCJ9.c2ln"
        let failure = VerificationFailure(
            .algorithmNotAllowed,
            "the algorithm 'x\r\nInjected: \(token)' is not allowed"
        )
        let response = GateError(failure).response(realm: "r")
        #expect(response.status == 401)
        #expect(
            response.headers.first?.1
                == #"Bearer realm="r", error="invalid_token", error_description="the token's algorithm is not allowed""#
        )
        #expect(!response.body.contains(token))
        #expect(!response.headers.contains { $0.1.contains(token) || $0.1.contains("Injected") })
    }

    @Test func everyVerificationCodeHasAPlainFixedDescription() throws {
        for code in VerificationFailure.Code.allCases {
            let response = GateError(VerificationFailure(code, "\"\\\r\n\u{0}")).response(realm: "r")
            let description = code.publicDescription
            #expect(description.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x5C })
            let body = try JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: String]
            #expect(body?["error_description"] == description)
        }
    }

    @Test func unavailableVerificationIsA503NeverA401() {
        for code in [VerificationFailure.Code.keysUnavailable, .introspectionUnavailable] {
            let response = GateError(VerificationFailure(code, "down")).response(realm: "r")
            #expect(response.status == 503)
            #expect(response.headers.contains { $0.0 == "Retry-After" })
        }
    }

    @Test func insufficientScopeListsTheNeededScopes() {
        let response = GateError(.insufficientScope, scope: "@team/orders.write").response(realm: "r")
        #expect(response.status == 403)
        #expect(response.headers.first?.1.hasSuffix(#"error="insufficient_scope", scope="@team/orders.write""#) == true)
    }

    @Test func quotesAndControlsInTheRealmCannotBreakTheChallenge() {
        let response = GateError(.missingToken).response(realm: "a\"b\\c\r\nX: y")
        #expect(response.headers.first?.1 == #"Bearer realm="a\"b\\cX: y""#)
    }

    @Test func everyCodeAnswersValidJSONWithAnErrorMember() throws {
        for code in GateError.Code.allCases {
            let response = GateError(code, "detail \r\n\"").response(realm: "r")
            let body = try JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: String]
            #expect(body?["error"] != nil, "\(code)")
            #expect(!response.body.contains("detail"))
        }
    }

    @Test func nothingServedAndUpstreamFailuresAreNotCountedAsForbidden() {
        #expect(GateError(.notFound).outcome == .notFound)
        #expect(GateError(.upstreamUnreachable).outcome == .upstreamError)
        #expect(GateError(.upstreamInvalidResponse).outcome == .upstreamError)
        #expect(GateError(.noRoute).outcome == .forbidden)
        #expect(GateError(.malformedRequest).outcome == .badRequest)
    }
}
