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

/// The upstream of an `ExchangeHarness`: a connection is an `EmbeddedChannel` on the harness's
/// loop with the pipeline `UpstreamPool.connect()` builds, kept idle and handed out again as the
/// pool does. Confined to the harness's loop, hence the unchecked `Sendable`.
final class ScriptedUpstream: UpstreamConnecting, @unchecked Sendable {
    let loop: EmbeddedEventLoop
    let basePath = ""
    /// Every connection opened, in order.
    private(set) var connections: [EmbeddedChannel] = []
    private var received: [String] = []
    private var idle: [UpstreamConnection] = []
    /// New connections fail (an upstream that is down).
    var refusesConnections = false
    /// When set, every request head that arrives is answered with what it returns (the head's
    /// text in, a whole raw answer out); otherwise the test answers with `answer(_:on:)`.
    var responder: ((String) -> String)?
    /// How many heads of each connection were answered by `responder`.
    private var answered: [Int] = []

    /// The echo server of the end-to-end tests, in short: 200 with the request target as body.
    static let echo: @Sendable (String) -> String = { head in
        let target = head.split(separator: " ", maxSplits: 2).dropFirst().first.map(String.init) ?? ""
        return "HTTP/1.1 200 OK\r\nContent-Length: \(target.utf8.count)\r\n\r\n\(target)"
    }

    init(loop: EmbeddedEventLoop) {
        self.loop = loop
    }

    func takeIdle() -> UpstreamConnection? {
        while let connection = idle.popLast() {
            if connection.channel.isActive { return connection }
        }
        return nil
    }

    func acquire() -> EventLoopFuture<UpstreamConnection> {
        if let connection = takeIdle() { return loop.makeSucceededFuture(connection) }
        return connect()
    }

    /// A new connection, made when the harness pumps next, as a real connect completes later.
    func connect() -> EventLoopFuture<UpstreamConnection> {
        let promise = loop.makePromise(of: UpstreamConnection.self)
        pendingConnects.append(promise)
        return promise.futureResult
    }

    private var pendingConnects: [EventLoopPromise<UpstreamConnection>] = []

    /// Completes the connects asked for since the last call; whether there were any.
    func completeConnects() -> Bool {
        guard !pendingConnects.isEmpty else { return false }
        let waiting = pendingConnects
        pendingConnects.removeAll()
        for promise in waiting {
            if refusesConnections {
                promise.fail(ChannelError.connectTimeout(.seconds(1)))
                continue
            }
            let channel = EmbeddedChannel(loop: loop)
            let handler = UpstreamHandler()
            do {
                try channel.pipeline.syncOperations.addHandler(handler)
                try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            } catch {
                promise.fail(error)
                continue
            }
            connections.append(channel)
            received.append("")
            answered.append(0)
            promise.succeed(UpstreamConnection(channel: channel, handler: handler))
        }
        return true
    }

    func release(_ connection: UpstreamConnection, reusable: Bool) {
        connection.handler.delegate = nil
        connection.handler.setReadsAllowed(true)
        guard reusable, connection.channel.isActive else {
            connection.channel.close(promise: nil)
            return
        }
        idle.append(connection)
    }

    /// The bytes connection `index` (the last one by default) has received so far.
    func received(on index: Int? = nil) -> String {
        let index = index ?? connections.count - 1
        guard connections.indices.contains(index) else { return "" }
        while let data = try? connections[index].readOutbound(as: IOData.self) {
            if case .byteBuffer(let buffer) = data { received[index] += String(buffer: buffer) }
        }
        return received[index]
    }

    /// Everything every connection received, in the order of the connections.
    var allReceived: String {
        connections.indices.map { received(on: $0) }.joined()
    }

    /// The request heads connection `index` received (a piece between blank lines that starts
    /// with a request line; bodies here are short and never look like one).
    func heads(on index: Int) -> [String] {
        received(on: index).components(separatedBy: "\r\n\r\n").dropLast().filter(Self.isRequestHead)
    }

    /// Every request head received, over all connections in order.
    var heads: [String] { connections.indices.flatMap { heads(on: $0) } }

    /// The request target of every head received.
    var targets: [String] {
        heads.map { $0.split(separator: " ", maxSplits: 2).dropFirst().first.map(String.init) ?? "" }
    }

    static func isRequestHead(_ text: Substring) -> Bool {
        isRequestHead(String(text))
    }

    static func isRequestHead(_ text: String) -> Bool {
        let line = text.components(separatedBy: "\r\n")[0]
        let parts = line.split(separator: " ")
        return parts.count == 3 && parts[0].allSatisfy(\.isUppercase) && parts[2].hasPrefix("HTTP/1.")
    }

    /// Answers, with `responder`, the heads that arrived since the last call; whether it did.
    func answerWaitingHeads() -> Bool {
        guard let responder else { return false }
        var answeredAny = false
        for index in connections.indices where connections[index].isActive {
            let waiting = heads(on: index)
            while answered[index] < waiting.count, connections[index].isActive {
                let head = waiting[answered[index]]
                answered[index] += 1
                answer(responder(head), on: index)
                answeredAny = true
            }
        }
        return answeredAny
    }

    func answer(_ text: String, on index: Int? = nil) {
        let index = index ?? connections.count - 1
        guard connections.indices.contains(index), connections[index].isActive else { return }
        _ = try? connections[index].writeInbound(ByteBuffer(string: text))
    }

    /// Connection `index` is closed by the upstream.
    func close(_ index: Int? = nil) {
        let index = index ?? connections.count - 1
        guard connections.indices.contains(index) else { return }
        _ = received(on: index)
        _ = try? connections[index].close().wait()
    }

    func isOpen(_ index: Int) -> Bool {
        connections.indices.contains(index) && connections[index].isActive
    }

    func finish() {
        for connection in connections { _ = try? connection.finish(acceptAlreadyClosed: true) }
    }
}
