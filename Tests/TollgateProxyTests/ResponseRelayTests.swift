import NIOHTTP1
import Testing

@testable import TollgateProxy

/// `ResponseRelay` without sockets: which upstream answer heads reach the client, edited how,
/// and whether the upstream connection may be reused after them.
@Suite struct ResponseRelayTests {
    static func head(
        _ status: HTTPResponseStatus,
        _ headers: [(String, String)] = [],
        version: HTTPVersion = .http1_1
    ) -> HTTPResponseHead {
        HTTPResponseHead(version: version, status: status, headers: HTTPHeaders(headers))
    }

    static func relay(
        _ head: HTTPResponseHead,
        fromStream: Bool = false,
        upgrade: [String]? = nil,
        keepAlive: Bool = true,
        http1: Bool = true
    ) -> ResponseRelay.HeadAction {
        ResponseRelay.head(
            head,
            fromStream: fromStream,
            upgradeProtocols: upgrade,
            clientKeepAlive: keepAlive,
            toHTTP1Client: http1
        )
    }

    @Test func anOrdinaryAnswerIsRelayedWithoutItsHopByHopFields() {
        let action = Self.relay(
            Self.head(
                .ok,
                [("Content-Length", "2"), ("Connection", "keep-alive, X-Hop"), ("X-Hop", "1"), ("X-End", "2")]
            )
        )
        guard case .relay(let relayed, let switches, let reusable) = action else {
            Issue.record("\(action)")
            return
        }
        #expect(relayed.headers.map(\.name) == ["Content-Length", "X-End"])
        #expect(!switches)
        #expect(reusable)
    }

    @Test func aClientConnectionThatClosesGetsConnectionClose() {
        guard case .relay(let relayed, _, _) = Self.relay(Self.head(.ok), keepAlive: false) else {
            Issue.record("not relayed")
            return
        }
        #expect(relayed.headers["connection"] == ["close"])
        guard case .relay(let overHTTP2, _, _) = Self.relay(Self.head(.ok), keepAlive: false, http1: false) else {
            Issue.record("not relayed")
            return
        }
        #expect(overHTTP2.headers["connection"].isEmpty, "HTTP/2 has no Connection field")
    }

    @Test func anUpstreamThatClosesAfterItsAnswerIsNotReused() {
        for head in [Self.head(.ok, [("Connection", "close")]), Self.head(.ok, version: .http1_0)] {
            guard case .relay(_, _, let reusable) = Self.relay(head) else {
                Issue.record("not relayed")
                continue
            }
            #expect(!reusable)
        }
        guard case .relay(_, _, let askedToUpgrade) = Self.relay(Self.head(.ok), upgrade: ["websocket"]) else {
            Issue.record("not relayed")
            return
        }
        #expect(!askedToUpgrade, "an upgrade asked for and not made leaves the upstream's parser in doubt")
    }

    @Test func aSwitchToTheProtocolAskedForIsRelayed() {
        let head = Self.head(.switchingProtocols, [("Upgrade", "WebSocket"), ("Connection", "Upgrade")])
        guard case .relay(let relayed, let switches, _) = Self.relay(head, upgrade: ["websocket"]) else {
            Issue.record("not relayed")
            return
        }
        #expect(switches)
        #expect(relayed.headers["upgrade"] == ["WebSocket"])
        #expect(relayed.headers["connection"] == ["upgrade"])
    }

    @Test func aSwitchNobodyAskedForOrToAnotherProtocolIsRefused() {
        let h2c = Self.head(.switchingProtocols, [("Upgrade", "h2c"), ("Connection", "Upgrade")])
        #expect(Self.relay(h2c) == .refuse(reason: "unrequested_upgrade"))
        #expect(Self.relay(h2c, upgrade: ["websocket"]) == .refuse(reason: "unrequested_upgrade"))
        let two = Self.head(.switchingProtocols, [("Upgrade", "websocket, h2c")])
        #expect(Self.relay(two, upgrade: ["websocket"]) == .refuse(reason: "unrequested_upgrade"))
    }

    @Test func aHeaderThatCannotBeSentIsRefused() {
        #expect(Self.relay(Self.head(.ok, [("X-A", "a\r\nX-B: b")])) == .refuse(reason: "invalid_response_header"))
    }

    @Test func anH2cStreamsFramingIsCheckedHere() {
        let head = Self.head(.ok, [("Content-Length", "2"), ("Content-Length", "3")])
        #expect(Self.relay(head, fromStream: true) == .refuse(reason: "repeated_content_length"))
    }

    @Test func aContinueIsSkipped() {
        #expect(Self.relay(Self.head(.continue)) == .skip)
    }
}
