import NIOCore

/// An HTTP/2 connection's flushes, coalesced to one per pass of its event loop: the frames of
/// every stream answered in a pass (each relay writes its stream's end with a flush, and NIO's
/// multiplexer flushes the connection for each) leave in one `writev`, as nginx writes them,
/// instead of one system call per stream. The flush runs as a task of the same loop, after the
/// pass's I/O, so nothing waits longer than that pass.
final class FlushCoalescingHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = NIOAny
    private var scheduled = false

    func flush(context: ChannelHandlerContext) {
        guard !scheduled else { return }
        scheduled = true
        context.eventLoop.assumeIsolated().execute {
            self.scheduled = false
            context.flush()
        }
    }
}
