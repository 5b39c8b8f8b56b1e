import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing
import TollgateCore

@testable import TollgateProxy

/// The request head as an index over the received bytes, and the upstream head written from it
/// by copying the kept field lines: what is copied byte for byte, what is removed, what is added,
/// and that a head from HTTP/2 (given as `HTTPHeaders`) comes out the same.
@Suite struct UpstreamHeadTests {
    static func parse(_ text: String) throws -> RequestHead {
        var parser = HTTP1RequestParser(limits: .init(maximumHeadBytes: 8192, maximumTrailerBytes: 1024))
        var buffer = ByteBuffer(string: text)
        guard case .part(.head(let head)) = try parser.next(&buffer) else {
            Issue.record("no head in \(text.debugDescription)")
            throw HTTP1ParseError(.malformed, "no head")
        }
        return head
    }

    static func withSnapshot(_ body: (ProxySnapshot) throws -> Void) throws {
        let configuration = try ConfigurationLoader.parse(
            yaml: ProxyEnvironment.yaml(upstreamPort: 1, jwksPort: 1, introspectionPort: 1),
            file: "test.yaml",
            baseDirectory: "/tmp",
            environment: ["TOLLGATE_TEST_INTROSPECTION_SECRET": "s"]
        )
        let runtime = try ProxyRuntime(
            configuration: configuration,
            group: .singletonMultiThreadedEventLoopGroup,
            client: HTTPClient.shared
        )
        defer { runtime.shutdown() }
        try body(runtime.snapshot)
    }

    /// The upstream head for `head`, as text.
    static func upstream(
        _ head: RequestHead,
        _ snapshot: ProxySnapshot,
        isHTTP2: Bool = false,
        trusted: Bool = false,
        isUpgrade: Bool = false
    ) throws -> (text: String, framing: UpstreamRequestHead.Framing) {
        var checked = head
        try checked.check(isHTTP2: isHTTP2)
        let pipeline = RequestPipeline(
            snapshot: snapshot,
            isHTTP2: isHTTP2,
            scheme: "https",
            peer: nil,
            peerAddress: "192.0.2.7"
        )
        let result = pipeline.upstreamHead(
            from: checked,
            basePath: "/base",
            requestTarget: checked.target,
            token: nil,
            connection: ClientConnection(peerAddress: "192.0.2.7", peerTrusted: trusted, scheme: "https"),
            requestID: "rid",
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            isUpgrade: isUpgrade
        )
        let built = try result.get()
        return (String(buffer: built.bytes), built.framing)
    }

    static let added =
        "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: https\r\nX-Request-Id: rid\r\n"
        + "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n"

    @Test func theIndexPointsAtEachNameAndTrimmedValueInTheReceivedBytes() throws {
        let head = try Self.parse(
            "POST /a HTTP/1.1\r\nHost: api.test\r\nX-Pad: \t v w \t\r\nX-Empty:\r\nContent-Length: 2\r\n\r\nhi"
        )
        #expect(head.count == 4)
        #expect((0..<head.count).map { head.name(at: $0) } == ["Host", "X-Pad", "X-Empty", "Content-Length"])
        #expect((0..<head.count).map { head.value(at: $0) } == ["api.test", "v w", "", "2"])
        #expect(head.first(name: "x-pad") == "v w")
        #expect(head.first(name: "x-missing") == nil)
        #expect(head.contains(name: "content-length"))
        #expect(head.framing == .length(2))
        #expect(head.hasBody)
        #expect(head.isKeepAlive)
        // The head's bytes are the received ones: the request line, every line, the empty line.
        #expect(
            String(buffer: head.bytes)
                == "POST /a HTTP/1.1\r\nHost: api.test\r\nX-Pad: \t v w \t\r\nX-Empty:\r\nContent-Length: 2\r\n\r\n"
        )
    }

    @Test func keepAliveFollowsTheVersionAndConnectionOptions() throws {
        #expect(try Self.parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n").isKeepAlive)
        #expect(try !Self.parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: x, Close\r\n\r\n").isKeepAlive)
        #expect(try !Self.parse("GET / HTTP/1.0\r\n\r\n").isKeepAlive)
        #expect(try Self.parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").isKeepAlive)
        // NIO agrees on each.
        for text in ["GET / HTTP/1.1\r\nConnection: close\r\n\r\n", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"]
        {
            let head = try Self.parse(text)
            #expect(head.isKeepAlive == head.nioHead.isKeepAlive)
        }
    }

    @Test func keptLinesAreCopiedAsReceivedAndTollgatesOwnAreAdded() throws {
        try Self.withSnapshot { snapshot in
            let head = try Self.parse(
                "GET /orders/1?x=1 HTTP/1.1\r\nhost: api.test\r\nAccept:  */*\r\nuser-agent: t/1\r\n\r\n"
            )
            let (text, framing) = try Self.upstream(head, snapshot)
            #expect(
                text
                    == "GET /base/orders/1?x=1 HTTP/1.1\r\nhost: api.test\r\nAccept:  */*\r\nuser-agent: t/1\r\n"
                    + "X-Forwarded-Host: api.test\r\n" + Self.added
            )
            #expect(framing == .none)
        }
    }

    @Test func hopByHopSpoofedAndConnectionNamedHeadersAreRemovedInEverySpelling() throws {
        try Self.withSnapshot { snapshot in
            let head = try Self.parse(
                "GET /orders/1 HTTP/1.1\r\nHost: api.test\r\nConnection: keep-alive, X-Secret\r\n"
                    + "Keep-Alive: 5\r\nX-Secret: s\r\nx-auth-subject: forged\r\nX_Auth_Scope: forged\r\n"
                    + "X-Forwarded-For: 10.0.0.1\r\nX-Real-IP: 10.0.0.1\r\nX-Request-Id: theirs\r\n"
                    + "Proxy-Authorization: Basic x\r\nX-HTTP-Method-Override: DELETE\r\nTE: gzip\r\n"
                    + "Upgrade: websocket\r\nAuthorization: Bearer t\r\nX-Kept: 1\r\n\r\n"
            )
            let (text, _) = try Self.upstream(head, snapshot)
            #expect(
                text
                    == "GET /base/orders/1 HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer t\r\nX-Kept: 1\r\n"
                    + "X-Forwarded-Host: api.test\r\n" + Self.added
            )
        }
    }

    @Test func aTrustedPeersForwardingHeadersAreExtended() throws {
        try Self.withSnapshot { snapshot in
            let head = try Self.parse(
                "GET /orders/1 HTTP/1.1\r\nHost: api.test\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\n"
                    + "X-Forwarded-Proto: http\r\nX-Forwarded-Host: public.test\r\nX-Real-IP: 10.0.0.1\r\n\r\n"
            )
            let (text, _) = try Self.upstream(head, snapshot, trusted: true)
            #expect(
                text
                    == "GET /base/orders/1 HTTP/1.1\r\nHost: api.test\r\nX-Real-IP: 10.0.0.1\r\n"
                    + "X-Forwarded-Host: public.test\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2, 192.0.2.7\r\n"
                    + "X-Forwarded-Proto: http\r\nX-Request-Id: rid\r\n"
                    + "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n"
            )
        }
    }

    /// The scheme's default port names the same origin as no port (RFC 3986 §6.2.3); any other
    /// port, or the other scheme's default, is another host.
    @Test(arguments: [
        ("http://a/x", "a:80", true), ("http://a:80/x", "a", true), ("http://a:/x", "a", true),
        ("https://a/x", "a:443", true), ("https://A:443/x", "a", true), ("http://[::1]:80/x", "[::1]", true),
        ("https://a/x", "a:80", false), ("http://a/x", "a:443", false), ("http://a:8080/x", "a", false),
        ("http://a/x", "a:8080", false), ("http://a:080/x", "a", false),
    ])
    func anAbsoluteFormTargetMayOmitOrSpellTheDefaultPort(target: String, host: String, accepted: Bool) throws {
        var head = try Self.parse("GET \(target) HTTP/1.1\r\nHost: \(host)\r\n\r\n")
        do {
            try head.check(isHTTP2: false)
            #expect(accepted, "\(target) with Host \(host)")
            #expect(head.target == "/x")
        } catch {
            #expect(!accepted, "\(target) with Host \(host): \(error)")
        }
    }

    @Test func anAbsoluteFormTargetsAuthorityReplacesHost() throws {
        try Self.withSnapshot { snapshot in
            let head = try Self.parse("GET http://API.test/orders/1 HTTP/1.1\r\nHost: api.test\r\nX-A: 1\r\n\r\n")
            let (text, _) = try Self.upstream(head, snapshot)
            #expect(
                text
                    == "GET /base/orders/1 HTTP/1.1\r\nX-A: 1\r\nHost: API.test\r\nX-Forwarded-Host: API.test\r\n"
                    + Self.added
            )
        }
    }

    @Test func framingLinesGoAsTheHeadStatesThem() throws {
        try Self.withSnapshot { snapshot in
            let sized = try Self.upstream(
                Self.parse("PUT /orders/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n"),
                snapshot
            )
            #expect(sized.text.contains("\r\nContent-Length: 3\r\n"))
            #expect(sized.framing == .length)
            let chunked = try Self.upstream(
                Self.parse("POST /orders HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n\r\n"),
                snapshot
            )
            #expect(chunked.text.contains("\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n"))
            #expect(chunked.framing == .chunked)
            // A POST stating no body: sent chunked (an HTTP/2 client's POST states none).
            let unframed = try Self.upstream(Self.parse("POST /orders HTTP/1.1\r\nHost: a\r\n\r\n"), snapshot)
            #expect(unframed.text.contains("\r\nTransfer-Encoding: chunked\r\n"))
            #expect(unframed.framing == .chunked)
        }
    }

    @Test func anUpgradeKeepsUpgradeAndNamesItInConnection() throws {
        try Self.withSnapshot { snapshot in
            let head = try Self.parse(
                "GET /orders/ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                    + "Sec-WebSocket-Key: k\r\n\r\n"
            )
            let (text, _) = try Self.upstream(head, snapshot, isUpgrade: true)
            #expect(
                text.hasPrefix(
                    "GET /base/orders/ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n"
                        + "X-Forwarded-Host: a\r\nConnection: upgrade\r\n"
                )
            )
        }
    }

    /// An HTTP/2 request's head (NIO's `HTTPHeaders`) is written out once and then takes the
    /// same path: the same upstream head as the same fields received over HTTP/1.1.
    @Test func aHeadFromHTTP2GivesTheSameUpstreamHead() throws {
        try Self.withSnapshot { snapshot in
            let text =
                "POST /orders HTTP/1.1\r\nHost: api.test\r\nContent-Length: 3\r\nX-Auth-Subject: forged\r\n"
                + "Accept: */*\r\n\r\n"
            let received = try Self.parse(text)
            let fromHTTP2 = RequestHead(received.nioHead)
            #expect(fromHTTP2 == received)
            #expect(fromHTTP2.framing == .length(3))
            #expect(try Self.upstream(fromHTTP2, snapshot, isHTTP2: true) == Self.upstream(received, snapshot))
        }
    }

    /// For an HTTP/2 upstream the written head is read back into NIO's type.
    @Test func theUpstreamHeadReadsBackForAnHTTP2Upstream() throws {
        try Self.withSnapshot { snapshot in
            var head = try Self.parse("GET /orders/1 HTTP/1.1\r\nHost: api.test\r\nAccept: */*\r\n\r\n")
            try head.check(isHTTP2: false)
            let pipeline = RequestPipeline(
                snapshot: snapshot,
                isHTTP2: false,
                scheme: "http",
                peer: nil,
                peerAddress: "192.0.2.7"
            )
            let built = try pipeline.upstreamHead(
                from: head,
                requestTarget: head.target,
                token: nil,
                connection: ClientConnection(peerAddress: "192.0.2.7", peerTrusted: false, scheme: "http"),
                requestID: "rid",
                traceparent: "t",
                isUpgrade: false
            ).get()
            let nio = try built.nioHead()
            #expect(nio.method == .GET)
            #expect(nio.uri == "/orders/1")
            #expect(nio.headers["accept"] == ["*/*"])
            #expect(nio.headers["x-request-id"] == ["rid"])
        }
    }
}
