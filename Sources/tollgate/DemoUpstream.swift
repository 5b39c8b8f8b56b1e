import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// The quickstart's upstream, inside the same process: answers every request with the request
/// it received — method, target and headers as plain text — so the claim headers the gate added
/// are there to see. Loopback only.
final class DemoUpstream: Service, Sendable {
    let channel: any Channel

    private init(channel: any Channel) {
        self.channel = channel
    }

    var port: Int { channel.localAddress?.port ?? 0 }

    static func start(
        port: Int = 0,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws
        -> DemoUpstream
    {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(EchoHandler())
                }
            }
            .bind(host: "127.0.0.1", port: port)
            .get()
        return DemoUpstream(channel: channel)
    }

    /// Serves until a graceful shutdown, then closes. (Waiting on the channel's close future
    /// instead would never end: that wait does not answer cancellation.)
    func run() async throws {
        try? await gracefulShutdown()
        try? await channel.close()
    }

    final class EchoHandler: ChannelInboundHandler, Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .head(let head) = unwrapInboundIn(data) else {
                if case .end = unwrapInboundIn(data) { return }
                return
            }
            var text = "The demo upstream received:\n\n\(head.method.rawValue) \(head.uri) HTTP/1.1\n"
            for (name, value) in head.headers { text += "\(name): \(value)\n" }
            var buffer = context.channel.allocator.buffer(capacity: text.utf8.count)
            buffer.writeString(text)
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
            headers.add(name: "Content-Length", value: "\(buffer.readableBytes)")
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))),
                promise: nil
            )
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}
