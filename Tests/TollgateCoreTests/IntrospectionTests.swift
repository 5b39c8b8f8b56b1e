import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Testing
import TollgateTestSupport

@testable import TollgateCore

/// RFC 7662 introspection against a real HTTP server on 127.0.0.1.
@Suite(.serialized) struct IntrospectionTests {
    /// One client for the whole run, as in production (it lives as long as the process).
    /// Its read timeout is long: the test server answers from a task, which waits for a free
    /// thread while the whole suite starts on two cores.
    static let sharedClient = OutboundHTTP.makeClient(readTimeout: .seconds(30))
    var client: HTTPClient { Self.sharedClient }
    let clock = ManualClock()
    static let clientID = "@my-app.is/gate"
    static let clientSecret = "s3cret:with/odd chars"

    func withServer(
        _ handler: @escaping TestHTTPServer.Handler,
        _ body: (TestHTTPServer) async throws -> Void
    ) async throws {
        try await TestHTTPServer.serving(handler, body)
    }

    func introspector(
        _ endpoint: String,
        authentication: IntrospectionSettings.ClientAuthentication = .clientSecretBasic,
        timeout: Double = 30
    ) -> IntrospectionClient {
        var settings = IntrospectionSettings(
            endpoint: endpoint,
            clientID: Self.clientID,
            clientSecret: Secret(Self.clientSecret)
        )
        settings.authentication = authentication
        // Long enough for a loaded machine running the whole suite; the timeout test sets 1.
        settings.timeout = timeout
        return IntrospectionClient(settings: settings, policy: TestTokens.policy(), client: client, now: clock.function)
    }

    func active(exp: Double, extra: String = "") -> TestHTTPServer.Response {
        .json(
            #"{"active":true,"iss":"\#(TestTokens.issuer)","sub":"svc-7","scope":"@team/orders.read","exp":\#(Int(exp))\#(extra)}"#
        )
    }

    @Test func basicAuthenticationFormEncodesIdAndSecretFirst() async throws {
        try await withServer({ [clock] _ in active(exp: clock.now + 600) }) { server in
            let result = await introspector(server.url("/introspect")).introspect("opaque-token-1")
            #expect((try? result.get())?.subject == "svc-7")
            let request = try #require(server.requests.first)
            // RFC 6749 §2.3.1: "%40my-app.is%2Fgate" : "s3cret%3Awith%2Fodd+chars", then base64.
            let expected = "Basic " + Data("%40my-app.is%2Fgate:s3cret%3Awith%2Fodd+chars".utf8).base64EncodedString()
            #expect(request.header("Authorization") == expected)
            #expect(request.method == "POST")
            #expect(request.header("Content-Type") == "application/x-www-form-urlencoded")
            #expect(request.bodyText == "token=opaque-token-1&token_type_hint=access_token")
        }
    }

    @Test func clientSecretPostSendsTheCredentialsInTheBody() async throws {
        try await withServer({ [clock] _ in active(exp: clock.now + 600) }) { server in
            _ = await introspector(server.url("/introspect"), authentication: .clientSecretPost).introspect("t")
            let request = try #require(server.requests.first)
            #expect(request.header("Authorization") == nil)
            #expect(request.bodyText.contains("client_id=%40my-app.is%2Fgate"))
            #expect(request.bodyText.contains("client_secret=s3cret%3Awith%2Fodd+chars"))
        }
    }

    @Test func positiveResultsAreCachedUntilTheEarlierOfExpAndTTL() async throws {
        try await withServer({ [clock] _ in active(exp: clock.now + 30) }) { server in
            let introspection = introspector(server.url("/introspect"))
            for _ in 0..<5 { _ = await introspection.introspect("cached-token") }
            #expect(server.requestCount == 1)
            clock.advance(by: 31)
            _ = await introspection.introspect("cached-token")
            #expect(server.requestCount == 2, "exp (30 s) came before the 60 s ttl")
        }
    }

    @Test func negativeResultsAreCachedBriefly() async throws {
        try await withServer({ _ in .json(#"{"active":false}"#) }) { server in
            let introspection = introspector(server.url("/introspect"))
            #expect(await introspection.introspect("revoked").failureCode == .inactive)
            #expect(await introspection.introspect("revoked").failureCode == .inactive)
            #expect(server.requestCount == 1)
            clock.advance(by: 6)
            #expect(await introspection.introspect("revoked").failureCode == .inactive)
            #expect(server.requestCount == 2)
        }
    }

    @Test func concurrentIdenticalLookupsShareOneCall() async throws {
        try await withServer({ [clock] _ in
            try? await Task.sleep(for: .milliseconds(200))
            return active(exp: clock.now + 600)
        }) { server in
            let introspection = introspector(server.url("/introspect"))
            let subjects = await withTaskGroup(of: String?.self) { group in
                for _ in 0..<100 { group.addTask { try? await introspection.introspect("same-token").get().subject } }
                return await group.reduce(into: [String?]()) { $0.append($1) }
            }
            #expect(subjects.count == 100)
            #expect(subjects.allSatisfy { $0 == "svc-7" })
            #expect(server.requestCount == 1)
        }
    }

    @Test func inactiveAndExpiredAreInvalidTokens() async throws {
        let answer = NIOLockedValueBox(TestHTTPServer.Response.json(#"{"active":false}"#))
        try await withServer({ _ in answer.withLockedValue { $0 } }) { server in
            let introspection = introspector(server.url("/introspect"))
            #expect(await introspection.introspect("a").failureCode == .inactive)
            answer.withLockedValue { $0 = .json(#"{"active":"true"}"#) }
            #expect(await introspection.introspect("b").failureCode == .inactive, "only a JSON true is active")
            answer.withLockedValue { [clock] in $0 = active(exp: clock.now - 120) }
            #expect(await introspection.introspect("c").failureCode == .expired)
            answer.withLockedValue { [clock] in $0 = active(exp: clock.now + 600, extra: #","aud":"@team/else""#) }
            #expect(await introspection.introspect("d").failureCode == .audienceMismatch)
        }
    }

    @Test func unreachableOrFailingEndpointIsUnavailableNeverActive() async throws {
        try await withServer({ _ in .json("{}", status: 500) }) { server in
            let introspection = introspector(server.url("/introspect"))
            #expect(await introspection.introspect("x").failureCode == .introspectionUnavailable)
            #expect(await introspection.introspect("x").failureCode == .introspectionUnavailable)
            #expect(server.requestCount == 2, "failures are not cached")
        }
        // Port 1: nothing listens there (a port freed by a stopped server could be taken by a
        // test running alongside).
        let url = "http://127.0.0.1:1/introspect"
        var settings = IntrospectionSettings(endpoint: url, clientID: "id", clientSecret: Secret("s"))
        settings.timeout = 1
        let introspection = IntrospectionClient(settings: settings, policy: TestTokens.policy(), client: client)
        #expect(await introspection.introspect("y").failureCode == .introspectionUnavailable)
    }

    @Test func slowEndpointTimesOutAsUnavailable() async throws {
        try await withServer({ [clock] _ in
            try? await Task.sleep(for: .seconds(3))
            return active(exp: clock.now + 600)
        }) { server in
            #expect(
                await introspector(server.url("/introspect"), timeout: 1).introspect("slow").failureCode
                    == .introspectionUnavailable
            )
        }
    }

    @Test func opaqueTokensGoThroughTheVerifierToIntrospection() async throws {
        try await withServer({ [clock] _ in active(exp: clock.now + 600) }) { server in
            let issuer = IssuerVerifier(
                policy: TestTokens.policy(),
                keys: nil,
                introspection: introspector(server.url("/introspect"))
            )
            let verifier = TokenVerifier(issuers: [issuer], now: clock.function)
            let token = "ory_at_Zm9vYmFy.YmF6"
            let first = await verifier.verify(token)
            #expect((try? first.get())?.scopes == ["@team/orders.read"])
            guard
                case .verified = verifier.verifyLocally(token, digest: TokenDigest(token: token), acceptedIssuers: nil)
            else {
                Issue.record("the second lookup should be answered from the cache without suspending")
                return
            }
            #expect(server.requestCount == 1)
        }
    }
}
