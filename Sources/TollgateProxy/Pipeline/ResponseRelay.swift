import NIOCore
import NIOHPACK
import NIOHTTP1

/// What becomes of the upstream's answer head on its way to the client, decided from the head
/// and the exchange's facts alone; `ProxyHandler` performs it.
///
/// For an HTTP/1.1 client the head is written here, as bytes: the upstream's status line with
/// Tollgate's version, the field lines it keeps copied as they arrived (in runs), and the few
/// Tollgate adds (`Connection`, `Transfer-Encoding` when the client needs chunks). An HTTP/2
/// client gets NIO's head, which its codec writes.
enum ResponseRelay {
    /// The client's side of the exchange.
    enum Client: Equatable {
        case http1_1
        /// No chunked coding: a body without a length is delimited by the close.
        case http1_0
        case http2
    }

    struct Relayed: Equatable {
        /// The head to write to the client.
        var part: ClientResponsePart
        /// A 101: after its end, the connections relay bytes.
        var switchesProtocols: Bool
        /// The upstream connection may serve another request once this answer has ended.
        var upstreamReusable: Bool
        /// The client connection closes after this answer (asked for, or an HTTP/1.0 client's
        /// body delimited by the close).
        var closesClient: Bool
    }

    enum HeadAction: Equatable {
        /// An interim answer the client does not see.
        case skip
        /// Not relayable: 502, and neither connection is used again.
        case refuse(reason: String)
        case relay(Relayed)
    }

    /// - Parameters:
    ///   - upgradeProtocols: the protocols the client asked to switch to and the route allows,
    ///     `nil` when the request asked for no upgrade that was relayed.
    ///   - clientKeepAlive: the client's connection stays open after this answer.
    ///   - isHeadRequest: the request was HEAD: no body follows whatever the head states.
    ///   - dpopNonce: a fresh DPoP nonce to add as `DPoP-Nonce` (RFC 9449 §9), in place of any
    ///     the upstream sent.
    /// The upstream's answer head as an HTTP/2 client's header block, straight from its field
    /// lines: `:status`, then the fields an HTTP/1.1 client would get, lower-cased, without the
    /// hop-by-hop and connection-specific ones (RFC 9113 §8.2.2) or those its `Connection` names.
    static func http2Block(_ head: ResponseHead, dpopNonce: String? = nil) -> HPACKHeaders {
        var block = HPACKHeaders()
        block.reserveCapacity(head.fields.count + 2)
        block.add(name: ":status", value: String(head.status.code))
        let connectionNamed = head.connectionNamesOthers ? connectionOptions(head.headers) : []
        head.bytes.withUnsafeReadableBytes { raw in
            for field in head.fields {
                let name = raw[Int(field.lineStart)..<Int(field.nameEnd)]
                switch HeaderName(utf8: name) {
                case .upgrade, .hopByHop, .connection, .te, .trailer:
                    continue
                default:
                    if name.count == 17, name.equalsIgnoringASCIICase(HTTP1Syntax.transferEncoding) { continue }
                    if dpopNonce != nil, name.count == 10, name.equalsIgnoringASCIICase(Self.dpopNonceName) { continue }
                    if !connectionNamed.isEmpty,
                        !(name.count == 14 && name.equalsIgnoringASCIICase(HTTP1Syntax.contentLength)),
                        connectionNamed.contains(where: { name.equalsIgnoringASCIICase($0.utf8) })
                    {
                        continue
                    }
                }
                let lowered = String(unsafeUninitializedCapacity: name.count) { out in
                    for (offset, byte) in name.enumerated() {
                        out[offset] = byte.asciiLowercased
                    }
                    return name.count
                }
                let value = String(decoding: raw[Int(field.valueStart)..<Int(field.valueEnd)], as: UTF8.self)
                block.add(name: lowered, value: value)
            }
        }
        if let dpopNonce { block.add(name: "dpop-nonce", value: dpopNonce) }
        return block
    }

    static let dpopNonceName = Array("dpop-nonce".utf8)

    static func head(
        _ head: ResponseHead,
        upgradeProtocols: [String]?,
        clientKeepAlive: Bool,
        client: Client,
        isHeadRequest: Bool = false,
        dpopNonce: String? = nil,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) -> HeadAction {
        let code = head.status.code
        if code == 100 { return .skip }
        if !head.isChecked {
            // An h2c stream's answer, which no HTTP/1.1 parser read.
            let nio = head.nioHead
            if let problem = UpstreamResponseFraming.problem(nio) { return .refuse(reason: problem) }
            guard HTTPQuoting.areValidToSend(nio.headers) else { return .refuse(reason: "invalid_response_header") }
        }
        let switches = code == 101
        if switches && !acceptsSwitch(head, asked: upgradeProtocols) {
            // A 101 nobody asked for, or to another protocol than the one asked for (an h2c
            // tunnel): neither connection can be trusted to speak HTTP/1.1 any more.
            return .refuse(reason: "unrequested_upgrade")
        }
        // An upstream that closes after this answer (`Connection: close`, HTTP/1.0) must not go
        // back to the pool, or the next request would meet a closing connection; nor one that was
        // asked to upgrade and did not (its parser may have stopped).
        let reusable = head.isKeepAlive && upgradeProtocols == nil
        guard client != .http2 else {
            return .relay(
                Relayed(
                    part: .http2Head(http2Block(head, dpopNonce: dpopNonce)),
                    switchesProtocols: false,
                    upstreamReusable: reusable,
                    closesClient: false
                )
            )
        }
        let mayHaveBody = !isHeadRequest && code >= 200 && code != 204 && code != 304
        var closes = !clientKeepAlive && !switches
        var chunked = false
        var addsChunked = false
        var keepsTransferEncoding = false
        switch head.framing {
        case .length:
            break
        case .chunked:
            if client == .http1_1 {
                keepsTransferEncoding = true
                chunked = mayHaveBody
            } else if mayHaveBody {
                closes = true
            }
        case .unstated:
            if mayHaveBody && !switches {
                if client == .http1_1 {
                    addsChunked = true
                    chunked = true
                } else {
                    closes = true
                }
            }
        }
        let connectionNamed = head.connectionNamesOthers ? connectionOptions(head.headers) : []

        // The answer's head is at most the upstream's (less its version), 56 bytes Tollgate adds
        // and a DPoP nonce's line; it is written with one access to the buffer.
        let room = 64 + (dpopNonce.map { $0.utf8.count + 14 } ?? 0)
        var out = allocator.buffer(capacity: head.bytes.readableBytes + room)
        head.bytes.withUnsafeReadableBytes { raw in
            out.writeWithUnsafeMutableBytes(minimumWritableBytes: raw.count + room) { destination in
                var writer = HeadWriter(destination)
                // `HTTP/1.x 200 OK\r\n`: the code, then the phrase (RFC 9112 §4 wants the space
                // even when there is none).
                writer.put("HTTP/1.1 ")
                writer.put(raw[9..<12])
                writer.put(byte: .space)
                if raw[12] == .space {
                    writer.put(raw[13..<head.fieldsStart])
                } else {
                    writer.put("\r\n")
                }
                var runStart = 0
                var runEnd = 0
                for field in head.fields {
                    let name = raw[Int(field.lineStart)..<Int(field.nameEnd)]
                    let keep: Bool
                    switch HeaderName(utf8: name) {
                    case .upgrade:
                        keep = switches
                    case .hopByHop, .connection, .te, .trailer:
                        // `Trailer` is end to end in RFC 9110, but the trailers it announces are
                        // relayed only over HTTP/2, which does not need it.
                        keep = false
                    default:
                        if name.count == 14, name.equalsIgnoringASCIICase(HTTP1Syntax.contentLength) {
                            keep = true
                        } else if name.count == 17, name.equalsIgnoringASCIICase(HTTP1Syntax.transferEncoding) {
                            keep = keepsTransferEncoding
                        } else if dpopNonce != nil, name.count == 10, name.equalsIgnoringASCIICase(Self.dpopNonceName) {
                            keep = false
                        } else {
                            keep =
                                connectionNamed.isEmpty
                                || !connectionNamed.contains { name.equalsIgnoringASCIICase($0.utf8) }
                        }
                    }
                    if keep {
                        if runEnd != Int(field.lineStart) {
                            writer.put(raw[runStart..<runEnd])
                            runStart = Int(field.lineStart)
                        }
                        runEnd = Int(field.lineEnd)
                    }
                }
                writer.put(raw[runStart..<runEnd])
                if switches {
                    writer.put("Connection: upgrade\r\n")
                } else if closes {
                    writer.put("Connection: close\r\n")
                } else if client == .http1_0 {
                    // An HTTP/1.0 client keeps the connection only when told so (RFC 9112
                    // §C.2.2), as nginx tells it.
                    writer.put("Connection: keep-alive\r\n")
                }
                if addsChunked { writer.put("Transfer-Encoding: chunked\r\n") }
                if let dpopNonce {
                    writer.put("DPoP-Nonce: ")
                    for byte in dpopNonce.utf8 { writer.put(byte: byte) }
                    writer.put("\r\n")
                }
                writer.put("\r\n")
                return writer.count
            }
        }
        return .relay(
            Relayed(
                part: .relayedHead(out, chunked: chunked),
                switchesProtocols: switches,
                upstreamReusable: reusable,
                closesClient: closes && !switches
            )
        )
    }

    /// A 101 is relayed only for an upgrade the route allowed, to one protocol the client asked for.
    static func acceptsSwitch(_ head: ResponseHead, asked: [String]?) -> Bool {
        guard let asked else { return false }
        let chosen = head.values(name: "upgrade").flatMap { $0.split(separator: ",") }.map {
            ($0.trimmingSpaces().split(separator: "/", maxSplits: 1).first ?? "").lowercased()
        }
        return chosen.count == 1 && asked.contains(chosen[0])
    }
}
