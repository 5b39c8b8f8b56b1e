import Foundation
import NIOCore
import NIOEmbedded
import Testing

@testable import TollgateProxy

/// The proxied exchange driven in process (`ExchangeHarness`): hostile requests and hostile
/// answers, upgrades, keep-alive and retries, early answers and timeouts, each step checked
/// between the client's bytes and the upstream's. The end-to-end suites keep one case of each
/// kind over real sockets.
@Suite struct ExchangeTests {
    static let smuggled = StrictParsingTests.smuggled
    static let good = StrictParsingTests.good
    static let healthz = "GET /healthz HTTP/1.1\r\nHost: api.test\r\n\r\n"
    static let healthzAndClose = "GET /healthz HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n"

    static func echoing(extra: String = "", _ body: (ExchangeHarness) throws -> Void) throws {
        try ExchangeHarness.with(extra: extra) { harness in
            harness.upstream.responder = ScriptedUpstream.echo
            try body(harness)
        }
    }

    // MARK: - Hostile requests

    @Test(arguments: StrictParsingTests.hostileRequests)
    func aHostileRequestIsRefusedWithACloseAndNeverReachesTheUpstream(_ name: String, _ text: String) throws {
        try Self.echoing { harness in
            harness.send(text + Self.smuggled)
            let expected = name == "a head larger than the limit" ? 431 : 400
            #expect(harness.statuses == [expected], "\(name): \(harness.clientReceived.prefix(300))")
            #expect(harness.clientReceived.lowercased().contains("connection: close"), "\(name)")
            #expect(!harness.clientIsOpen, "\(name)")
            #expect(!harness.upstream.allReceived.contains("smuggled"), "\(name)")
            if !name.contains("chunk") && !name.contains("trailer") {
                // Refused in the head: not a byte went on, no connection was opened.
                #expect(harness.upstream.connections.isEmpty, "\(name)")
            } else {
                // Refused in the body: a connection the head went out on is closed; one that opened
                // after the refusal went unused into the pool.
                for index in harness.upstream.connections.indices {
                    #expect(
                        !harness.upstream.isOpen(index) || harness.upstream.received(on: index).isEmpty,
                        "\(name)"
                    )
                }
            }
        }
    }

    @Test(arguments: [
        ("two Host lines", "Host: api.test\r\nHost: evil.example\r\n"),
        ("a blank in Host", "Host: a b.example\r\n"),
        ("a path in Host", "Host: evil.example/admin@x\r\n"),
        ("userinfo in Host", "Host: user@evil.example\r\n"),
        ("no Host", ""),
    ])
    func badHostIsA400AndNothingReachesTheUpstream(_ label: String, _ host: String) throws {
        try Self.echoing { harness in
            harness.send("GET /healthz HTTP/1.1\r\n\(host)Connection: close\r\n\r\n")
            #expect(harness.statuses == [400], "\(label): \(harness.clientReceived.prefix(300))")
            #expect(harness.upstream.connections.isEmpty, "\(label)")
        }
    }

    @Test func http10WithTransferEncodingIsAnsweredThenClosed() throws {
        try Self.echoing { harness in
            harness.send(
                "POST /healthz HTTP/1.0\r\nHost: api.test\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "0\r\n\r\n" + Self.smuggled
            )
            #expect(harness.statuses == [400])
            #expect(!harness.clientIsOpen)
            #expect(!harness.upstream.allReceived.contains("smuggled"))
        }
    }

    @Test func connectIsRefusedAndNothingAfterItIsProcessed() throws {
        try Self.echoing { harness in
            harness.send("CONNECT api.test:443 HTTP/1.1\r\nHost: api.test:443\r\n\r\n" + Self.smuggled)
            #expect(harness.statuses == [400])
            #expect(!harness.clientIsOpen)
            #expect(harness.upstream.connections.isEmpty)
        }
    }

    /// RFC 9112 §9.6: a request that closes the connection is the last one processed, even when
    /// the client sent more in the same packet.
    @Test func nothingSentAfterARequestThatClosesTheConnectionIsProcessed() throws {
        try Self.echoing { harness in
            harness.send(Self.healthzAndClose + Self.smuggled)
            #expect(harness.statuses == [200])
            #expect(harness.upstream.targets == ["/healthz"])
            #expect(!harness.clientIsOpen)
        }
    }

    @Test func badBytesAfterACompleteRequestLetItsAnswerFinish() throws {
        try ExchangeHarness.with { harness in
            harness.send(Self.healthz + "GET /x HTTP/1.1\r\nBad Header\u{1}: x\r\n\r\n")
            #expect(harness.upstream.targets == ["/healthz"])
            #expect(harness.statuses.isEmpty, "the request already went upstream: its answer comes first")
            harness.answer(Self.good)
            #expect(harness.statuses == [200])
            #expect(!harness.clientIsOpen)
        }
    }

    @Test func aChunkFramingErrorAfterTheHeadIsA400AndTheUpstreamConnectionIsCut() throws {
        try ExchangeHarness.with { harness in
            harness.send("POST /healthz HTTP/1.1\r\nHost: api.test\r\nTransfer-Encoding: chunked\r\n\r\n")
            #expect(harness.upstream.heads.count == 1)
            harness.send("5g\r\nhello\r\n0\r\n\r\n")
            #expect(harness.statuses == [400])
            #expect(!harness.upstream.isOpen(0))
            #expect(!harness.clientIsOpen)
        }
    }

    // MARK: - What the upstream sees

    @Test func absoluteFormIsAcceptedAndItsNormalisedPathForwarded() throws {
        try Self.echoing { harness in
            harness.send(
                "GET http://API.example/orders/../healthz?x=1 HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n\r\n"
            )
            #expect(harness.statuses == [200])
            let head = try #require(harness.upstream.heads.first)
            #expect(head.hasPrefix("GET /healthz?x=1 HTTP/1.1\r\n"))
            #expect(
                head.components(separatedBy: "\r\n").filter { $0.lowercased().hasPrefix("host:") } == [
                    "Host: API.example"
                ]
            )
        }
    }

    @Test func absoluteFormStillNeedsTheRoutesToken() throws {
        try Self.echoing { harness in
            harness.send(
                "GET http://api.example/admin/users HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n\r\n"
            )
            #expect(harness.statuses == [401])
            #expect(harness.upstream.connections.isEmpty)
        }
    }

    @Test func methodOverrideAndURLRewriteHeadersAreRemoved() throws {
        try Self.echoing { harness in
            harness.send(
                "GET /healthz HTTP/1.1\r\nHost: api.test\r\nX-HTTP-Method-Override: DELETE\r\nX-HTTP-Method: PUT\r\n"
                    + "X-Method-Override: PATCH\r\nX-Original-URL: /admin\r\nX-Rewrite-URL: /admin\r\nConnection: close\r\n\r\n"
            )
            #expect(harness.statuses == [200])
            let upstream = harness.upstream.allReceived.lowercased()
            for name in [
                "x-http-method-override", "x-http-method", "x-method-override", "x-original-url", "x-rewrite-url",
            ] {
                #expect(!upstream.contains(name + ":"), "\(name)")
            }
        }
    }

    @Test func underscoreSpellingsOfOverrideAndForwardingHeadersAreRemovedToo() throws {
        let extra = "server:\n  access_log: false\n  trusted_proxies: []"
        try ExchangeHarness.with(extra: extra, replaceServer: true) { harness in
            harness.upstream.responder = ScriptedUpstream.echo
            harness.send(
                "GET /healthz HTTP/1.1\r\nHost: api.test\r\nX_HTTP_Method_Override: DELETE\r\nX_Original_URL: /admin\r\n"
                    + "X_Forwarded_For: 10.9.9.9\r\nX-Forwarded-Prefix: /admin\r\nConnection: close\r\n\r\n"
            )
            #expect(harness.statuses == [200])
            let upstream = harness.upstream.allReceived
            #expect(!upstream.contains("DELETE"))
            #expect(!upstream.contains("/admin"))
            #expect(!upstream.contains("10.9.9.9"))
        }
    }

    @Test func aPublicRouteStripsSpoofedClaimHeaders() throws {
        try Self.echoing { harness in
            harness.send(
                "GET /healthz HTTP/1.1\r\nHost: api.test\r\nX-Auth-Subject: admin\r\nx_auth_scope: all\r\n"
                    + "X-Auth-Claims: e30\r\nConnection: close\r\n\r\n"
            )
            #expect(harness.statuses == [200])
            let upstream = harness.upstream.allReceived.lowercased()
            #expect(!upstream.contains("x-auth-subject"))
            #expect(!upstream.contains("x_auth_scope"))
            #expect(!upstream.contains("x-auth-claims"))
        }
    }

    @Test func requestTrailersReachTheUpstreamOnlyForATrailersRequestAndStripped() throws {
        try ExchangeHarness.with { harness in
            harness.send(
                "POST /healthz HTTP/1.1\r\nHost: api.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "5\r\nhello\r\n0\r\nX-Auth-Subject: forged\r\nX-Note: dropped\r\n\r\n"
            )
            harness.answer(Self.good)
            harness.send(
                "POST /healthz HTTP/1.1\r\nHost: api.test\r\nTE: trailers\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "2\r\nhi\r\n0\r\ngrpc-status: 0\r\nX-Auth-Subject: forged\r\n\r\n"
            )
            harness.answer(Self.good)
            #expect(harness.statuses == [200, 200])
            let upstream = harness.upstream.allReceived
            #expect(upstream.contains("hello") && upstream.contains("hi"))
            #expect(!upstream.contains("forged"))
            #expect(!upstream.contains("X-Note"))
            #expect(upstream.contains("grpc-status: 0"))
        }
    }

    /// NIO's request encoder dropped a TRACE's Content-Length and wrote its body raw, so a request
    /// hidden in the body reached the upstream as one of its own.
    @Test func aTRACEBodyReachesTheUpstreamFramed() throws {
        try ExchangeHarness.with { harness in
            harness.send(
                "TRACE /healthz HTTP/1.1\r\nHost: api.test\r\nContent-Length: \(Self.smuggled.utf8.count)\r\n"
                    + "Connection: close\r\n\r\n" + Self.smuggled
            )
            let received = harness.upstream.received(on: 0)
            #expect(received.contains("Content-Length: \(Self.smuggled.utf8.count)\r\n"))
            #expect(received.hasSuffix("\r\n\r\n" + Self.smuggled))
            harness.answer(Self.good)
            #expect(harness.statuses == [200])
        }
    }

    // MARK: - Hostile answers

    @Test(arguments: StrictParsingTests.hostileAnswers)
    func aHostileUpstreamAnswerIsA502AndItsConnectionIsNeverReused(_ name: String, _ response: String) throws {
        try ExchangeHarness.with { harness in
            harness.send(Self.healthz)
            #expect(harness.upstream.heads.count == 1, "\(name)")
            harness.answer(response)
            #expect(harness.statuses == [502], "\(name): \(harness.clientReceived.prefix(300))")
            #expect(!harness.upstream.isOpen(0), "\(name)")
            #expect(!harness.clientIsOpen, "\(name)")
            try harness.reconnect()
            harness.send(Self.healthzAndClose)
            #expect(harness.upstream.connections.count == 2, "\(name): the connection that sent it was used again")
            harness.answer(Self.good)
            #expect(harness.statuses == [200], "\(name)")
        }
    }

    @Test func anUpstreamHeaderThatCannotBeSentIsA502() throws {
        try ExchangeHarness.with { harness in
            harness.send(Self.healthz)
            harness.answer("HTTP/1.1 200 OK\r\nX-A: \u{7F}\r\nContent-Length: 2\r\n\r\nok")
            #expect(harness.statuses == [502])
        }
    }

    @Test func hopByHopHeadersOfTheAnswerDoNotReachTheClient() throws {
        try ExchangeHarness.with { harness in
            harness.send(Self.healthz)
            harness.answer(
                "HTTP/1.1 200 OK\r\nConnection: X-Secret, keep-alive\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\n"
                    + "Proxy-Authenticate: Basic\r\nTrailer: X-T\r\nUpgrade: h2c\r\nX-Kept: k\r\nContent-Length: 2\r\n\r\nok"
            )
            let text = harness.received()
            #expect(FramingTests.statuses(in: text) == [200])
            let lower = text.lowercased()
            for name in ["x-secret", "keep-alive:", "proxy-authenticate", "trailer:", "upgrade:"] {
                #expect(!lower.contains(name), "\(name)")
            }
            #expect(lower.contains("x-kept: k"))
            #expect(harness.clientIsOpen)
        }
    }

    static let chunkedAnswer =
        "HTTP/1.1 200 OK\r\nx-Odd-Case:  spaced\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
        + "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"

    /// The lines kept are the upstream's bytes; Tollgate's own follow.
    @Test func theUpstreamsFieldLinesReachTheClientAsTheyWereSent() throws {
        try ExchangeHarness.with { harness in
            harness.send(Self.healthzAndClose)
            harness.answer(Self.chunkedAnswer)
            let answer = harness.received()
            #expect(
                answer.hasPrefix(
                    "HTTP/1.1 200 OK\r\nx-Odd-Case:  spaced\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
                ),
                "\(answer)"
            )
            #expect(answer.hasSuffix("\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), "\(answer)")
        }
    }

    @Test func aChunkedAnswerReachesAnHTTP10ClientUnchunkedEndedByTheClose() throws {
        try ExchangeHarness.with { harness in
            harness.send("GET /healthz HTTP/1.0\r\nHost: api.test\r\nConnection: keep-alive\r\n\r\n")
            harness.answer(Self.chunkedAnswer)
            let answer = harness.received()
            #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\nx-Odd-Case:  spaced\r\nConnection: close\r\n"), "\(answer)")
            #expect(!answer.lowercased().contains("transfer-encoding"), "\(answer)")
            #expect(answer.hasSuffix("\r\n\r\nabcde"), "\(answer)")
            #expect(!harness.clientIsOpen)
        }
    }

    // MARK: - Upgrades

    /// An upstream that accepts every upgrade it is asked for, h2c included, as a careless one would.
    static let acceptsAnyUpgrade: @Sendable (String) -> String = { head in
        let upgrade = head.components(separatedBy: "\r\n").first { $0.lowercased().hasPrefix("upgrade:") }
        if let upgrade {
            return "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\(upgrade)\r\n\r\n"
        }
        return ScriptedUpstream.echo(head)
    }

    @Test func anH2CUpgradeIsNeverForwardedSoNoTunnelOpens() throws {
        try ExchangeHarness.with { harness in
            harness.upstream.responder = Self.acceptsAnyUpgrade
            harness.send(
                "GET /healthz HTTP/1.1\r\nHost: api.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                    + "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
                    + "GET /admin/users HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n"
            )
            #expect(harness.statuses == [200, 401])
            let upstream = harness.upstream.allReceived.lowercased()
            #expect(!upstream.contains("upgrade: h2c"))
            #expect(!upstream.contains("http2-settings"))
            #expect(!upstream.contains("/admin"))
        }
    }

    @Test(arguments: [
        ("nobody asked", "Connection: Upgrade\r\nUpgrade: h2c\r\n"),
        (
            "WebSocket asked",
            "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        ),
    ])
    func aSwitchToAProtocolNotAskedForIsA502AndTheConnectionCloses(_ label: String, _ headers: String) throws {
        try ExchangeHarness.with { harness in
            harness.upstream.responder = { _ in
                "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
            }
            harness.send(
                "GET /healthz HTTP/1.1\r\nHost: api.test\r\n\(headers)\r\n"
                    + "GET /admin/users HTTP/1.1\r\nHost: api.test\r\n\r\n"
            )
            #expect(harness.statuses == [502], "\(label)")
            #expect(!harness.upstream.allReceived.contains("/admin"), "\(label)")
            #expect(!harness.clientIsOpen, "\(label)")
        }
    }

    @Test func anUpgradeTheRouteDoesNotAllowIsNotForwarded() throws {
        try ExchangeHarness.with { harness in
            harness.upstream.responder = Self.acceptsAnyUpgrade
            harness.send(
                "GET /healthz HTTP/1.1\r\nHost: api.test\r\nConnection: Upgrade\r\nUpgrade: raw-tcp\r\n\r\n"
                    + Self.healthzAndClose
            )
            #expect(harness.statuses == [200, 200])
            #expect(!harness.upstream.allReceived.lowercased().contains("upgrade: raw-tcp"))
        }
    }

    @Test func anUpgradeTheUpstreamIgnoresLeavesAnHTTPConnection() throws {
        try Self.echoing { harness in
            harness.send(
                "GET /healthz HTTP/1.1\r\nHost: api.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                    + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
                    + "GET /healthz?second HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n"
            )
            #expect(harness.statuses == [200, 200])
            #expect(harness.upstream.targets == ["/healthz", "/healthz?second"])
        }
    }

    @Test func aRefusedUpgradeRequestLeavesAnHTTPConnection() throws {
        try Self.echoing { harness in
            harness.send(
                "GET /orders/1 HTTP/1.1\r\nHost: api.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                    + Self.healthzAndClose
            )
            #expect(harness.statuses == [401, 200])
            #expect(harness.upstream.targets == ["/healthz"])
        }
    }

    @Test(arguments: [
        (
            "Proxy-Connection",
            "GET /healthz HTTP/1.1\r\nHost: api.test\r\nProxy-Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        ),
        ("an empty Upgrade", "GET /healthz HTTP/1.1\r\nHost: api.test\r\nConnection: Upgrade\r\nUpgrade: \r\n\r\n"),
        (
            "HTTP/1.0",
            "GET /healthz HTTP/1.0\r\nHost: api.test\r\nConnection: Upgrade, keep-alive\r\nUpgrade: websocket\r\n\r\n"
        ),
    ])
    func upgradeSpellingsTheDecoderStopsOnStillLeaveAnHTTPConnection(_ label: String, _ first: String) throws {
        try ExchangeHarness.with { harness in
            harness.upstream.responder = Self.acceptsAnyUpgrade
            harness.send(first + "GET /healthz?second HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n")
            #expect(harness.statuses == [200, 200], "\(label): \(harness.clientReceived.prefix(400))")
            #expect(!harness.upstream.allReceived.lowercased().contains("upgrade: websocket"), "\(label)")
        }
    }

    @Test func anAcceptedWebSocketUpgradeRelaysBytesBothWays() throws {
        try ExchangeHarness.with { harness in
            harness.send(
                "GET /healthz HTTP/1.1\r\nHost: api.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                    + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
            harness.answer(
                "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nfrom-upstream"
            )
            let text = harness.received()
            #expect(FramingTests.statuses(in: text) == [101])
            #expect(text.hasSuffix("from-upstream"))
            harness.send("raw-from-client GET /admin HTTP/1.1\r\n\r\n")
            #expect(harness.upstream.received(on: 0).hasSuffix("raw-from-client GET /admin HTTP/1.1\r\n\r\n"))
            #expect(harness.upstream.connections.count == 1)
        }
    }

    /// RFC 9112 §9.6: after an answer that closes the connection, bad bytes behind it get no
    /// answer of their own.
    @Test func badBytesAfterAClosingLocalAnswerGetNoSecondAnswer() throws {
        try ExchangeHarness.with { harness in
            harness.send("GET /admin/x HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\nGARBAGE\u{1}\r\n\r\n")
            #expect(harness.statuses == [401], "\(harness.clientReceived.prefix(400))")
            #expect(!harness.clientIsOpen)
        }
    }

    /// An early answer has gone out in full when bad bytes arrive in the rest of the body: the
    /// connection closes after it, not in the middle of it.
    @Test func badBytesInTheBodyAfterAnEarlyAnswerCloseAfterTheAnswer() throws {
        try ExchangeHarness.with { harness in
            harness.send("POST /healthz HTTP/1.1\r\nHost: api.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
            harness.answer("HTTP/1.1 413 Too Large\r\nContent-Length: 4\r\n\r\nbig!")
            harness.send("zz\r\n")
            #expect(harness.statuses == [413])
            #expect(harness.clientReceived.hasSuffix("\r\n\r\nbig!"))
            #expect(!harness.clientIsOpen)
        }
    }

    /// Bytes the client sent right behind an upgrade request reach the upstream once the switch
    /// is relayed, without waiting for the client's next read.
    @Test func bytesBehindAnUpgradeRequestReachTheUpstreamWhenTheRelayStarts() throws {
        try ExchangeHarness.with { harness in
            harness.send(
                "GET /healthz HTTP/1.1\r\nHost: api.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                    + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\nearly-frame"
            )
            #expect(!harness.upstream.received(on: 0).contains("early-frame"), "held until the switch")
            harness.answer("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
            #expect(harness.upstream.received(on: 0).hasSuffix("early-frame"))
        }
    }

    // MARK: - Keep-alive, pipelining, retries

    @Test func pipelinedRequestsAreAnsweredInOrderOneUpstreamConnection() throws {
        try Self.echoing { harness in
            harness.send(
                "GET /healthz?1 HTTP/1.1\r\nHost: api.test\r\n\r\nGET /admin/x HTTP/1.1\r\nHost: api.test\r\n\r\n"
                    + "GET /healthz?3 HTTP/1.1\r\nHost: api.test\r\n\r\n"
            )
            #expect(harness.statuses == [200, 401, 200])
            #expect(harness.clientReceived.components(separatedBy: "/healthz?").count == 3)
            let first = try #require(harness.clientReceived.range(of: "/healthz?1"))
            let third = try #require(harness.clientReceived.range(of: "/healthz?3"))
            #expect(first.lowerBound < third.lowerBound)
            #expect(harness.upstream.connections.count == 1)
            #expect(harness.upstream.targets == ["/healthz?1", "/healthz?3"])
            #expect(harness.clientIsOpen)
        }
    }

    @Test func aPipelinedRequestWaitsForTheAnswerBeforeIt() throws {
        try ExchangeHarness.with { harness in
            harness.send(Self.healthz + "GET /healthz?second HTTP/1.1\r\nHost: api.test\r\n\r\n")
            #expect(harness.upstream.targets == ["/healthz"], "the second waits for the first's answer")
            harness.answer(Self.good)
            #expect(harness.upstream.targets == ["/healthz", "/healthz?second"])
            #expect(harness.upstream.connections.count == 1)
            harness.answer(Self.good)
            #expect(harness.statuses == [200, 200])
        }
    }

    @Test func anAnswerWithConnectionCloseIsNotReused() throws {
        try ExchangeHarness.with { harness in
            harness.send(Self.healthz)
            harness.answer("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
            #expect(harness.statuses == [200])
            #expect(harness.clientIsOpen, "the upstream's close is not the client's")
            harness.send(Self.healthz)
            #expect(harness.upstream.connections.count == 2)
            #expect(!harness.upstream.isOpen(0))
        }
    }

    @Test func aPooledConnectionTheUpstreamClosedIsRetriedOnceForAnIdempotentRequest() throws {
        try ExchangeHarness.with { harness in
            harness.send(Self.healthz)
            harness.answer(Self.good)
            harness.send("GET /healthz?again HTTP/1.1\r\nHost: api.test\r\n\r\n")
            #expect(harness.upstream.connections.count == 1, "the pooled connection is used")
            harness.upstream.close(0)
            harness.pump()
            #expect(harness.upstream.connections.count == 2, "retried on a new connection")
            #expect(harness.upstream.heads(on: 1).first?.hasPrefix("GET /healthz?again ") == true)
            harness.answer(Self.good)
            #expect(harness.statuses == [200, 200])
            // A second close is not retried again.
            harness.send("GET /healthz?third HTTP/1.1\r\nHost: api.test\r\n\r\n")
            harness.upstream.close(1)
            harness.pump()
            #expect(harness.upstream.connections.count == 3)
            harness.upstream.close(2)
            harness.pump()
            #expect(harness.statuses == [200, 200, 502])
            #expect(harness.upstream.connections.count == 3)
        }
    }

    @Test func aRequestWithABodyOrNotIdempotentIsNotRetried() throws {
        try ExchangeHarness.with { harness in
            harness.send(Self.healthz)
            harness.answer(Self.good)
            harness.send("POST /healthz HTTP/1.1\r\nHost: api.test\r\nContent-Length: 0\r\n\r\n")
            harness.upstream.close(0)
            harness.pump()
            #expect(harness.statuses == [200, 502])
            #expect(harness.upstream.connections.count == 1)
        }
    }

    @Test func theUpstreamClosingAfterTheHeadCutsTheClientToo() throws {
        try ExchangeHarness.with { harness in
            harness.send(Self.healthz)
            harness.answer("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
            harness.upstream.close(0)
            harness.pump()
            #expect(harness.statuses == [200])
            #expect(!harness.clientIsOpen)
        }
    }

    @Test func theUpstreamDownIsA502() throws {
        try ExchangeHarness.with { harness in
            harness.upstream.refusesConnections = true
            harness.send(Self.healthz)
            #expect(harness.statuses == [502])
            #expect(harness.clientIsOpen, "a bodiless request keeps its connection")
        }
    }

    @Test func anEarlyAnswerBeforeTheBodyEndedIsRelayedAndTheRestDropped() throws {
        try ExchangeHarness.with { harness in
            harness.send("POST /healthz HTTP/1.1\r\nHost: api.test\r\nContent-Length: 10\r\n\r\nabc")
            harness.answer("HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n")
            #expect(harness.statuses == [413])
            harness.send("defghij")
            harness.send(Self.healthzAndClose)
            #expect(harness.upstream.received(on: 0).hasSuffix("abc"), "nothing after the answer went upstream")
            harness.answer(Self.good)
            #expect(harness.statuses == [413, 200])
        }
    }

    @Test func answersToHEADCarryNoBodySoTheNextResponseIsIntact() throws {
        try ExchangeHarness.with { harness in
            harness.upstream.responder = { _ in "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" }
            harness.send(
                "HEAD /orders/1 HTTP/1.1\r\nHost: api.test\r\n\r\nHEAD /healthz HTTP/1.1\r\nHost: api.test\r\n\r\n"
            )
            #expect(harness.statuses == [403, 200])
            let heads = harness.clientReceived.components(separatedBy: "HTTP/1.1 ")
            try #require(heads.count == 3)
            #expect(heads[1].hasSuffix("\r\n\r\n"), "\(heads[1])")
            #expect(heads[2].hasSuffix("Content-Length: 5\r\n\r\n"), "\(heads[2])")
            #expect(harness.clientIsOpen)
        }
    }

    /// An HTTP/1.0 client keeps its connection only when the answer says `keep-alive` (RFC 9112
    /// §C.2.2): proxied and local answers both say it while the connection stays open.
    @Test func anHTTP10ClientThatAsksForKeepAliveIsToldItsConnectionStaysOpen() throws {
        try Self.echoing { harness in
            let keepAlive = "Host: api.test\r\nConnection: keep-alive\r\n\r\n"
            harness.send(
                "GET /healthz HTTP/1.0\r\n" + keepAlive + "GET /admin/users HTTP/1.0\r\n" + keepAlive
                    + "GET /healthz?last HTTP/1.0\r\nHost: api.test\r\n\r\n"
            )
            #expect(harness.statuses == [200, 401, 200])
            let heads = harness.clientReceived.components(separatedBy: "HTTP/1.1 ").dropFirst().map {
                $0.components(separatedBy: "\r\n\r\n")[0]
            }
            #expect(heads.prefix(2).allSatisfy { $0.contains("\r\nConnection: keep-alive") }, "\(heads)")
            #expect(heads.last?.contains("\r\nConnection: close") == true, "\(heads)")
            #expect(harness.upstream.targets == ["/healthz", "/healthz?last"])
            #expect(!harness.clientIsOpen)
        }
    }

    @Test func theClientGoingAwayMidExchangeClosesItsUpstreamConnection() throws {
        try ExchangeHarness.with { harness in
            harness.send(Self.healthz)
            #expect(harness.upstream.isOpen(0))
            harness.clientCloses()
            #expect(!harness.upstream.isOpen(0))
        }
    }

    @Test func aDrainingServerAnswersTheExchangeInProgressWithClose() throws {
        try ExchangeHarness.with { harness in
            harness.send(Self.healthz)
            harness.client.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
            harness.pump()
            #expect(harness.clientIsOpen)
            harness.answer(Self.good)
            #expect(harness.statuses == [200])
            #expect(harness.clientReceived.lowercased().contains("connection: close"))
            #expect(!harness.clientIsOpen)
        }
    }

    // MARK: - Timeouts, on the loop's clock

    @Test func anUpstreamSilentPastItsResponseTimeoutIs504AndItsConnectionClosed() throws {
        try ExchangeHarness.with { harness in
            harness.send(Self.healthz)
            harness.advance(by: .seconds(59))
            #expect(harness.statuses.isEmpty)
            harness.advance(by: .seconds(2))
            #expect(harness.statuses == [504], "the default response_timeout is 60 s")
            #expect(!harness.upstream.isOpen(0))
            #expect(!harness.clientIsOpen)
        }
    }

    @Test func anUpstreamThatStartedItsAnswerIsNotTimedOut() throws {
        try ExchangeHarness.with { harness in
            harness.send(Self.healthz)
            harness.answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n")
            harness.advance(by: .seconds(61))
            harness.answer("0\r\n\r\n")
            #expect(harness.statuses == [200])
            #expect(harness.clientReceived.hasSuffix("2\r\nok\r\n0\r\n\r\n"))
            #expect(harness.clientIsOpen)
        }
    }

    @Test func aClientThatDoesNotFinishItsHeadIsClosedAfterTheHeaderTimeout() throws {
        try ExchangeHarness.with(extra: "server:\n  access_log: false\n  header_timeout: 5s", replaceServer: true) {
            harness in
            harness.send("GET /healthz HTTP/1.1\r\nHost: api")
            harness.advance(by: .seconds(4))
            #expect(harness.clientIsOpen)
            harness.advance(by: .seconds(2))
            #expect(!harness.clientIsOpen)
            #expect(harness.statuses.isEmpty, "closed quietly")
            #expect(harness.upstream.connections.isEmpty)
        }
    }
}
