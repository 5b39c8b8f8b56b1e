import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// An upstream for large bodies that never holds one in memory: `POST /sink` counts the request
/// body and answers the count; `GET /source/N` streams N zero bytes with backpressure.
public final class StreamingServer: Sendable {
    private let channel: any Channel
    public let port: Int

    private init(channel: any Channel) {
        self.channel = channel
        self.port = channel.localAddress!.port!
    }

    public static func start() async throws -> StreamingServer {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler())
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return StreamingServer(channel: channel)
    }

    public func shutdown() async throws {
        try await channel.close()
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        private var counted = 0
        private var remaining = 0
        private var sourcing = false
        private static let chunk = ByteBuffer(repeating: 0, count: 64 * 1024)

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                counted = 0
                if head.uri.hasPrefix("/source/"), let size = Int(head.uri.dropFirst(8)) {
                    remaining = size
                    sourcing = true
                }
            case .body(let buffer):
                counted += buffer.readableBytes
            case .end:
                var headers = HTTPHeaders()
                if sourcing {
                    headers.add(name: "Content-Length", value: String(remaining))
                    context.write(
                        wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))),
                        promise: nil
                    )
                    pump(context: context)
                } else {
                    let body = "received \(counted)"
                    headers.add(name: "Content-Length", value: String(body.utf8.count))
                    context.write(
                        wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))),
                        promise: nil
                    )
                    context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
                    context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                }
            }
        }

        private func pump(context: ChannelHandlerContext) {
            while sourcing && remaining > 0 && context.channel.isWritable {
                let size = min(remaining, Self.chunk.readableBytes)
                context.write(
                    wrapOutboundOut(.body(.byteBuffer(Self.chunk.getSlice(at: 0, length: size)!))),
                    promise: nil
                )
                remaining -= size
            }
            if sourcing && remaining == 0 {
                sourcing = false
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            } else {
                context.flush()
            }
        }

        func channelWritabilityChanged(context: ChannelHandlerContext) {
            if context.channel.isWritable { pump(context: context) }
            context.fireChannelWritabilityChanged()
        }
    }
}

/// A client for large bodies over a raw connection: uploads `bytes` zero bytes, or downloads and
/// counts, without keeping the body.
public enum StreamingClient {
    public struct Result: Sendable {
        public let head: String
        public let bodyBytes: Int
        public let body: String
    }

    public static func upload(port: Int, path: String, bytes: Int, headers: [String] = []) async throws -> Result {
        let head =
            (["POST \(path) HTTP/1.1", "Host: stream.test", "Connection: close", "Content-Length: \(bytes)"] + headers)
            .joined(separator: "\r\n") + "\r\n\r\n"
        return try await run(port: port, head: head, uploadBytes: bytes)
    }

    public static func download(port: Int, path: String, headers: [String] = []) async throws -> Result {
        let head =
            (["GET \(path) HTTP/1.1", "Host: stream.test", "Connection: close"] + headers).joined(separator: "\r\n")
            + "\r\n\r\n"
        return try await run(port: port, head: head, uploadBytes: 0)
    }

    private static func run(port: Int, head: String, uploadBytes: Int) async throws -> Result {
        let promise = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: Result.self)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        Handler(head: head, uploadBytes: uploadBytes, promise: promise)
                    )
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        _ = channel
        return try await promise.futureResult.get()
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        private let head: String
        private var remaining: Int
        private let promise: EventLoopPromise<Result>
        private var headBytes: [UInt8] = []
        private var headDone = false
        private var bodyCount = 0
        private var bodyPrefix: [UInt8] = []
        private static let chunk = ByteBuffer(repeating: 0, count: 64 * 1024)

        init(head: String, uploadBytes: Int, promise: EventLoopPromise<Result>) {
            self.head = head
            self.remaining = uploadBytes
            self.promise = promise
        }

        func channelActive(context: ChannelHandlerContext) {
            context.write(wrapOutboundOut(ByteBuffer(string: head)), promise: nil)
            pump(context: context)
            context.fireChannelActive()
        }

        private func pump(context: ChannelHandlerContext) {
            while remaining > 0 && context.channel.isWritable {
                let size = min(remaining, Self.chunk.readableBytes)
                context.write(wrapOutboundOut(Self.chunk.getSlice(at: 0, length: size)!), promise: nil)
                remaining -= size
            }
            context.flush()
        }

        func channelWritabilityChanged(context: ChannelHandlerContext) {
            if context.channel.isWritable { pump(context: context) }
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            if !headDone {
                headBytes += buffer.readBytes(length: buffer.readableBytes) ?? []
                if let end = find(headBytes) {
                    headDone = true
                    let rest = headBytes.count - end - 4
                    bodyCount += rest
                    bodyPrefix = Array(headBytes[(end + 4)...].prefix(4096))
                    headBytes = Array(headBytes[..<end])
                }
            } else {
                if bodyPrefix.count < 4096 {
                    bodyPrefix += buffer.getBytes(at: buffer.readerIndex, length: min(buffer.readableBytes, 4096)) ?? []
                }
                bodyCount += buffer.readableBytes
            }
        }

        private func find(_ bytes: [UInt8]) -> Int? {
            guard bytes.count >= 4 else { return nil }
            for index in 0...(bytes.count - 4)
            where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
                return index
            }
            return nil
        }

        func channelInactive(context: ChannelHandlerContext) {
            promise.succeed(
                Result(
                    head: String(decoding: headBytes, as: UTF8.self),
                    bodyBytes: bodyCount,
                    body: String(decoding: bodyPrefix, as: UTF8.self)
                )
            )
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}
