import Foundation
import NIOCore
import Testing
import TollgateTestSupport

@testable import TollgateProxy

/// RFC 9112 framing through the real listener: every hostile request of the parser's table (sent
/// to a route that needs no token, followed by a smuggled request) is answered 400 (431 for a head
/// too large) with a close, and the upstream, which records every byte, never receives a request;
/// every hostile upstream answer is a 502 and its connection is never reused.
@Suite("Strict HTTP/1.1 parsing", .serialized)
struct StrictParsingTests {
    static let smuggled = "GET /healthz?smuggled HTTP/1.1\r\nHost: api.test\r\n\r\n"

    /// The parser's hostile table aimed at the public `/healthz`, plus what only the pipeline sees.
    static let hostileRequests: [(String, String)] =
        HTTP1RequestParserTests.refused.map { name, text in
            var aimed = text.replacingOccurrences(of: "Host: a\r\n", with: "Host: api.test\r\n")
            if let range = aimed.range(of: " / HTTP") { aimed.replaceSubrange(range, with: " /healthz HTTP") }
            return (name, aimed)
        } + [
            (
                "an absolute-form target for another host",
                "GET http://other.test/healthz HTTP/1.1\r\nHost: api.test\r\n\r\n"
            ),
            (
                "an absolute-form target for another port",
                "GET http://api.test:8080/healthz HTTP/1.1\r\nHost: api.test\r\n\r\n"
            ),
            ("absolute form without Host", "GET http://other.test/healthz HTTP/1.0\r\n\r\n"),
            ("a second Host", "GET /healthz HTTP/1.1\r\nHost: api.test\r\nHost: other.test\r\n\r\n"),
            ("no Host in HTTP/1.1", "GET /healthz HTTP/1.1\r\n\r\n"),
            ("CONNECT", "CONNECT api.test:443 HTTP/1.1\r\nHost: api.test:443\r\n\r\n"),
            (
                "a head larger than the limit",
                "GET /healthz HTTP/1.1\r\nHost: api.test\r\nX-Big: \(String(repeating: "b", count: 64 * 1024))\r\n\r\n"
            ),
        ]

    @Test(arguments: hostileRequests)
    func aHostileRequestIsRefusedWithACloseAndNeverReachesTheUpstream(_ name: String, _ text: String) async throws {
        try await ProxyEnvironment.with { environment in
            let answer = try await FramingTests.exchange(environment, text + Self.smuggled)
            let expected = name == "a head larger than the limit" ? 431 : 400
            #expect(FramingTests.statuses(in: answer) == [expected], "\(name): \(answer.prefix(300))")
            #expect(answer.lowercased().contains("connection: close"), "\(name)")
            #expect(environment.upstream.requestCount == 0, "\(name) reached the upstream as a request")
            #expect(!environment.upstream.rawReceived.contains("smuggled"), "\(name)")
            if !name.contains("chunk") && !name.contains("trailer") {
                // Refused in the head: not a byte went on.
                #expect(environment.upstream.rawReceived.isEmpty, "\(name)")
            }
        }
    }

    static let good = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    static let hostileAnswers: [(String, String)] = [
        (
            "Content-Length and Transfer-Encoding",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        ),
        ("two differing Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 4\r\n\r\nokok"),
        ("two equal Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"),
        ("a Content-Length list", "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok"),
        ("a transfer coding before chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
        ("Transfer-Encoding in HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("obs-fold", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok"),
        ("a bare LF", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok"),
        ("NUL in a value", "HTTP/1.1 200 OK\r\nX-A: a\u{0}b\r\nContent-Length: 2\r\n\r\nok"),
        ("a status line that is not HTTP", "HTTP/9 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        ("Content_Length", "HTTP/1.1 200 OK\r\nContent_Length: 2\r\n\r\nok"),
        ("whitespace before a colon", "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok"),
        ("a status outside 100-599", "HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\nok"),
        ("a bare CR", "HTTP/1.1 200 OK\rX-A: b\r\nContent-Length: 2\r\n\r\nok"),
    ]

    @Test(arguments: hostileAnswers)
    func aHostileUpstreamAnswerIsA502AndItsConnectionIsNeverReused(_ name: String, _ response: String) async throws {
        let upstream = try await RawUpstream.start { number in number == 1 ? response : Self.good }
        defer { Task { try? await upstream.shutdown() } }
        try await ProxyEnvironment.with(upstreamPort: upstream.port) { environment in
            let first = try await FramingTests.exchange(
                environment,
                "GET /healthz HTTP/1.1\r\nHost: api.test\r\n\r\n"
            )
            #expect(FramingTests.statuses(in: first) == [502], "\(name): \(first.prefix(300))")
            let second = try await FramingTests.exchange(
                environment,
                "GET /healthz HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n"
            )
            #expect(FramingTests.statuses(in: second) == [200], "\(name): \(second.prefix(300))")
            #expect(upstream.connections == 2, "\(name): the connection that sent it was used again")
        }
    }
}

extension StrictParsingTests {
    /// NIO's request encoder dropped a TRACE's Content-Length and wrote its body raw, so a request
    /// hidden in the body reached the upstream as one of its own.
    @Test func aTRACEBodyReachesTheUpstreamFramedNotAsARequest() async throws {
        try await ProxyEnvironment.with { environment in
            let answer = try await FramingTests.exchange(
                environment,
                "TRACE /healthz HTTP/1.1\r\nHost: api.test\r\nContent-Length: \(Self.smuggled.utf8.count)\r\n"
                    + "Connection: close\r\n\r\n" + Self.smuggled
            )
            #expect(FramingTests.statuses(in: answer) == [200], "\(answer.prefix(300))")
            #expect(environment.upstream.requestCount == 1, "\(environment.upstream.rawReceived)")
            #expect(environment.upstream.rawReceived.contains("Content-Length: \(Self.smuggled.utf8.count)\r\n"))
        }
    }

    /// RFC 9112 §9.6: after an answer that closes the connection, what the client sent behind that
    /// request in the same packet is not processed.
    @Test func nothingSentAfterARequestThatClosesTheConnectionIsProcessed() async throws {
        try await ProxyEnvironment.with { environment in
            let answer = try await FramingTests.exchange(
                environment,
                "CONNECT api.test:443 HTTP/1.1\r\nHost: api.test:443\r\n\r\n" + Self.smuggled
            )
            #expect(FramingTests.statuses(in: answer) == [400], "\(answer.prefix(300))")
            #expect(environment.upstream.rawReceived.isEmpty)
            let closing = try await FramingTests.exchange(
                environment,
                "GET /healthz HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n" + Self.smuggled
            )
            #expect(FramingTests.statuses(in: closing) == [200], "\(closing.prefix(300))")
            #expect(!environment.upstream.rawReceived.contains("smuggled"))
        }
    }
}

/// The upstream's answer head as the client receives it, over real sockets: the lines kept are
/// the upstream's bytes, Tollgate's own follow, and a chunked body reaches an HTTP/1.0 client
/// unchunked, ended by the close.
extension StrictParsingTests {
    static let chunkedAnswer =
        "HTTP/1.1 200 OK\r\nx-Odd-Case:  spaced\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
        + "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"

    @Test func theUpstreamsFieldLinesReachTheClientAsTheyWereSent() async throws {
        let upstream = try await RawUpstream.start { _ in Self.chunkedAnswer }
        defer { Task { try? await upstream.shutdown() } }
        try await ProxyEnvironment.with(upstreamPort: upstream.port) { environment in
            let answer = try await FramingTests.exchange(
                environment,
                "GET /healthz HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n"
            )
            #expect(
                answer.hasPrefix(
                    "HTTP/1.1 200 OK\r\nx-Odd-Case:  spaced\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
                ),
                "\(answer)"
            )
            #expect(answer.hasSuffix("\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), "\(answer)")
        }
    }

    @Test func aChunkedAnswerReachesAnHTTP10ClientUnchunkedEndedByTheClose() async throws {
        let upstream = try await RawUpstream.start { _ in Self.chunkedAnswer }
        defer { Task { try? await upstream.shutdown() } }
        try await ProxyEnvironment.with(upstreamPort: upstream.port) { environment in
            let answer = try await FramingTests.exchange(
                environment,
                "GET /healthz HTTP/1.0\r\nHost: api.test\r\nConnection: keep-alive\r\n\r\n"
            )
            #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\nx-Odd-Case:  spaced\r\nConnection: close\r\n"), "\(answer)")
            #expect(!answer.lowercased().contains("transfer-encoding"), "\(answer)")
            #expect(answer.hasSuffix("\r\n\r\nabcde"), "\(answer)")
        }
    }
}
