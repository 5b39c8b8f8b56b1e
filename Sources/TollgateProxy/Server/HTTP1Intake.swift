import NIOCore

/// An HTTP/1.1 connection's bytes on their way to request parts: the parser and what it has not
/// consumed yet. `ProxyHandler` feeds each read here and hands on the parts it gets back.
struct HTTP1Intake {
    enum Next {
        case part(RequestPart)
        /// Nothing more is complete, or the parser is paused after a request that asked to
        /// switch protocols.
        case wait
        /// The bytes broke RFC 9112's rules: nothing more is parsed on this connection.
        case refuse(HTTP1ParseError)
    }

    private var parser: HTTP1RequestParser
    private var inbound = ByteBuffer()
    /// A refusal was returned: the connection's later bytes are ignored.
    private(set) var hasFailed = false

    init(limits: HTTP1RequestParser.Limits) {
        parser = HTTP1RequestParser(limits: limits)
    }

    /// Adds a read's bytes.
    mutating func receive(_ bytes: ByteBuffer) {
        guard !hasFailed else { return }
        if inbound.readableBytes == 0 {
            inbound = bytes
        } else {
            var bytes = bytes
            inbound.writeBuffer(&bytes)
        }
    }

    mutating func next() -> Next {
        guard !hasFailed else { return .wait }
        do {
            switch try parser.next(&inbound) {
            case .part(let part):
                return .part(part)
            case .needMoreData, .paused:
                // An empty buffer is replaced by the next read; clearing it would copy storage
                // that body slices still share.
                if inbound.readableBytes > 0 && inbound.readerIndex > 16 * 1024 { inbound.discardReadBytes() }
                return .wait
            }
        } catch {
            hasFailed = true
            inbound = ByteBuffer()
            return .refuse(error as? HTTP1ParseError ?? HTTP1ParseError(.malformed, "unparseable"))
        }
    }

    /// Parsing goes on after a request that asked to switch protocols and was answered without
    /// switching (RFC 9110 §7.8).
    mutating func resume() {
        parser.resume()
    }

    /// The bytes read but not parsed: after a relayed protocol switch they belong to the new
    /// protocol.
    mutating func takeUnparsed() -> ByteBuffer? {
        guard !hasFailed, inbound.readableBytes > 0 else { return nil }
        defer { inbound = ByteBuffer() }
        return inbound
    }
}
