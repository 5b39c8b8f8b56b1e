import NIOHTTP1
import Testing
import TollgateCore

@testable import TollgateProxy

/// `ForwardAuthRequest` without sockets: which request a forward-auth check asks about, and the
/// answer to an allowed one. (`ForwardAuthTests` runs the same against the real listener.)
@Suite struct ForwardAuthRequestTests {
    @Test func aCheckAtTheConfiguredPathAsksAboutTheForwardedMethodAndURI() {
        let headers = HTTPHeaders([("X-Forwarded-Method", "DELETE"), ("X-Forwarded-Uri", "/orders/1?x=y")])
        let request = ForwardAuthRequest.parse(
            method: "GET",
            target: "/auth?from=traefik",
            headers: headers,
            configuredPath: "/auth"
        )
        #expect(request == ForwardAuthRequest(method: "DELETE", target: "/orders/1?x=y"))
    }

    @Test func nginxsOriginalURIStandsInForTheForwardedURI() {
        let request = ForwardAuthRequest.parse(
            method: "GET",
            target: "/auth",
            headers: HTTPHeaders([("X-Original-URI", "/orders/2")]),
            configuredPath: "/auth"
        )
        #expect(request == ForwardAuthRequest(method: "GET", target: "/orders/2"))
    }

    @Test func envoysOriginalPathFollowsTheConfiguredPrefix() {
        let request = ForwardAuthRequest.parse(
            method: "POST",
            target: "/auth/orders/3?q=1",
            headers: HTTPHeaders(),
            configuredPath: "/auth"
        )
        #expect(request == ForwardAuthRequest(method: "POST", target: "/orders/3?q=1"))
    }

    @Test func anotherPathIsNoCheck() {
        for target in ["/authx", "/orders/auth", "/"] {
            #expect(
                ForwardAuthRequest.parse(method: "GET", target: target, headers: HTTPHeaders(), configuredPath: "/auth")
                    == nil
            )
        }
        #expect(
            ForwardAuthRequest.parse(method: "GET", target: "/auth", headers: HTTPHeaders(), configuredPath: nil) == nil
        )
    }

    @Test func anAllowedCheckIsAnsweredWithTheForwardedClaims() throws {
        let mapping = ClaimHeaderMapping(entries: [.init(header: "X-User", claim: "sub")])
        let token = VerifiedToken(
            issuerName: "main",
            claims: .object(["sub": .string("alice")]),
            subject: "alice",
            scopes: [],
            expiresAt: 0,
            leeway: 0,
            encodedClaims: ""
        )
        let answer = try ForwardAuthRequest.allowedAnswer(for: token, mapping: mapping)
        #expect(answer.status == 200)
        #expect(answer.headers.map { [$0.0, $0.1] } == [["X-User", "alice"]])
        #expect(try ForwardAuthRequest.allowedAnswer(for: nil, mapping: mapping).headers.isEmpty)
    }

    @Test func aClaimThatCannotBeAHeaderRefusesTheCheck() {
        let mapping = ClaimHeaderMapping(entries: [.init(header: "X-User", claim: "sub")])
        let token = VerifiedToken(
            issuerName: "main",
            claims: .object(["sub": .string("alice\r\nX-Admin: 1")]),
            subject: nil,
            scopes: [],
            expiresAt: 0,
            leeway: 0,
            encodedClaims: ""
        )
        #expect(throws: GateError.self) { try ForwardAuthRequest.allowedAnswer(for: token, mapping: mapping) }
    }
}
