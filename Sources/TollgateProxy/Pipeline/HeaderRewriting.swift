import NIOCore
import NIOHTTP1
import TollgateCore

/// The header names the rewriting treats specially, recognised from the name's bytes without
/// lower-casing it (an allocation per header on the hot path otherwise).
enum HeaderName {
    case other
    /// RFC 9110 §7.6.1: describes one connection, never crosses a proxy.
    case hopByHop
    case connection
    case upgrade
    case te
    case host
    case forwardedFor
    case forwardedProto
    case forwardedHost
    /// `Forwarded`, `X-Real-IP`: kept only from a trusted peer.
    case forwardedOther
    /// `X-Request-Id`, `traceparent`: Tollgate sets its own.
    case tracing
    /// `X-HTTP-Method-Override`, `X-Original-URL` and the like: an upstream framework that
    /// honours them would serve another method or path than the one authorised.
    case override
    /// `Trailer` (end to end, RFC 9110 §6.6.2): goes with the trailers it announces.
    case trailer

    /// `_` counts as `-`: CGI, PHP, WSGI and Rack read `X_Forwarded_For` as `X-Forwarded-For`.
    init(_ name: String) {
        var name = name
        self = name.withUTF8 { HeaderName(utf8: UnsafeRawBufferPointer($0)[...]) }
    }

    /// From the name's bytes, as a request head holds them.
    init(utf8 slice: Slice<UnsafeRawBufferPointer>) {
        // Rebased once: a slice's `count` and contiguous view go through generic code.
        let name = UnsafeRawBufferPointer(rebasing: slice)
        func named(_ lower: StaticString) -> Bool {
            name.equalsIgnoringASCIICase(HTTP1Syntax.ascii(lower), underscoreAsHyphen: true)
        }
        switch name.count {
        case 2: self = named("te") ? .te : .other
        case 4: self = named("host") ? .host : .other
        case 7: self = named("upgrade") ? .upgrade : named("trailer") ? .trailer : .other
        case 9: self = named("forwarded") || named("x-real-ip") ? .forwardedOther : .other
        case 10: self = named("connection") ? .connection : named("keep-alive") ? .hopByHop : .other
        case 11: self = named("traceparent") ? .tracing : .other
        case 12: self = named("x-request-id") ? .tracing : .other
        case 13: self = named("x-http-method") || named("x-rewrite-url") ? .override : .other
        // HTTP2-Settings belongs to an h2c upgrade, which is never forwarded.
        case 14:
            self =
                named("http2-settings")
                ? .hopByHop : named("x-original-url") || named("x-original-uri") ? .override : .other
        case 15: self = named("x-forwarded-for") ? .forwardedFor : .other
        case 16:
            self = named("x-forwarded-host") ? .forwardedHost : named("proxy-connection") ? .hopByHop : .other
        case 17:
            self = named("x-forwarded-proto") ? .forwardedProto : named("x-method-override") ? .override : .other
        case 22: self = named("x-http-method-override") ? .override : .other
        case 18:
            self = named("proxy-authenticate") ? .hopByHop : named("x-forwarded-prefix") ? .override : .other
        case 19: self = named("proxy-authorization") ? .hopByHop : .other
        default: self = .other
        }
    }
}

/// The lower-cased names listed in `Connection:` values, leaving out `keep-alive` and `close`
/// (the common values, which name nothing that is not removed anyway).
func connectionOptions(_ headers: HTTPHeaders) -> [String] {
    var names: [String] = []
    for (name, value) in headers where HeaderName(name) == .connection {
        if value.utf8.equalsIgnoringASCIICase("keep-alive".utf8) || value.utf8.equalsIgnoringASCIICase("close".utf8) {
            continue
        }
        for item in value.split(separator: ",") {
            let option = item.trimmingSpaces().lowercased()
            if !option.isEmpty, option != "keep-alive", option != "close" { names.append(option) }
        }
    }
    return names
}

/// Connection-level facts the rewriting needs.
struct ClientConnection {
    /// The peer's IP address as text (`unknown` without one).
    var peerAddress: String
    var peerTrusted: Bool
    /// `https` when Tollgate terminated TLS.
    var scheme: String
}

extension RequestPipeline {
    /// The head the upstream receives (step 4 and 7), written by copying the client's field
    /// lines it keeps, in runs, and adding Tollgate's own: hop-by-hop headers and whatever the
    /// client's `Connection:` names removed (never the headers Tollgate sets itself), spoofable
    /// claim headers removed in every spelling, `X-Forwarded-*` set, claims added. `target` is
    /// `basePath` and `requestTarget` joined.
    func upstreamHead(
        from incoming: RequestHead,
        basePath: String = "",
        requestTarget: String,
        token: VerifiedToken?,
        connection: ClientConnection,
        requestID: String,
        traceparent: String,
        isUpgrade: Bool,
        allowsOverrideHeaders: Bool = false,
        keepsToken: Bool = true,
        keepsAcceptEncoding: Bool = true,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) -> Result<UpstreamRequestHead, ClaimHeaderMapping.Failure> {
        var claimHeaders: [(name: String, value: String)] = []
        if let token {
            switch snapshot.configuration.forward.headers(for: token) {
            case .success(let headers): claimHeaders = headers
            case .failure(let failure): return .failure(failure)
            }
        }
        var connectionNamed = incoming.connectionNamed
        if !connectionNamed.isEmpty { connectionNamed.removeAll { snapshot.protectedHeaders.contains($0) } }
        let authority = incoming.authority
        let framing: UpstreamRequestHead.Framing
        var addsChunked = false
        switch incoming.framing {
        case .length: framing = .length
        case .chunked: framing = .chunked
        case .none:
            switch incoming.method {
            case .POST, .PUT, .PATCH:
                // A body stated by neither (an HTTP/2 client's) goes chunked, as NIO sends it.
                addsChunked = true
                framing = .chunked
            default:
                framing = .none
            }
        }

        var out = allocator.buffer(capacity: incoming.bytes.readableBytes + requestTarget.utf8.count + 320)
        out.writeRequestLine(incoming.method.rawValue, basePath, requestTarget)
        var forwardedFor: String?
        var forwardedProto: String?
        var forwardedHost: String?
        let trusted = connection.peerTrusted
        incoming.bytes.withUnsafeReadableBytes { raw in
            // A run of kept lines is copied with one write.
            var runStart = 0
            var runEnd = 0
            var host: Slice<UnsafeRawBufferPointer>?
            for field in incoming.fields {
                let name = raw[Int(field.lineStart)..<Int(field.nameEnd)]
                let value = raw[Int(field.valueStart)..<Int(field.valueEnd)]
                let keep: Bool
                switch HeaderName(utf8: name) {
                case .forwardedFor:
                    if trusted { forwardedFor = forwardedFor.map { $0 + ", " + value.string } ?? value.string }
                    keep = false
                case .forwardedProto:
                    if trusted { forwardedProto = value.string }
                    keep = false
                case .forwardedHost:
                    if trusted { forwardedHost = value.string }
                    keep = false
                case .forwardedOther:
                    keep = trusted
                case .tracing, .hopByHop, .connection:
                    keep = false
                case .trailer:
                    // The request's trailers are dropped unless it asked for them (`TE: trailers`).
                    keep = incoming.acceptsTrailers
                case .host:
                    // Absolute form: the target's authority stands in for Host (RFC 9112 §3.2.2).
                    if authority == nil { host = value }
                    keep = authority == nil
                case .override:
                    keep = allowsOverrideHeaders
                case .upgrade:
                    keep = isUpgrade
                case .te:
                    // `TE: trailers` is the one TE value HTTP/2 allows, and gRPC requires it end to end.
                    keep = value.equalsIgnoringASCIICase(HTTP1Syntax.trailers)
                case .other:
                    if !keepsToken && name.equalsIgnoringASCIICase(snapshot.tokenHeaderLowercased.utf8) {
                        // No token passthrough to a protected resource: the claims go as headers.
                        keep = false
                    } else if !trusted
                        && ((name.count == 11 && name.equalsIgnoringASCIICase(HTTP1Syntax.ascii("client-cert")))
                            || (name.count == 17
                                && name.equalsIgnoringASCIICase(HTTP1Syntax.ascii("client-cert-chain"))))
                    {
                        // RFC 9440: a client certificate is vouched for by a trusted proxy only.
                        keep = false
                    } else if !keepsAcceptEncoding && name.count == 15
                        && name.equalsIgnoringASCIICase(HTTP1Syntax.ascii("accept-encoding"))
                    {
                        // An answer Tollgate reads (a tools/list it filters) comes uncompressed.
                        keep = false
                    } else if snapshot.configuration.forward.mustStrip(utf8: name)
                        || (!connectionNamed.isEmpty
                            && connectionNamed.contains { name.equalsIgnoringASCIICase($0.utf8) })
                    {
                        keep = false
                    } else if name.count == 14, name.equalsIgnoringASCIICase(HTTP1Syntax.contentLength) {
                        keep = framing == .length
                    } else if name.count == 17, name.equalsIgnoringASCIICase(HTTP1Syntax.transferEncoding) {
                        keep = framing == .chunked
                    } else {
                        keep = true
                    }
                }
                if keep {
                    if runEnd != Int(field.lineStart) {
                        out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[runStart..<runEnd]))
                        runStart = Int(field.lineStart)
                    }
                    runEnd = Int(field.lineEnd)
                }
            }
            out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[runStart..<runEnd]))
            if forwardedHost == nil, authority == nil, let host {
                out.writeStaticString("X-Forwarded-Host: ")
                out.writeBytes(UnsafeRawBufferPointer(rebasing: host))
                out.writeStaticString("\r\n")
            }
        }
        if let authority { out.writeField("Host", authority) }
        if let forwardedHost = forwardedHost ?? authority { out.writeField("X-Forwarded-Host", forwardedHost) }
        if isUpgrade { out.writeStaticString("Connection: upgrade\r\n") }
        if addsChunked { out.writeStaticString("Transfer-Encoding: chunked\r\n") }
        if let forwardedFor {
            out.writeStaticString("X-Forwarded-For: ")
            out.writeString(forwardedFor)
            out.writeStaticString(", ")
            out.writeString(connection.peerAddress)
            out.writeStaticString("\r\n")
        } else {
            out.writeField("X-Forwarded-For", connection.peerAddress)
        }
        out.writeField("X-Forwarded-Proto", forwardedProto ?? connection.scheme)
        out.writeField("X-Request-Id", requestID)
        out.writeField("traceparent", traceparent)
        for header in claimHeaders { out.writeField(header.name, header.value) }
        out.writeStaticString("\r\n")
        return .success(UpstreamRequestHead(method: incoming.method, bytes: out, framing: framing))
    }

    /// Request trailers that may go on (gRPC, `TE: trailers`): the spoofable names removed exactly
    /// as in the head, and everything that frames or routes a message.
    static func upstreamTrailers(from incoming: HTTPHeaders, snapshot: ProxySnapshot) -> HTTPHeaders {
        var removals: [String] = []
        for (name, _) in incoming {
            switch HeaderName(name) {
            case .other:
                if snapshot.configuration.forward.mustStrip(name)
                    || snapshot.protectedHeaders.contains(name.lowercased())
                    || name.utf8.equalsIgnoringASCIICase("authorization".utf8)
                {
                    removals.append(name)
                }
            default:
                removals.append(name)
            }
        }
        var trailers = incoming
        for name in removals { trailers.remove(name: name) }
        return trailers
    }
}

extension ByteBuffer {
    /// `name: value` and CRLF, with one access to the buffer's storage: each `write…` call checks
    /// capacity and uniqueness and costs an exclusivity check, and a head has a dozen such lines.
    mutating func writeField(_ name: String, _ value: String) {
        let total = name.utf8.count + value.utf8.count + 4
        writeWithUnsafeMutableBytes(minimumWritableBytes: total) { out in
            var at = Self.copy(name, into: out, at: 0)
            out[at] = UInt8(ascii: ":")
            out[at + 1] = UInt8(ascii: " ")
            at = Self.copy(value, into: out, at: at + 2)
            out[at] = UInt8(ascii: "\r")
            out[at + 1] = UInt8(ascii: "\n")
            return total
        }
    }

    /// `method SP basePath target SP HTTP/1.1` and CRLF, with one access to the storage.
    mutating func writeRequestLine(_ method: String, _ basePath: String, _ target: String) {
        let total = method.utf8.count + basePath.utf8.count + target.utf8.count + 11
        writeWithUnsafeMutableBytes(minimumWritableBytes: total) { out in
            var at = Self.copy(method, into: out, at: 0)
            out[at] = UInt8(ascii: " ")
            at = Self.copy(basePath, into: out, at: at + 1)
            at = Self.copy(target, into: out, at: at)
            at = Self.copy(" HTTP/1.1\r\n", into: out, at: at)
            return at
        }
    }

    /// Copies `text`'s UTF-8 into `out` from `start`; returns where it ended.
    private static func copy(_ text: String, into out: UnsafeMutableRawBufferPointer, at start: Int) -> Int {
        let copied = text.utf8.withContiguousStorageIfAvailable { bytes -> Int in
            if let base = bytes.baseAddress, bytes.count > 0 {
                (out.baseAddress! + start).copyMemory(from: base, byteCount: bytes.count)
            }
            return start + bytes.count
        }
        if let copied { return copied }
        var at = start
        for byte in text.utf8 {
            out[at] = byte
            at += 1
        }
        return at
    }
}

/// W3C Trace Context: keep a valid incoming `traceparent`, else start a trace.
enum TraceParent {
    static func isValid(_ value: String) -> Bool {
        let utf8 = Array(value.utf8)
        guard utf8.count == 55, utf8[2] == UInt8(ascii: "-"), utf8[35] == UInt8(ascii: "-"),
            utf8[52] == UInt8(ascii: "-")
        else { return false }
        for (index, byte) in utf8.enumerated() where index != 2 && index != 35 && index != 52 {
            let isHex = (byte >= 48 && byte <= 57) || (byte >= 97 && byte <= 102)
            if !isHex { return false }
        }
        // Version ff is invalid; an all-zero trace or span id is invalid.
        if utf8[0] == UInt8(ascii: "f") && utf8[1] == UInt8(ascii: "f") { return false }
        if utf8[3..<35].allSatisfy({ $0 == UInt8(ascii: "0") }) { return false }
        if utf8[36..<52].allSatisfy({ $0 == UInt8(ascii: "0") }) { return false }
        return true
    }

    static func start(using generator: inout some RandomNumberGenerator) -> String {
        let trace = (generator.next(), generator.next())
        let span = generator.next()
        return String(unsafeUninitializedCapacity: 55) { buffer in
            buffer[0] = UInt8(ascii: "0")
            buffer[1] = UInt8(ascii: "0")
            buffer[2] = UInt8(ascii: "-")
            writeHex(trace.0, into: buffer, at: 3)
            writeHex(trace.1, into: buffer, at: 19)
            buffer[35] = UInt8(ascii: "-")
            writeHex(span, into: buffer, at: 36)
            buffer[52] = UInt8(ascii: "-")
            buffer[53] = UInt8(ascii: "0")
            buffer[54] = UInt8(ascii: "1")
            return 55
        }
    }

    /// 32 lower-case hex digits.
    static func hex(_ high: UInt64, _ low: UInt64) -> String {
        String(unsafeUninitializedCapacity: 32) { buffer in
            writeHex(high, into: buffer, at: 0)
            writeHex(low, into: buffer, at: 16)
            return 32
        }
    }

    private static func writeHex(_ word: UInt64, into buffer: UnsafeMutableBufferPointer<UInt8>, at offset: Int) {
        for index in 0..<16 {
            let nibble = UInt8(truncatingIfNeeded: word >> UInt64(60 - 4 * index)) & 0xF
            buffer[offset + index] = nibble < 10 ? 48 + nibble : 87 + nibble
        }
    }
}

/// A small fast generator for request and trace ids (not for secrets), seeded from the system.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init() {
        var system = SystemRandomNumberGenerator()
        state = system.next()
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
