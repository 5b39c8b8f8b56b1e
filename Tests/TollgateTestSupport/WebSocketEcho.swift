import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// A WebSocket server (NIOWebSocket) that echoes every text frame back.
public final class WebSocketEchoServer: Sendable {
    private let channel: any Channel
    public let port: Int

    private init(channel: any Channel) {
        self.channel = channel
        self.port = channel.localAddress!.port!
    }

    public static func start() async throws -> WebSocketEchoServer {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                let upgrader = NIOWebSocketServerUpgrader(
                    shouldUpgrade: { channel, _ in channel.eventLoop.makeSucceededFuture(HTTPHeaders()) },
                    upgradePipelineHandler: { channel, _ in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(Echo())
                        }
                    }
                )
                return channel.pipeline.configureHTTPServerPipeline(
                    withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in })
                )
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return WebSocketEchoServer(channel: channel)
    }

    public func shutdown() async throws {
        try await channel.close()
    }

    private final class Echo: ChannelInboundHandler {
        typealias InboundIn = WebSocketFrame
        typealias OutboundOut = WebSocketFrame

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = unwrapInboundIn(data)
            switch frame.opcode {
            case .text, .binary:
                let data = frame.unmaskedData
                context.writeAndFlush(
                    wrapOutboundOut(WebSocketFrame(fin: true, opcode: frame.opcode, data: data)),
                    promise: nil
                )
            case .connectionClose:
                context.close(promise: nil)
            default:
                break
            }
        }
    }
}

/// A raw TCP connection a test drives step by step: send bytes, wait for what comes back.
public final class RawConnection: Sendable {
    private let channel: any Channel
    private let received: NIOLockedValueBox<[UInt8]>

    private init(channel: any Channel, received: NIOLockedValueBox<[UInt8]>) {
        self.channel = channel
        self.received = received
    }

    public static func connect(port: Int) async throws -> RawConnection {
        let received = NIOLockedValueBox<[UInt8]>([])
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Collector(received: received))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return RawConnection(channel: channel, received: received)
    }

    /// Connects and writes `bytes` as soon as the connection is up, on its event loop: no task
    /// switch between the two, so a busy test process cannot leave the connection idle past the
    /// server's header timeout. A write refused because the server already answered and closed
    /// (a refusal seen early in the request) is not an error: what it answered is the exchange.
    public static func connect(port: Int, sending bytes: [UInt8]) async throws -> RawConnection {
        let received = NIOLockedValueBox<[UInt8]>([])
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Collector(received: received))
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .flatMap { channel in
                channel.writeAndFlush(ByteBuffer(bytes: bytes)).map { channel }.recover { _ in channel }
            }
            .get()
        return RawConnection(channel: channel, received: received)
    }

    public func send(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }

    /// Waits until the bytes received so far satisfy `condition`, then returns them all.
    public func receive(
        timeout: Duration = .seconds(30),
        until condition: @Sendable ([UInt8]) -> Bool
    ) async throws -> [UInt8] {
        let deadline = ContinuousClock.now + timeout
        while true {
            // Checked once more after the deadline: a busy test process may have kept this task
            // from running while the answer arrived.
            let bytes = received.withLockedValue { $0 }
            if condition(bytes) { return bytes }
            if ContinuousClock.now >= deadline { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw RawHTTPClient.Failure(description: "no matching answer within \(timeout)")
    }

    public func close() async {
        try? await channel.close()
    }

    /// Waits for the peer to close, then returns everything received; closes it after `timeout`.
    public func untilClosed(timeout: Duration) async throws -> [UInt8] {
        let closed = channel.closeFuture
        let channel = self.channel
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await closed.get() }
            group.addTask {
                try await Task.sleep(for: timeout)
                channel.close(promise: nil)
                throw RawHTTPClient.Failure(description: "no answer within \(timeout)")
            }
            try await group.next()
            group.cancelAll()
        }
        return received.withLockedValue { $0 }
    }

    /// False once either side closed the connection.
    public var isOpen: Bool { channel.isActive }

    private final class Collector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let received: NIOLockedValueBox<[UInt8]>

        init(received: NIOLockedValueBox<[UInt8]>) {
            self.received = received
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
            received.withLockedValue { $0 += bytes }
        }
    }
}
