import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL
import TollgateCore

/// Callbacks from an upstream connection to the client-side handler using it. Both live on the
/// same event loop, so no hop and no lock.
protocol UpstreamDelegate: AnyObject {
    func upstreamReceived(_ part: UpstreamResponsePart)
    func upstreamReadComplete()
    func upstreamWritabilityChanged(isWritable: Bool)
    func upstreamClosed()
    /// The upstream's answer broke HTTP/1.1 framing; the connection closes next.
    func upstreamMalformed(_ error: HTTP1ParseError)
}

/// An upstream connection's one handler (after TLS): HTTP/1.1 in and out (`UpstreamCodec`), the
/// answer's parts handed straight to the current delegate, and reads held while the client
/// cannot take more (backpressure). On an h2c stream it sits behind NIO's codec and
/// `UpstreamHTTP2Adapter` and passes parts through.
final class UpstreamHandler: ChannelDuplexHandler, RemovableChannelHandler {
    /// The connection's bytes; an h2c stream's `UpstreamResponsePart`s (unwrapped as
    /// `UpstreamStreamParts`).
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = UpstreamRequestPart
    /// The connection's bytes; an h2c stream's `UpstreamRequestPart`s.
    typealias OutboundOut = IOData

    weak var delegate: (any UpstreamDelegate)?
    // Exclusivity, as in `ProxyHandler`: the unchecked properties are plain values used on the
    // connection's event loop, never held across a call out; `codec` keeps its checks, since
    // encoding writes into the pipeline.
    @exclusivity(unchecked) private var context: ChannelHandlerContext?
    @exclusivity(unchecked) private var readsAllowed = true
    @exclusivity(unchecked) private var pendingRead = false
    private let isStream: Bool
    private var codec = UpstreamCodec()
    @exclusivity(unchecked) private var decoding = false
    @exclusivity(unchecked) private var removed = false

    init(isStream: Bool = false) {
        self.isStream = isStream
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    // MARK: - The request

    /// Writes a request part from this handler's place in the pipeline (the proxy handler's way,
    /// without a pass through the pipeline's tail).
    func send(_ part: UpstreamRequestPart, promise: EventLoopPromise<Void>? = nil) {
        guard let context else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        write(part, context: context, promise: promise)
    }

    func flush() {
        context?.flush()
    }

    /// A part written through the pipeline.
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        write(unwrapOutboundIn(data), context: context, promise: promise)
    }

    private func write(_ part: UpstreamRequestPart, context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        if isStream {
            context.write(NIOAny(part), promise: promise)
            return
        }
        let result = codec.encode(part, allocator: context.channel.allocator, promise: promise) { bytes, promise in
            context.write(wrapOutboundOut(bytes), promise: promise)
        }
        switch result {
        case .bytes: break
        case .nothing: promise?.succeed()
        case .refuse:
            promise?.fail(ChannelError.ioOnClosedChannel)
            context.close(promise: nil)
        }
    }

    // MARK: - The answer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if isStream {
            delegate?.upstreamReceived(UpstreamStreamParts.unwrapInboundIn(data))
            return
        }
        guard !codec.failed else { return }
        var received = unwrapInboundIn(data)
        codec.received(&received)
        decode(context: context)
    }

    private func decode(context: ChannelHandlerContext) {
        guard !decoding else { return }
        decoding = true
        defer { decoding = false }
        while !removed {
            do {
                guard let part = try codec.next() else { return }
                delegate?.upstreamReceived(part)
            } catch {
                malformed(error, context: context)
                return
            }
        }
    }

    /// The answer broke HTTP/1.1 framing: the delegate is told, the connection closes and
    /// nothing after it is read.
    private func malformed(_ error: any Error, context: ChannelHandlerContext) {
        if let malformed = error as? HTTP1ParseError { delegate?.upstreamMalformed(malformed) }
        context.close(promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        delegate?.upstreamReadComplete()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        delegate?.upstreamWritabilityChanged(isWritable: context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !isStream {
            // An answer delimited by the close ends here.
            do {
                if let last = try codec.inputClosed() { delegate?.upstreamReceived(last) }
            } catch {
                if let malformed = error as? HTTP1ParseError { delegate?.upstreamMalformed(malformed) }
            }
        }
        let delegate = self.delegate
        self.delegate = nil
        delegate?.upstreamClosed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        malformed(error, context: context)
    }

    /// After a relayed protocol switch, the bytes the parser held go on raw to the relay.
    func removeHandler(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        removed = true
        if !isStream, !codec.failed, codec.buffer.readableBytes > 0 {
            let rest = codec.buffer
            codec.buffer = ByteBuffer()
            context.fireChannelRead(NIOAny(rest))
        }
        context.leavePipeline(removalToken: removalToken)
    }

    // MARK: - Reads

    func read(context: ChannelHandlerContext) {
        if readsAllowed {
            context.read()
        } else {
            pendingRead = true
        }
    }

    func setReadsAllowed(_ allowed: Bool) {
        readsAllowed = allowed
        if allowed && pendingRead {
            pendingRead = false
            context?.read()
        }
    }
}

/// Names the type an h2c stream's answer parts arrive as, for `NIOAny`'s unwrapping.
private final class UpstreamStreamParts: ChannelInboundHandler {
    typealias InboundIn = UpstreamResponsePart
}

/// One exchange's way to the upstream: a pooled HTTP/1.1 connection, or one HTTP/2 stream on a
/// shared h2c connection. Handed out in futures but only used on its channel's event loop, hence
/// the unchecked `Sendable`.
final class UpstreamConnection: @unchecked Sendable {
    let channel: any Channel
    let handler: UpstreamHandler
    /// An HTTP/2 stream: single use, closed when released.
    let isStream: Bool

    init(channel: any Channel, handler: UpstreamHandler, isStream: Bool = false) {
        self.channel = channel
        self.handler = handler
        self.isStream = isStream
    }
}

/// Where an exchange's upstream connections come from: the event loop's `UpstreamPool`, or a
/// scripted upstream when an exchange is driven in process (`ExchangeHarness` in the tests).
/// Everything is called on the client connection's event loop.
protocol UpstreamConnecting: AnyObject, Sendable {
    /// The path the upstream URL puts before every request target.
    var basePath: String { get }
    /// An idle connection that is still open, without waiting.
    func takeIdle() -> UpstreamConnection?
    /// An idle connection, or a new one; for an h2c upstream, a new stream.
    func acquire() -> EventLoopFuture<UpstreamConnection>
    /// Always a new connection (the retry after a pooled one turned out closed).
    func connect() -> EventLoopFuture<UpstreamConnection>
    /// Returns a connection whose exchange finished cleanly; anything else is closed.
    func release(_ connection: UpstreamConnection, reusable: Bool)
}

/// Keep-alive connections to the upstream for one event loop; confined to that loop (every
/// method asserts it), hence the unchecked `Sendable`.
final class UpstreamPool: UpstreamConnecting, @unchecked Sendable {
    let eventLoop: any EventLoop
    let settings: UpstreamSettings
    private let endpoint: (secure: Bool, host: String, port: Int, basePath: String)
    private let tlsContext: NIOSSLContext?
    /// Unchecked exclusivity: used on the pool's event loop only, by appends and removals that
    /// call nothing back.
    @exclusivity(unchecked) private var idle: [UpstreamConnection] = []
    /// Connections opened in total (to observe reuse).
    private(set) var opened = 0

    init(eventLoop: any EventLoop, settings: UpstreamSettings, tlsContext: NIOSSLContext?) {
        self.eventLoop = eventLoop
        self.settings = settings
        self.endpoint = settings.endpoint
        self.tlsContext = tlsContext
    }

    var basePath: String { endpoint.basePath }

    /// The shared HTTP/2 connection of an h2c upstream, once connected.
    private var multiplexer: NIOHTTP2Handler.StreamMultiplexer?
    private var multiplexerChannel: (any Channel)?
    private var connecting: EventLoopFuture<NIOHTTP2Handler.StreamMultiplexer>?

    /// An idle HTTP/1.1 connection that is still open, without waiting: the common case, taken
    /// without a future (`acquire()` then only runs when a connection must be opened).
    func takeIdle() -> UpstreamConnection? {
        eventLoop.assertInEventLoop()
        if settings.h2c { return nil }
        while let connection = idle.popLast() {
            if connection.channel.isActive { return connection }
        }
        return nil
    }

    /// An idle connection, or a new one; for an h2c upstream, a new stream.
    func acquire() -> EventLoopFuture<UpstreamConnection> {
        eventLoop.assertInEventLoop()
        if settings.h2c { return acquireStream() }
        if let connection = takeIdle() { return eventLoop.makeSucceededFuture(connection) }
        return connect()
    }

    /// Always a new HTTP/1.1 connection.
    func connect() -> EventLoopFuture<UpstreamConnection> {
        opened += 1
        let tlsContext = self.tlsContext
        let host = endpoint.host
        return ClientBootstrap(group: eventLoop)
            .connectTimeout(.milliseconds(Int64(settings.connectTimeout * 1000)))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tlsContext {
                        let tls = try NIOSSLClientHandler(
                            context: tlsContext,
                            serverHostname: AddressRange.parseAddress(host) == nil ? host : nil
                        )
                        try channel.pipeline.syncOperations.addHandler(tls)
                    }
                    try channel.pipeline.syncOperations.addHandler(UpstreamHandler())
                }
            }
            .connect(host: host, port: endpoint.port)
            .flatMap { channel in
                channel.pipeline.handler(type: UpstreamHandler.self).map { handler in
                    UpstreamConnection(channel: channel, handler: handler)
                }
            }
    }

    private func acquireStream() -> EventLoopFuture<UpstreamConnection> {
        let multiplexerFuture: EventLoopFuture<NIOHTTP2Handler.StreamMultiplexer>
        if let multiplexer, multiplexerChannel?.isActive == true {
            multiplexerFuture = eventLoop.makeSucceededFuture(multiplexer)
        } else if let connecting {
            multiplexerFuture = connecting
        } else {
            opened += 1
            let future = ClientBootstrap(group: eventLoop)
                .connectTimeout(.milliseconds(Int64(settings.connectTimeout * 1000)))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connect(host: endpoint.host, port: endpoint.port)
                .flatMapThrowing { channel -> NIOHTTP2Handler.StreamMultiplexer in
                    var stream = NIOHTTP2Handler.StreamConfiguration()
                    stream.targetWindowSize = 1 << 20
                    let multiplexer = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                        mode: .client,
                        connectionConfiguration: NIOHTTP2Handler.ConnectionConfiguration(),
                        streamConfiguration: stream,
                        inboundStreamInitializer: { channel in channel.close() }
                    )
                    self.multiplexerChannel = channel
                    self.multiplexer = multiplexer
                    return multiplexer
                }
            future.whenComplete { _ in self.connecting = nil }
            connecting = future
            multiplexerFuture = future
        }
        return multiplexerFuture.flatMap { multiplexer in
            multiplexer.createStreamChannel { stream in
                stream.eventLoop.makeCompletedFuture {
                    try stream.pipeline.syncOperations.addHandler(
                        HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: .http)
                    )
                    try stream.pipeline.syncOperations.addHandler(UpstreamHTTP2Adapter())
                    try stream.pipeline.syncOperations.addHandler(UpstreamHandler(isStream: true))
                }
            }
        }.flatMap { stream in
            stream.pipeline.handler(type: UpstreamHandler.self).map { handler in
                UpstreamConnection(channel: stream, handler: handler, isStream: true)
            }
        }
    }

    /// Returns a connection whose exchange finished cleanly; anything else is closed.
    func release(_ connection: UpstreamConnection, reusable: Bool) {
        eventLoop.assertInEventLoop()
        connection.handler.delegate = nil
        if connection.isStream {
            // A finished HTTP/2 stream closes itself; one cut short is reset.
            if !reusable { connection.channel.close(promise: nil) }
            return
        }
        connection.handler.setReadsAllowed(true)
        guard reusable, connection.channel.isActive, idle.count < settings.maximumIdleConnections else {
            connection.channel.close(promise: nil)
            return
        }
        idle.append(connection)
    }

    func closeAll() {
        for connection in idle { connection.channel.close(promise: nil) }
        idle.removeAll()
        multiplexerChannel?.close(promise: nil)
        multiplexerChannel = nil
        multiplexer = nil
    }
}

/// One pool per event loop of the server's group; each is touched only from its own loop.
final class UpstreamPools: @unchecked Sendable {
    let settings: UpstreamSettings
    private let pools: [ObjectIdentifier: UpstreamPool]

    init(settings: UpstreamSettings, group: any EventLoopGroup) throws {
        self.settings = settings
        var tlsContext: NIOSSLContext?
        if settings.endpoint.secure {
            tlsContext = try NIOSSLContext(configuration: .makeClientConfiguration())
        }
        var pools: [ObjectIdentifier: UpstreamPool] = [:]
        for loop in group.makeIterator() {
            pools[ObjectIdentifier(loop)] = UpstreamPool(eventLoop: loop, settings: settings, tlsContext: tlsContext)
        }
        self.pools = pools
    }

    func pool(for eventLoop: any EventLoop) -> UpstreamPool? {
        pools[ObjectIdentifier(eventLoop)]
    }

    /// Total connections opened across loops (read on each loop).
    func openedCount() async -> Int {
        var total = 0
        for pool in pools.values {
            total += (try? await pool.eventLoop.submit { pool.opened }.get()) ?? 0
        }
        return total
    }

    func closeAll() {
        for pool in pools.values { pool.eventLoop.execute { pool.closeAll() } }
    }
}
