import NIOCore
import NIOEmbedded
import Testing

@testable import TollgateProxy

/// An HTTP/2 connection's flushes wait for the end of the loop's pass and go out once.
@Suite struct FlushCoalescingTests {
    @Test func flushesWithinOnePassLeaveTogetherAfterIt() throws {
        let channel = EmbeddedChannel(handler: FlushCoalescingHandler())
        defer { _ = try? channel.finish() }
        var first = channel.allocator.buffer(capacity: 4)
        first.writeString("one")
        var second = channel.allocator.buffer(capacity: 4)
        second.writeString("two")
        channel.writeAndFlush(first, promise: nil)
        channel.writeAndFlush(second, promise: nil)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil, "nothing leaves within the pass")
        channel.embeddedEventLoop.run()
        #expect(try channel.readOutbound(as: ByteBuffer.self).map { String(buffer: $0) } == "one")
        #expect(try channel.readOutbound(as: ByteBuffer.self).map { String(buffer: $0) } == "two")
        // The next pass flushes again.
        channel.writeAndFlush(first, promise: nil)
        channel.embeddedEventLoop.run()
        #expect(try channel.readOutbound(as: ByteBuffer.self).map { String(buffer: $0) } == "one")
    }
}
