import Testing
import TollgateCore
import TollgateProxy

@Suite struct VerdictResponseTests {
    @Test func missingTokenIsABareChallenge() {
        let response = VerdictResponse.missingToken(realm: "tollgate")
        #expect(response.status == 401)
        #expect(response.headers.first { $0.0 == "WWW-Authenticate" }?.1 == #"Bearer realm="tollgate""#)
    }

    @Test func invalidTokenNamesTheReasonButNotTheToken() {
        let response = VerdictResponse.refused(VerificationFailure(.expired, "the token has expired"), realm: "r")
        #expect(response.status == 401)
        #expect(
            response.headers.first?.1
                == #"Bearer realm="r", error="invalid_token", error_description="the token has expired""#
        )
    }

    @Test func unavailableVerificationIsA503NeverA401() {
        for code in [VerificationFailure.Code.keysUnavailable, .introspectionUnavailable] {
            let response = VerdictResponse.refused(VerificationFailure(code, "down"), realm: "r")
            #expect(response.status == 503)
            #expect(response.headers.contains { $0.0 == "Retry-After" })
        }
    }

    @Test func insufficientScopeListsTheNeededScopes() {
        let response = VerdictResponse.insufficientScope("@team/orders.write", realm: "r")
        #expect(response.status == 403)
        #expect(response.headers.first?.1.hasSuffix(#"error="insufficient_scope", scope="@team/orders.write""#) == true)
    }
}
