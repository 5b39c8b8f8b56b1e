import NIOCore
import NIOHTTP1
import NIOPosix
import TollgateCore

/// The admin listener, on its own port: `/healthz` (the process answers), `/readyz` (every
/// issuer's first key set is loaded and Tollgate is not draining), `/metrics` (Prometheus).
public final class AdminServer: Sendable {
    public let channel: any Channel

    private init(channel: any Channel) {
        self.channel = channel
    }

    public var port: Int { channel.localAddress?.port ?? 0 }

    public static func start(runtime: ProxyRuntime, host: String, port: Int) async throws -> AdminServer {
        let channel = try await ServerBootstrap(group: runtime.group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(runtime: runtime))
                }
            }
            .bind(host: host, port: port).get()
        return AdminServer(channel: channel)
    }

    public func close() async {
        try? await channel.close()
    }
}

final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let runtime: ProxyRuntime
    private var head: HTTPRequestHead?

    init(runtime: ProxyRuntime) {
        self.runtime = runtime
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            let (status, contentType, body, extra) = answer(head)
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: contentType)
            for (name, value) in extra { headers.add(name: name, value: value) }
            headers.add(name: "Content-Length", value: String(body.count))
            if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))),
                promise: nil
            )
            if head.method != .HEAD {
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
            }
            let keepAlive = head.isKeepAlive
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                if !keepAlive { loopBound.value.close(promise: nil) }
            }
        }
    }

    private func answer(_ head: HTTPRequestHead) -> (HTTPResponseStatus, String, [UInt8], [(String, String)]) {
        guard head.method == .GET || head.method == .HEAD else { return refusal(GateError(.methodNotAllowed)) }
        switch RequestPipeline.pathOf(head.uri) {
        case "/healthz":
            return (.ok, "text/plain", Array("ok\n".utf8), [])
        case "/readyz":
            if runtime.isDraining { return (.serviceUnavailable, "text/plain", Array("draining\n".utf8), []) }
            let waiting = runtime.snapshot.verifier.issuers.filter { !($0.keys?.isReady ?? true) }.map(\.policy.name)
            if waiting.isEmpty { return (.ok, "text/plain", Array("ready\n".utf8), []) }
            return (
                .serviceUnavailable, "text/plain",
                Array("waiting for the keys of: \(waiting.joined(separator: ", "))\n".utf8), []
            )
        case "/metrics":
            return (.ok, "text/plain; version=0.0.4", runtime.metrics.render(runtime: runtime), [])
        default:
            return refusal(GateError(.notFound))
        }
    }

    /// The admin listener refuses like the proxy does: the one mapping of `GateError`.
    private func refusal(_ error: GateError) -> (HTTPResponseStatus, String, [UInt8], [(String, String)]) {
        let response = error.response(realm: runtime.snapshot.realm)
        return (
            HTTPResponseStatus(statusCode: response.status), "application/json", Array(response.body.utf8),
            response.headers
        )
    }
}
