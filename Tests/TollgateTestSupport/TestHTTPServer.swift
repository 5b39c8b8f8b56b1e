import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A real HTTP/1.1 server on 127.0.0.1 for tests: every request goes to an async handler, and the
/// server counts what it received.
public final class TestHTTPServer: Sendable {
    public struct Request: Sendable {
        public let method: String
        public let uri: String
        public let headers: [(String, String)]
        public let body: [UInt8]

        public func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }

        public var bodyText: String { String(decoding: body, as: UTF8.self) }
    }

    public struct Response: Sendable {
        public var status: Int
        public var headers: [(String, String)]
        public var body: [UInt8]

        public init(status: Int = 200, headers: [(String, String)] = [], body: [UInt8] = []) {
            self.status = status
            self.headers = headers
            self.body = body
        }

        public static func json(_ text: String, status: Int = 200, headers: [(String, String)] = []) -> Response {
            Response(status: status, headers: [("Content-Type", "application/json")] + headers, body: Array(text.utf8))
        }

        /// No answer at all: the connection is closed, as an upstream does when its keep-alive
        /// timeout ends just as a request arrives.
        public static let closeConnection = Response(status: 0)
    }

    public typealias Handler = @Sendable (Request) async -> Response

    private let channel: any Channel
    private let received = NIOLockedValueBox<[Request]>([])
    private let raw: NIOLockedValueBox<[UInt8]>
    public let port: Int

    private init(channel: any Channel, port: Int, raw: NIOLockedValueBox<[UInt8]>) {
        self.channel = channel
        self.port = port
        self.raw = raw
    }

    /// Every byte any connection sent, in arrival order: what reached the server whether or not
    /// it parsed as a request (bytes after a 101 included).
    public var rawReceived: String { String(decoding: raw.withLockedValue { $0 }, as: UTF8.self) }

    /// - Parameter port: 0 for any free port.
    public static func start(port: Int = 0, handler: @escaping Handler) async throws -> TestHTTPServer {
        let box = NIOLockedValueBox<TestHTTPServer?>(nil)
        let requests = NIOLockedValueBox<[Request]>([])
        let raw = NIOLockedValueBox<[UInt8]>([])
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 512)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.addHandler(RawRecorder(raw: raw)).flatMap {
                    channel.pipeline.configureHTTPServerPipeline()
                }.flatMap {
                    channel.pipeline.addHandler(
                        RequestHandler(handler: handler) { request in
                            if let server = box.withLockedValue({ $0 }) {
                                server.received.withLockedValue { $0.append(request) }
                            } else {
                                requests.withLockedValue { $0.append(request) }
                            }
                        }
                    )
                }
            }
            .bind(host: "127.0.0.1", port: port).get()
        let server = TestHTTPServer(channel: channel, port: channel.localAddress!.port!, raw: raw)
        box.withLockedValue { $0 = server }
        return server
    }

    /// Starts a server, runs `body` against it, and shuts it down whether `body` throws or not.
    public static func serving(
        _ handler: @escaping Handler,
        _ body: (TestHTTPServer) async throws -> Void
    ) async throws {
        let server = try await start(handler: handler)
        do {
            try await body(server)
        } catch {
            try? await server.shutdown()
            throw error
        }
        try await server.shutdown()
    }

    public func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    public var requests: [Request] { received.withLockedValue { $0 } }
    public var requestCount: Int { received.withLockedValue { $0.count } }

    public func shutdown() async throws {
        try await channel.close()
    }

    private final class RawRecorder: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer
        let raw: NIOLockedValueBox<[UInt8]>

        init(raw: NIOLockedValueBox<[UInt8]>) {
            self.raw = raw
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            raw.withLockedValue { $0 += buffer.readableBytesView }
            context.fireChannelRead(data)
        }
    }

    private final class RequestHandler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        private let handler: Handler
        private let record: @Sendable (Request) -> Void
        private var head: HTTPRequestHead?
        private var body: [UInt8] = []

        init(handler: @escaping Handler, record: @escaping @Sendable (Request) -> Void) {
            self.handler = handler
            self.record = record
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                body = []
            case .body(var buffer):
                body += buffer.readBytes(length: buffer.readableBytes) ?? []
            case .end:
                guard let head else { return }
                let request = Request(
                    method: head.method.rawValue,
                    uri: head.uri,
                    headers: head.headers.map { ($0.name, $0.value) },
                    body: body
                )
                record(request)
                let handler = self.handler
                let keepAlive = head.isKeepAlive
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                context.eventLoop.makeFutureWithTask { await handler(request) }.whenSuccess { response in
                    let (this, context) = loopBound.value
                    this.write(response, keepAlive: keepAlive, context: context)
                }
            }
        }

        private func write(_ response: Response, keepAlive: Bool, context: ChannelHandlerContext) {
            if response.status == 0 {
                context.close(promise: nil)
                return
            }
            var headers = HTTPHeaders(response.headers)
            if response.status == 101 {
                // Switching protocols: the head alone; what follows is no longer HTTP.
                let head = HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: headers)
                context.writeAndFlush(wrapOutboundOut(.head(head)), promise: nil)
                return
            }
            headers.replaceOrAdd(name: "Content-Length", value: "\(response.body.count)")
            if !keepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
            let head = HTTPResponseHead(
                version: .http1_1,
                status: HTTPResponseStatus(statusCode: response.status),
                headers: headers
            )
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: response.body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                if !keepAlive { context.close(promise: nil) }
            }
        }
    }
}
