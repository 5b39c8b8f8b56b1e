import Foundation
import NIOCore
import Testing
import TollgateTestSupport

@testable import TollgateProxy

/// RFC 9112 framing: the hostile requests of the parser's table (sent to a route that needs no
/// token, followed by a smuggled request) and the hostile upstream answers. Every case runs in
/// process (`ExchangeTests`); here a few of each go through the real listener and a real upstream
/// that records every byte, to show the sockets behave as the in-process exchange does.
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

    /// The cases that also cross real sockets.
    static let overSockets = [
        "both Content-Length and Transfer-Encoding", "a chunk size that is not hexadecimal",
        "a head larger than the limit",
    ]

    @Test(arguments: hostileRequests.filter { overSockets.contains($0.0) })
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

    @Test(arguments: hostileAnswers.prefix(2))
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
