import NIOCore
import NIOHTTP1
import TollgateCore

/// RFC 9110 §7.6.1: headers that describe one connection and never cross a proxy.
let hopByHopHeaders: Set<String> = [
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "proxy-authorization",
    "proxy-authenticate",
]

/// Connection-level facts the rewriting needs.
struct ClientConnection {
    var peer: SocketAddress?
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
        isUpgrade: Bool
    ) -> Result<HTTPHeaders, ClaimHeaderMapping.Failure> {
        var connectionNamed: [String] = []
        for value in incoming["connection"] {
            for item in value.split(separator: ",") {
                let name = item.trimmingSpaces().lowercased()
                if !name.isEmpty, !protectedHeaders.contains(name) { connectionNamed.append(name) }
            }
        }
        let mapping = configuration.forward
        var headers = HTTPHeaders()
        headers.reserveCapacity(incoming.count + mapping.entries.count + 6)
        var forwardedFor: String?
        var forwardedProto: String?
        var forwardedHost: String?
        var host: String?
        for (name, value) in incoming {
            let lower = name.lowercased()
            switch lower {
            case "x-forwarded-for":
                if connection.peerTrusted { forwardedFor = forwardedFor.map { $0 + ", " + value } ?? value }
                continue
            case "x-forwarded-proto":
                if connection.peerTrusted { forwardedProto = value }
                continue
            case "x-forwarded-host":
                if connection.peerTrusted { forwardedHost = value }
                continue
            case "forwarded", "x-real-ip":
                if !connection.peerTrusted { continue }
            case "x-request-id", "traceparent":
                continue
            case "host":
                host = value
            case "upgrade":
                if isUpgrade {
                    headers.add(name: name, value: value)
                }
                continue
            default:
                break
            }
            // `TE: trailers` is the one TE value HTTP/2 allows, and gRPC requires it end to end.
            if lower == "te", value.lowercased() == "trailers" {
                headers.add(name: name, value: value)
                continue
            }
            if hopByHopHeaders.contains(lower) || mapping.mustStrip(name) { continue }
            if !connectionNamed.isEmpty, connectionNamed.contains(lower) { continue }
            headers.add(name: name, value: value)
        }
        if isUpgrade { headers.add(name: "Connection", value: "upgrade") }
        let peerAddress = connection.peer?.ipAddress ?? "unknown"
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

    /// The headers the client receives from the upstream's response: hop-by-hop ones removed.
    static func downstreamHeaders(from incoming: HTTPHeaders, isUpgrade: Bool) -> HTTPHeaders {
        var connectionNamed: [String] = []
        for value in incoming["connection"] {
            for item in value.split(separator: ",") { connectionNamed.append(item.trimmingSpaces().lowercased()) }
        }
        var headers = HTTPHeaders()
        headers.reserveCapacity(incoming.count)
        for (name, value) in incoming {
            let lower = name.lowercased()
            if isUpgrade && lower == "upgrade" {
                headers.add(name: name, value: value)
                continue
            }
            if hopByHopHeaders.contains(lower) { continue }
            if !connectionNamed.isEmpty, connectionNamed.contains(lower), lower != "content-length",
                lower != "transfer-encoding"
            {
                continue
            }
            headers.add(name: name, value: value)
        }
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
        "00-" + hex(generator.next(), generator.next()) + "-" + hex(generator.next()) + "-01"
    }

    static func hex(_ words: UInt64...) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(words.count * 16)
        for word in words {
            for shift in stride(from: 60, through: 0, by: -4) {
                bytes.append(digits[Int((word >> UInt64(shift)) & 0xF)])
            }
        }
        return String(decoding: bytes, as: UTF8.self)
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
