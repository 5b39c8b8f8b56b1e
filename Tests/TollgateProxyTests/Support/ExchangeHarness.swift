import AsyncHTTPClient
import Foundation
import NIOCore
import NIOEmbedded
import NIOPosix
import TollgateCore

@testable import TollgateProxy

/// One client connection in an `EmbeddedChannel`, with the pipeline `ProxyServer` builds, and its
/// upstream scripted on the same event loop: each upstream connection is an `EmbeddedChannel`
/// with the real `UpstreamHandler` and its codec, so only the sockets are missing. The test
/// writes the client's bytes, reads what reached the upstream, writes the upstream's answer and
/// reads what the client got, one step at a time, without a port, a thread or a timer.
///
/// Requests that need a token to be verified suspend on the verifier, off this loop: those stay
/// with the end-to-end tests (`ProxyEndToEndTests`).
final class ExchangeHarness {
    let loop = EmbeddedEventLoop()
    private(set) var client: EmbeddedChannel
    let upstream: ScriptedUpstream
    let runtime: ProxyRuntime
    /// Everything the client has been sent so far.
    private(set) var clientReceived = ""

    /// A harness on the end-to-end tests' configuration (`ProxyEnvironment.yaml`), with `extra`
    /// appended at the top level.
    init(extra: String = "", replaceServer: Bool = false) throws {
        let configuration = try ConfigurationLoader.parse(
            yaml: ProxyEnvironment.yaml(
                upstreamPort: 1,
                jwksPort: 1,
                introspectionPort: 1,
                extra: extra,
                replaceServer: replaceServer
            ),
            file: "test.yaml",
            baseDirectory: "/tmp",
            environment: ["TOLLGATE_TEST_INTROSPECTION_SECRET": "s"]
        )
        runtime = try ProxyRuntime(
            configuration: configuration,
            group: .singletonMultiThreadedEventLoopGroup,
            client: HTTPClient.shared
        )
        upstream = ScriptedUpstream(loop: loop)
        client = EmbeddedChannel(loop: loop)
        try ProxyServer.configureHTTP1(client, runtime: runtime, scheme: "http", upstreams: upstream)
        try client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40000)).wait()
    }

    deinit {
        runtime.shutdown()
    }

    /// Runs `body` with a fresh harness and always shuts it down.
    static func with(
        extra: String = "",
        replaceServer: Bool = false,
        _ body: (ExchangeHarness) throws -> Void
    ) throws {
        let harness = try ExchangeHarness(extra: extra, replaceServer: replaceServer)
        defer { harness.finish() }
        try body(harness)
    }

    func finish() {
        _ = try? client.finish()
        upstream.finish()
    }

    /// The client sends `text` (as written: CRLF line ends are the caller's). Bytes the parser
    /// refuses are answered by the proxy, not thrown.
    func send(_ text: String) {
        send(ByteBuffer(string: text))
    }

    func send(_ bytes: ByteBuffer) {
        guard client.isActive else { return }
        _ = try? client.writeInbound(bytes)
        pump()
    }

    /// Runs the loop, and while the upstream answers by itself (`ScriptedUpstream.responder`),
    /// answers every request head it has received until nothing moves.
    func pump() {
        loop.run()
        while upstream.completeConnects() || upstream.answerWaitingHeads() { loop.run() }
    }

    /// A new client connection to the same proxy and upstream (after one closed).
    func reconnect() throws {
        _ = try? client.finish()
        _ = received()
        clientReceived = ""
        client = EmbeddedChannel(loop: loop)
        try ProxyServer.configureHTTP1(client, runtime: runtime, scheme: "http", upstreams: upstream)
        try client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40000)).wait()
    }

    /// What the client received since the last call.
    @discardableResult
    func received() -> String {
        var text = ""
        while let data = try? client.readOutbound(as: IOData.self) {
            if case .byteBuffer(let buffer) = data { text += String(buffer: buffer) }
        }
        clientReceived += text
        return text
    }

    /// The status of every answer the client received so far.
    var statuses: [Int] {
        received()
        return FramingTests.statuses(in: clientReceived)
    }

    /// The upstream connection `index` answers `text` (raw bytes, as a server would write them).
    func answer(_ text: String, on index: Int? = nil) {
        upstream.answer(text, on: index)
        pump()
    }

    /// The client connection is still open.
    var clientIsOpen: Bool { client.isActive }

    /// The client closes its side.
    func clientCloses() {
        _ = try? client.close().wait()
        loop.run()
    }

    /// Moves the loop's clock (the connection's timers) on by `amount`.
    func advance(by amount: TimeAmount) {
        loop.advanceTime(by: amount)
    }
}
