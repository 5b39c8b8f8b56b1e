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
        func named(_ lower: String) -> Bool { name.caseInsensitiveEqualsFoldingUnderscore(lower) }
        switch name.utf8.count {
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
        if value.caseInsensitiveEquals("keep-alive") || value.caseInsensitiveEquals("close") { continue }
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

extension ProxySnapshot {
    /// The headers the upstream receives (step 4 and 7): hop-by-hop headers and whatever the
    /// client's `Connection:` names removed (never the headers Tollgate sets itself), spoofable
    /// claim headers removed in every spelling, `X-Forwarded-*` set, claims added.
    func upstreamHeaders(
        from incoming: HTTPHeaders,
        token: VerifiedToken?,
        connection: ClientConnection,
        requestID: String,
        traceparent: String,
        isUpgrade: Bool,
        authority: String? = nil,
        allowsOverrideHeaders: Bool = false
    ) -> Result<HTTPHeaders, ClaimHeaderMapping.Failure> {
        let teTrailersRequested = incoming["te"].contains { CheckedRequestHead.listContains($0, "trailers") }
        var connectionNamed = connectionOptions(incoming)
        if !connectionNamed.isEmpty { connectionNamed.removeAll { protectedHeaders.contains($0) } }
        let mapping = configuration.forward
        // The client's headers are kept as they are and the few offending names removed, rather
        // than copied one by one (this runs on every request).
        var removals: [String] = []
        var forwardedFor: String?
        var forwardedProto: String?
        var forwardedHost: String?
        var host: String?
        var teTrailers = false
        var teOther = false
        for (name, value) in incoming {
            switch HeaderName(name) {
            case .forwardedFor:
                if connection.peerTrusted { forwardedFor = forwardedFor.map { $0 + ", " + value } ?? value }
                removals.append(name)
                continue
            case .forwardedProto:
                if connection.peerTrusted { forwardedProto = value }
                removals.append(name)
                continue
            case .forwardedHost:
                if connection.peerTrusted { forwardedHost = value }
                removals.append(name)
                continue
            case .forwardedOther:
                if !connection.peerTrusted {
                    removals.append(name)
                    continue
                }
            case .tracing, .hopByHop, .connection:
                removals.append(name)
                continue
            case .trailer:
                // The request's trailers are dropped unless it asked for them (`TE: trailers`).
                if !teTrailersRequested {
                    removals.append(name)
                    continue
                }
            case .host:
                if let authority {
                    // Absolute form: the target's authority stands in for Host (RFC 9112 §3.2.2).
                    host = authority
                    removals.append(name)
                    continue
                }
                host = value
            case .override:
                if !allowsOverrideHeaders {
                    removals.append(name)
                    continue
                }
            case .upgrade:
                if !isUpgrade { removals.append(name) }
                continue
            case .te:
                // `TE: trailers` is the one TE value HTTP/2 allows, and gRPC requires it end to end.
                if value.caseInsensitiveEquals("trailers") { teTrailers = true } else { teOther = true }
                continue
            case .other:
                break
            }
            if mapping.mustStrip(name)
                || (!connectionNamed.isEmpty && connectionNamed.contains(where: { name.caseInsensitiveEquals($0) }))
            {
                removals.append(name)
            }
        }
        var headers = incoming
        headers.reserveCapacity(incoming.count + mapping.entries.count + 6)
        for name in removals { headers.remove(name: name) }
        if teOther {
            headers.remove(name: "te")
            if teTrailers { headers.add(name: "TE", value: "trailers") }
        }
        if let authority { headers.add(name: "Host", value: authority) }
        if isUpgrade { headers.add(name: "Connection", value: "upgrade") }
        let peerAddress = connection.peerAddress
        headers.add(name: "X-Forwarded-For", value: forwardedFor.map { $0 + ", " + peerAddress } ?? peerAddress)
        headers.add(name: "X-Forwarded-Proto", value: forwardedProto ?? connection.scheme)
        if let forwardedHost = forwardedHost ?? host { headers.add(name: "X-Forwarded-Host", value: forwardedHost) }
        headers.add(name: "X-Request-Id", value: requestID)
        headers.add(name: "traceparent", value: traceparent)
        if let token {
            switch mapping.headers(for: token) {
            case .success(let claimHeaders):
                for header in claimHeaders { headers.add(name: header.name, value: header.value) }
            case .failure(let failure):
                return .failure(failure)
            }
        }
        return .success(headers)
    }

    /// Request trailers that may go on (gRPC, `TE: trailers`): the spoofable names removed exactly
    /// as in the head, and everything that frames or routes a message.
    func upstreamTrailers(from incoming: HTTPHeaders) -> HTTPHeaders {
        var removals: [String] = []
        for (name, _) in incoming {
            switch HeaderName(name) {
            case .other:
                if configuration.forward.mustStrip(name) || protectedHeaders.contains(name.lowercased())
                    || name.caseInsensitiveEquals("authorization")
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

    /// The headers the client receives from the upstream's response: hop-by-hop ones removed.
    /// The upstream's headers are kept as they are and only the few offending names removed
    /// (usually just `Connection: keep-alive`), instead of copying every header one by one.
    static func downstreamHeaders(from incoming: HTTPHeaders, isUpgrade: Bool) -> HTTPHeaders {
        let connectionNamed = connectionOptions(incoming)
        var removals: [String] = []
        for (name, _) in incoming {
            switch HeaderName(name) {
            case .upgrade:
                if !isUpgrade { removals.append(name) }
                continue
            case .hopByHop, .connection, .te, .trailer:
                // `Trailer` is end to end in RFC 9110, but the trailers it announces are relayed
                // only over HTTP/2, which does not need it.
                removals.append(name)
                continue
            default:
                break
            }
            if !connectionNamed.isEmpty, connectionNamed.contains(where: { name.caseInsensitiveEquals($0) }),
                !name.caseInsensitiveEquals("content-length"), !name.caseInsensitiveEquals("transfer-encoding")
            {
                removals.append(name)
            }
        }
        var headers = incoming
        for name in removals { headers.remove(name: name) }
        if isUpgrade { headers.add(name: "Connection", value: "upgrade") }
        return headers
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
