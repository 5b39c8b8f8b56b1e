import HTTPTypes
import NIOCore
import NIOHTTP1
import Testing
import TollgateCore

@testable import TollgateProxy

/// The parts of ProxyHandler that are not the connection's life, without sockets: how a local
/// answer is written, how a local endpoint's request and answer are converted, and when the
/// connection's timeouts run out.
@Suite struct LocalAnswerTests {
    static func answer(
        _ verdict: VerdictResponse,
        connection: String? = nil,
        isHead: Bool = false
    ) -> LocalAnswer {
        LocalAnswer(
            verdict,
            requestID: "rid-1",
            connection: connection,
            isHeadRequest: isHead,
            allocator: ByteBufferAllocator()
        )
    }

    @Test func aRefusalCarriesItsLengthTheRequestIdAndJSON() {
        let verdict = GateError(.missingToken).response(realm: "tollgate")
        let written = Self.answer(verdict)
        #expect(written.status == 401)
        #expect(written.failure == nil)
        #expect(written.head.version == .http1_1)
        #expect(written.head.headers["WWW-Authenticate"] == ["Bearer realm=\"tollgate\""])
        #expect(written.head.headers["Content-Type"] == ["application/json"])
        #expect(written.head.headers["Content-Length"] == [String(verdict.body.utf8.count)])
        #expect(written.head.headers["X-Request-Id"] == ["rid-1"])
        #expect(!written.head.headers.contains(name: "Connection"))
        #expect(written.body.map { String(buffer: $0) } == verdict.body)
    }

    @Test func anAnswerThatEndsTheConnectionSaysSo() {
        let written = Self.answer(VerdictResponse(status: 200), connection: "close")
        #expect(written.head.headers["Connection"] == ["close"])
        #expect(written.head.headers["Content-Length"] == ["0"])
        #expect(!written.head.headers.contains(name: "Content-Type"))
        #expect(written.body == nil)
    }

    @Test func theAnswerToAHeadRequestStatesItsLengthWithoutTheBody() {
        let verdict = GateError(.notFound).response(realm: "tollgate")
        let written = Self.answer(verdict, isHead: true)
        #expect(written.head.headers["Content-Length"] == [String(verdict.body.utf8.count)])
        #expect(written.body == nil)
    }

    @Test func aGivenContentTypeIsKept() {
        let written = Self.answer(VerdictResponse(status: 200, headers: [("Content-Type", "text/html")], body: "<p>"))
        #expect(written.head.headers["Content-Type"] == ["text/html"])
    }

    /// No header Tollgate writes carries a CR, LF or NUL, whatever it was built from: a verdict
    /// with one is replaced by a fixed 500 with none of its headers.
    @Test(arguments: ["a\r\nSet-Cookie: x=1", "a\nb", "a\u{0}b", "a\rb"])
    func aVerdictWithAnUnsendableHeaderBecomesAFixed500(value: String) {
        let written = Self.answer(VerdictResponse(status: 200, headers: [("X-Sub", value)], body: "{}"))
        #expect(written.status == 500)
        #expect(written.failure == "invalid_response_header")
        #expect(!written.head.headers.contains(name: "X-Sub"))
        #expect(!written.head.headers.contains(name: "Set-Cookie"))
        let body = written.body.map { String(buffer: $0) }
        #expect(body == #"{"error":"server_error","error_description":"the answer could not be written"}"#)
        #expect(written.head.headers["X-Request-Id"] == ["rid-1"])
    }

    @Test func anEndpointsAnswerLosesItsOwnFramingHeaders() {
        var head = HTTPResponse(status: .ok)
        head.headerFields[.contentType] = "application/json"
        head.headerFields[.contentLength] = "999"
        head.headerFields[.connection] = "keep-alive"
        head.headerFields[.cacheControl] = "no-store"
        let verdict = VerdictResponse(endpointAnswer: head, body: Array(#"{"a":1}"#.utf8))
        #expect(verdict.status == 200)
        #expect(verdict.body == #"{"a":1}"#)
        #expect(verdict.headers.map(\.0) == ["Content-Type", "Cache-Control"])
        let written = Self.answer(verdict)
        #expect(written.head.headers["Content-Length"] == ["7"])
    }

    @Test func anEndpointsRequestCarriesTheCheckedTargetAndTheHeaders() throws {
        var head = try UpstreamHeadTests.parse(
            "POST /oauth2/token?x=1 HTTP/1.1\r\nHost: id.example\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                + "Content-Length: 3\r\n\r\n"
        )
        try head.check(isHTTP2: false)
        let request = HTTPRequest(localRequest: head, scheme: "https")
        #expect(request.method == .post)
        #expect(request.scheme == "https")
        #expect(request.authority == "id.example")
        #expect(request.path == "/oauth2/token?x=1")
        #expect(request.headerFields[.contentType] == "application/x-www-form-urlencoded")
    }

    @Test func anAbsoluteFormTargetsAuthorityReplacesHost() throws {
        var head = try UpstreamHeadTests.parse("GET http://id.example/jwks HTTP/1.1\r\nHost: id.example\r\n\r\n")
        try head.check(isHTTP2: false)
        let request = HTTPRequest(localRequest: head, scheme: "http")
        #expect(request.authority == "id.example")
        #expect(request.path == "/jwks")
    }

    @Test func timeoutsAreCheckedAQuarterOfTheShortestApart() {
        let timers = ConnectionTimers(header: 10, idle: 2, upstreamResponse: 60)
        #expect(timers.header == .seconds(10))
        #expect(timers.idle == .seconds(2))
        #expect(timers.checkInterval(isStream: false) == .milliseconds(500))
        // An HTTP/2 stream has only the upstream's timeout, and the check runs at most once a second.
        #expect(timers.checkInterval(isStream: true) == .seconds(1))
        #expect(
            ConnectionTimers(header: 0.1, idle: 5, upstreamResponse: 5).checkInterval(isStream: false)
                == .milliseconds(50)
        )
        #expect(ConnectionTimers(header: 10, idle: 10, upstreamResponse: nil).upstreamResponse == .seconds(60))
    }
}
