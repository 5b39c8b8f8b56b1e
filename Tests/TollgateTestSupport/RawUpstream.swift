import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// An upstream that speaks no HTTP of its own: it records every byte and, for each request head
/// it sees end (`CRLF CRLF`; the tests send no bodies through it), writes the bytes `answer` gives
/// for that head's number. For answers no real server library would write.
public final class RawUpstream: Sendable {
    private let channel: any Channel
    private let state: NIOLockedValueBox<(received: [UInt8], connections: Int)>
    public let port: Int

    private init(channel: any Channel, state: NIOLockedValueBox<(received: [UInt8], connections: Int)>) {
        self.channel = channel
        self.state = state
        self.port = channel.localAddress!.port!
    }

    public var received: String { String(decoding: state.withLockedValue { $0.received }, as: UTF8.self) }
    public var connections: Int { state.withLockedValue { $0.connections } }

    public static func start(answer: @escaping @Sendable (Int) -> String) async throws -> RawUpstream {
        let state = NIOLockedValueBox<(received: [UInt8], connections: Int)>(([], 0))
        let heads = NIOLockedValueBox(0)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                state.withLockedValue { $0.connections += 1 }
                return channel.pipeline.addHandler(Answerer(state: state, heads: heads, answer: answer))
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return RawUpstream(channel: channel, state: state)
    }

    public func shutdown() async throws {
        try await channel.close()
    }

    private final class Answerer: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        let state: NIOLockedValueBox<(received: [UInt8], connections: Int)>
        let heads: NIOLockedValueBox<Int>
        let answer: @Sendable (Int) -> String
        /// The unanswered bytes of this connection.
        let pending = NIOLockedValueBox<[UInt8]>([])

        init(
            state: NIOLockedValueBox<(received: [UInt8], connections: Int)>,
            heads: NIOLockedValueBox<Int>,
            answer: @escaping @Sendable (Int) -> String
        ) {
            self.state = state
            self.heads = heads
            self.answer = answer
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = Array(unwrapInboundIn(data).readableBytesView)
            state.withLockedValue { $0.received += bytes }
            var answers: [String] = []
            pending.withLockedValue { pending in
                pending += bytes
                while let end = Self.headEnd(pending) {
                    pending.removeFirst(end)
                    let number = heads.withLockedValue { count in
                        count += 1
                        return count
                    }
                    answers.append(answer(number))
                }
            }
            for text in answers {
                context.writeAndFlush(NIOAny(ByteBuffer(string: text)), promise: nil)
            }
        }

        static func headEnd(_ bytes: [UInt8]) -> Int? {
            guard bytes.count >= 4 else { return nil }
            for index in 0...(bytes.count - 4)
            where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
                return index + 4
            }
            return nil
        }
    }
}
