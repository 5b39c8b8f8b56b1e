import NIOCore
import NIOHTTP1

/// After a `101 Switching Protocols` (WebSocket), both connections stop speaking HTTP and
/// Tollgate relays bytes between them, with backpressure in both directions.
enum Upgrade {
    static func relay(client: ChannelHandlerContext, upstream: UpstreamConnection) {
        let clientPipeline = client.pipeline.syncOperations
        let upstreamPipeline = upstream.channel.pipeline.syncOperations
        let (clientGlue, upstreamGlue) = GlueHandler.makePair()
        do {
            // The glue at both ends first, then the upstream's HTTP handler, and the client's
            // proxy handler last: its removal hands the bytes its parser held (sent after the
            // request) to the glue, which writes them to the upstream's raw connection.
            try clientPipeline.addHandler(clientGlue)
            try upstreamPipeline.addHandler(upstreamGlue)
            upstreamPipeline.removeHandler(upstream.handler, promise: nil)
            if let context = try? clientPipeline.context(name: "proxy") {
                clientPipeline.removeHandler(context: context, promise: nil)
            }
        } catch {
            client.close(promise: nil)
            upstream.channel.close(promise: nil)
        }
    }
}

/// Joins two channels: what one reads the other writes (the pattern from swift-nio-examples'
/// connect proxy).
final class GlueHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    private var partner: GlueHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false

    static func makePair() -> (GlueHandler, GlueHandler) {
        let first = GlueHandler()
        let second = GlueHandler()
        first.partner = second
        second.partner = first
        return (first, second)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    private func partnerWrite(_ data: NIOAny) {
        context?.write(data, promise: nil)
    }

    private func partnerFlush() {
        context?.flush()
    }

    private func partnerWriteEOF() {
        context?.close(mode: .output, promise: nil)
    }

    private func partnerCloseFull() {
        context?.close(promise: nil)
    }

    private func partnerBecameWritable() {
        if pendingRead {
            pendingRead = false
            context?.read()
        }
    }

    private var partnerWritable: Bool {
        context?.channel.isWritable ?? false
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner?.partnerWrite(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.partnerFlush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner?.partnerCloseFull()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event {
            partner?.partnerWriteEOF()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        partner?.partnerCloseFull()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
    }

    func read(context: ChannelHandlerContext) {
        if let partner, partner.partnerWritable {
            context.read()
        } else {
            pendingRead = true
        }
    }
}
