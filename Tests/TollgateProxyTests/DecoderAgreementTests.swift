import NIOCore
import NIOHTTP1
import Testing

@testable import TollgateProxy

/// `CheckedRequestHead.decoderStops` must say exactly when the parser pauses after a request:
/// if it said no when the parser pauses, the connection would hang; if it said yes when the
/// parser goes on, requests would be read by a handler that was about to be replaced.
@Suite struct DecoderAgreementTests {
    static let heads: [String] = [
        "Connection: Upgrade\r\nUpgrade: websocket\r\n",
        "Connection: keep-alive, Upgrade\r\nUpgrade: h2c\r\n",
        "Connection: upgrade\r\nUpgrade: websocket, h2c\r\n",
        "Proxy-Connection: Upgrade\r\nUpgrade: websocket\r\n",
        "Connection: Upgrade\r\nUpgrade: \r\n",
        "Connection: Upgrade\r\nUpgrade: ,\r\n",
        "Connection: Upgrade\r\nUpgrade:    \r\n",
        "connection: UPGRADE\r\nupgrade: WebSocket\r\n",
        "Connection: Upgrade\r\nConnection: close\r\nUpgrade: websocket\r\n",
        "Connection: Upgrade\r\n",
        "Upgrade: websocket\r\n",
        "Connection: Upgraded\r\nUpgrade: websocket\r\n",
        "Connection: close-upgrade\r\nUpgrade: websocket\r\n",
        "Connection: x, upgrade ,y\r\nUpgrade: websocket\r\n",
        "",
    ]

    /// How many request heads the proxy's parser delivers for `first` followed by a plain request
    /// before it pauses (as `ProxyHandler` drives it).
    static func headsDecoded(_ first: String) throws -> (Int, RequestHead?) {
        var parser = HTTP1RequestParser(limits: .init(maximumHeadBytes: 4096, maximumTrailerBytes: 1024))
        var buffer = ByteBuffer(
            string: "GET / HTTP/1.1\r\nHost: a\r\n\(first)\r\nGET /second HTTP/1.1\r\nHost: a\r\n\r\n"
        )
        var count = 0
        var firstHead: RequestHead?
        while case .part(let part) = try parser.next(&buffer) {
            if case .head(let head) = part {
                count += 1
                if firstHead == nil { firstHead = head }
            }
        }
        return (count, firstHead)
    }

    @Test(arguments: heads)
    func decoderStopsAgreesWithTheDecoder(_ headers: String) throws {
        let (count, head) = try Self.headsDecoded(headers)
        let checked = try CheckedRequestHead.check(#require(head), isHTTP2: false).get()
        #expect(
            checked.decoderStops == (count == 1),
            "the decoder delivered \(count) heads for \(headers.debugDescription)"
        )
    }
}
