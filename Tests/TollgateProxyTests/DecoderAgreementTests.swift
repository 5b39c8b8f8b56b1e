import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import TollgateProxy

/// `CheckedRequestHead.decoderStops` must say exactly when the decoder stops after a request:
/// if it said no when the decoder stops, the connection would hang; if it said yes when the
/// decoder goes on, requests would be read from a decoder that was about to be replaced.
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

    /// How many request heads the proxy's decoder delivers for `first` followed by a plain request.
    static func headsDecoded(_ first: String) throws -> (Int, RequestHead?) {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            HTTP1RequestDecoder(limits: .init(maximumHeadBytes: 4096, maximumTrailerBytes: 1024))
        )
        let bytes = "GET / HTTP/1.1\r\nHost: a\r\n\(first)\r\nGET /second HTTP/1.1\r\nHost: a\r\n\r\n"
        try channel.writeInbound(ByteBuffer(string: bytes))
        var count = 0
        var firstHead: RequestHead?
        while let part = try channel.readInbound(as: RequestPart.self) {
            if case .head(let head) = part {
                count += 1
                if firstHead == nil { firstHead = head }
            }
        }
        _ = try? channel.finish()
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
