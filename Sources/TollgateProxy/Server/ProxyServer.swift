import NIOCore
import NIOExtras
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL
import NIOTLS
import Prometheus
import TollgateCore

/// The client-facing listener: HTTP/1.1 with keep-alive, HTTP/2 by prior knowledge (h2c), and
/// with TLS, ALPN choosing `h2` or `http/1.1`.
public final class ProxyServer: Sendable {
    public let channel: any Channel
    private let quiescing: ServerQuiescingHelper

    private init(channel: any Channel, quiescing: ServerQuiescingHelper) {
        self.channel = channel
        self.quiescing = quiescing
    }

    public var port: Int { channel.localAddress?.port ?? 0 }

    public static func start(runtime: ProxyRuntime, host: String, port: Int) async throws -> ProxyServer {
        let settings = runtime.snapshot.configuration.server
        let tlsContext = try settings.tls.map { tls in
            let chain = try NIOSSLCertificate.fromPEMFile(tls.certificateFile).map {
                NIOSSLCertificateSource.certificate($0)
            }
            let key = try NIOSSLPrivateKey(file: tls.keyFile, format: .pem)
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: chain,
                privateKey: .privateKey(key)
            )
            configuration.applicationProtocols = ["h2", "http/1.1"]
            // RFC 8705: client certificates checked against the configured CAs; a token bound to
            // one (cnf x5t#S256) is then taken only over its connection.
            if let clientCA = tls.clientCAFile {
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(clientCA))
                configuration.certificateVerification =
                    tls.requiresClientCertificate ? .noHostnameVerification : .optionalVerification
            }
            return try NIOSSLContext(configuration: configuration)
        }
        let quiescing = ServerQuiescingHelper(group: runtime.group)
        let h2c = settings.h2c
        let channel = try await ServerBootstrap(group: runtime.group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiescing.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                // Counted from the accept, whatever protocol follows (HTTP/2 connections too).
                let connections = runtime.metrics.activeConnections
                connections.increment()
                channel.closeFuture.whenComplete { _ in connections.decrement() }
                if let tlsContext {
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tlsContext))
                    }.flatMap {
                        channel.configureHTTP2SecureUpgrade(
                            h2ChannelConfigurator: { channel in
                                channel.eventLoop.makeCompletedFuture {
                                    try configureHTTP2(channel, runtime: runtime, scheme: "https")
                                }
                            },
                            http1ChannelConfigurator: { channel in
                                channel.eventLoop.makeCompletedFuture {
                                    try configureHTTP1(channel, runtime: runtime, scheme: "https")
                                }
                            }
                        )
                    }
                }
                return channel.eventLoop.makeCompletedFuture {
                    if h2c {
                        try channel.pipeline.syncOperations.addHandler(PriorKnowledgeSniffer(runtime: runtime))
                    } else {
                        try configureHTTP1(channel, runtime: runtime, scheme: "http")
                    }
                }
            }
            .bind(host: host, port: port).get()
        return ProxyServer(channel: channel, quiescing: quiescing)
    }

    /// An HTTP/1.1 client connection's pipeline; `upstreams` replaces the event loop's pool when an
    /// exchange is driven in process.
    static func configureHTTP1(
        _ channel: any Channel,
        runtime: ProxyRuntime,
        scheme: String,
        upstreams: (any UpstreamConnecting)? = nil
    ) throws {
        // One handler: the request parser, both state machines and the answer writer.
        try channel.pipeline.syncOperations.addHandler(
            ProxyHandler(runtime: runtime, scheme: scheme, isHTTP2: false, upstreams: upstreams),
            name: "proxy"
        )
    }

    static func configureHTTP2(_ channel: any Channel, runtime: ProxyRuntime, scheme: String) throws {
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: 256),
            HTTP2Setting(
                parameter: .maxHeaderListSize,
                value: runtime.snapshot.configuration.server.maximumHeaderBytes
            ),
        ]
        var stream = NIOHTTP2Handler.StreamConfiguration()
        stream.targetWindowSize = 1 << 20
        // Between the socket (or TLS) and the HTTP/2 handler: one flush per loop pass.
        try channel.pipeline.syncOperations.addHandler(FlushCoalescingHandler())
        _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
            mode: .server,
            connectionConfiguration: connection,
            streamConfiguration: stream,
            inboundStreamInitializer: { stream in
                stream.eventLoop.makeCompletedFuture {
                    // One handler per stream: the frames are decoded and encoded in it.
                    try stream.pipeline.syncOperations.addHandler(
                        ProxyHandler(runtime: runtime, scheme: scheme, isHTTP2: true)
                    )
                }
            }
        )
    }

    /// Stops accepting, lets in-flight requests finish (each connection closes after its
    /// current response), and returns when every connection has closed or `grace` has passed.
    public func drain(grace: Duration) async {
        let promise = channel.eventLoop.makePromise(of: Void.self)
        quiescing.initiateShutdown(promise: promise)
        let result = promise.futureResult
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await result.get() }
            group.addTask { try? await Task.sleep(for: grace) }
            await group.next()
            group.cancelAll()
        }
    }

    public func close() async {
        try? await channel.close()
    }
}

/// Without TLS, tells HTTP/2 with prior knowledge (RFC 9113 §3.3: the connection preface) from
/// HTTP/1.1 by the first bytes, then sets the pipeline up for that protocol.
final class PriorKnowledgeSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    private let runtime: ProxyRuntime
    private var buffered: ByteBuffer?
    /// A client that connects and sends too little to tell the protocol is closed after the
    /// header timeout, like one that never finishes its request head.
    private var timeout: Scheduled<Void>?

    init(runtime: ProxyRuntime) {
        self.runtime = runtime
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let seconds = runtime.snapshot.configuration.server.headerTimeout
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        timeout = context.eventLoop.scheduleTask(in: .nanoseconds(Int64(seconds * 1_000_000_000))) {
            loopBound.value.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timeout?.cancel()
        timeout = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if var existing = buffered {
            existing.writeBuffer(&incoming)
            buffered = existing
        } else {
            buffered = incoming
        }
        guard let bytes = buffered else { return }
        let view = bytes.readableBytesView
        let compared = min(view.count, Self.preface.count)
        let matchesSoFar = view.prefix(compared).elementsEqual(Self.preface.prefix(compared))
        if matchesSoFar && view.count < Self.preface.count { return }
        do {
            if matchesSoFar {
                try ProxyServer.configureHTTP2(context.channel, runtime: runtime, scheme: "http")
            } else {
                try ProxyServer.configureHTTP1(context.channel, runtime: runtime, scheme: "http")
            }
        } catch {
            context.close(promise: nil)
            return
        }
        buffered = nil
        context.fireChannelRead(wrapInboundOut(bytes))
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        buffered = nil
        context.fireChannelInactive()
    }
}
