import Foundation
import NIOCore
import NIOEmbedded

@testable import TollgateProxy

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
