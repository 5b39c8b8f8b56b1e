import NIOHTTP1

/// What RFC 9112 makes a proxy refuse or rewrite in a request head before anything else looks at
/// it, and the few facts about the head the rest of the pipeline needs.
package struct CheckedRequestHead {
    /// The target in origin form (an absolute-form target's path and query).
    package var target: String
    /// An absolute-form target's authority, which replaces `Host` (RFC 9112 §3.2.2).
    package var authority: String?
    /// NIO's decoder stops parsing after this request (it asks to upgrade, or is CONNECT): unless
    /// the connection is relayed, the decoder has to be replaced to read the next request.
    package var decoderStops: Bool
    /// The lower-cased protocol names of `Upgrade` when `Connection` names `upgrade`.
    package var upgradeProtocols: [String]
    /// The request carries `TE: trailers` (gRPC): its trailers are kept, with the spoofable
    /// names removed; every other request's trailers are dropped.
    package var acceptsTrailers: Bool

    /// The lower-cased options the client's `Connection` lists (other than `close`,
    /// `keep-alive` and `upgrade`): the headers they name are removed on the way upstream.
    package var connectionNamed: [String]

    /// `check(_:isHTTP2:)` for a head given as NIO's type.
    package static func check(_ head: HTTPRequestHead, isHTTP2: Bool) -> Result<CheckedRequestHead, GateError> {
        check(RequestHead(head), isHTTP2: isHTTP2)
    }

    /// - Returns: the checked head, or the refusal (always answered with a close).
    package static func check(_ head: RequestHead, isHTTP2: Bool) -> Result<CheckedRequestHead, GateError> {
        var hosts = 0
        var host: String?
        var transferEncoding = false
        var connectionUpgrade = false
        var proxyConnectionUpgrade = false
        var hasUpgradeHeader = false
        var upgrade: [String] = []
        var acceptsTrailers = false
        var connectionNamed: [String] = []
        head.forEachField { _, name, value in
            switch HeaderName(utf8: name) {
            case .host:
                hosts += 1
                host = value.string
            case .connection:
                let options = ConnectionOptions(value)
                if options.upgrade { connectionUpgrade = true }
                if !options.namesOthers && !options.trailers { break }
                for item in value.string.split(separator: ",") {
                    let option = item.trimmingSpaces().lowercased()
                    if !option.isEmpty, option != "keep-alive", option != "close", option != "upgrade" {
                        connectionNamed.append(option)
                    }
                }
            case .hopByHop:
                // llhttp reads Proxy-Connection as Connection: mirror it, or the decoder could stop
                // without this check knowing.
                if name.equalsLowercased("proxy-connection"), ConnectionOptions(value).upgrade {
                    proxyConnectionUpgrade = true
                }
            case .upgrade:
                let value = value.string
                if !value.trimmingSpaces().isEmpty { hasUpgradeHeader = true }
                for item in value.split(separator: ",") {
                    let name = item.trimmingSpaces()
                    let bare = name.split(separator: "/", maxSplits: 1).first ?? name
                    if !bare.isEmpty { upgrade.append(bare.lowercased()) }
                }
            case .te:
                if ConnectionOptions(value).trailers { acceptsTrailers = true }
            default:
                if name.equalsLowercased("transfer-encoding") { transferEncoding = true }
            }
            return true
        }
        // CONNECT would make the decoder read what follows as another protocol: a tunnel.
        if head.method == .CONNECT { return .failure(GateError(.malformedRequest, "CONNECT is not proxied")) }
        // RFC 9112 §3.2: a second Host, or none in an HTTP/1.1 request, is a 400.
        if hosts > 1 { return .failure(GateError(.malformedRequest, "more than one Host header")) }
        if let host, !isValidAuthority(host) { return .failure(GateError(.malformedRequest, "invalid Host header")) }
        if !isHTTP2 && head.version == .http1_1 && host == nil {
            return .failure(GateError(.malformedRequest, "an HTTP/1.1 request without Host"))
        }
        // An HTTP/2 request may leave out `:authority` (RFC 9113 §8.3.1), but the HTTP/1.1
        // upstream it goes to needs a Host.
        if isHTTP2 && host == nil {
            return .failure(GateError(.malformedRequest, "an HTTP/2 request without :authority or Host"))
        }
        // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means the framing is faulty.
        if !isHTTP2 && head.version.major == 1 && head.version.minor == 0 && transferEncoding {
            return .failure(GateError(.malformedRequest, "Transfer-Encoding in an HTTP/1.0 request"))
        }
        var target = head.uri
        var authority: String?
        if !target.hasPrefix("/") && !isHTTP2 && target != "*" {
            switch absoluteForm(target) {
            case .some(let parts):
                // RFC 9112 §3.2.2 lets the target's authority override Host; a gateway in front that
                // routes by Host and an upstream that reads the target would then disagree on
                // which service the request is for, so the two must name the same one (and Host
                // must be there, HTTP/1.0 included). The scheme's default port may be spelt in one
                // and not the other (RFC 3986 §6.2.3).
                guard let host,
                    Self.withoutDefaultPort(host, https: parts.https).caseInsensitiveEquals(
                        Self.withoutDefaultPort(parts.authority, https: parts.https)
                    )
                else {
                    return .failure(GateError(.malformedRequest, "an absolute-form target for another host than Host"))
                }
                target = parts.target
                authority = parts.authority
            case .none:
                return .failure(GateError(.malformedRequest, "the request target is neither origin nor absolute form"))
            }
        }
        // llhttp stops after a request with a non-empty Upgrade header and a Connection (or
        // Proxy-Connection) naming `upgrade` (DecoderAgreementTests holds the two together). Only
        // Connection asks for an upgrade Tollgate would relay.
        let decoderStops = !isHTTP2 && (connectionUpgrade || proxyConnectionUpgrade) && hasUpgradeHeader
        // RFC 9110 §7.8: Upgrade in an HTTP/1.0 request is ignored.
        let upgrades = head.version.major > 1 || head.version.minor >= 1
        return .success(
            CheckedRequestHead(
                target: target,
                authority: authority,
                decoderStops: decoderStops,
                upgradeProtocols: connectionUpgrade && upgrades ? upgrade : [],
                acceptsTrailers: acceptsTrailers,
                connectionNamed: connectionNamed
            )
        )
    }

    /// Whether the comma-separated `value` has `token` as an element (case-insensitive).
    static func listContains(_ value: String, _ token: String) -> Bool {
        value.split(separator: ",").contains { $0.trimmingSpaces().caseInsensitiveEquals(token) }
    }

    /// `http://authority/path?query` (RFC 9112 §3.2.2): the authority (no userinfo), the
    /// origin-form rest, `/` when the path is empty, and whether the scheme is `https`.
    static func absoluteForm(_ target: String) -> (authority: String, target: String, https: Bool)? {
        let rest: Substring
        let https: Bool
        if target.utf8.count > 7, target.prefix(7).caseInsensitiveEquals("http://") {
            rest = target.dropFirst(7)
            https = false
        } else if target.utf8.count > 8, target.prefix(8).caseInsensitiveEquals("https://") {
            rest = target.dropFirst(8)
            https = true
        } else {
            return nil
        }
        let end = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        let authority = String(rest[..<end])
        guard !authority.isEmpty, isValidAuthority(authority) else { return nil }
        var path = String(rest[end...])
        if !path.hasPrefix("/") { path = "/" + path }
        return (authority, path, https)
    }

    /// `authority` without an empty port or the scheme's default one (`:80`, `:443`), which
    /// name the same origin as no port (RFC 3986 §6.2.3).
    static func withoutDefaultPort(_ authority: String, https: Bool) -> Substring {
        var value = authority[...]
        for suffix in [https ? ":443" : ":80", ":"] where value.hasSuffix(suffix) {
            value = value.dropLast(suffix.utf8.count)
            break
        }
        return value
    }

    /// RFC 9112 §3.2 / RFC 3986 §3.2.2: `host [":" port]`, where host is a reg-name or an IP
    /// literal in brackets; no userinfo, no path, no blanks.
    package static func isValidAuthority(_ value: String) -> Bool {
        var bytes = Array(value.utf8)[...]
        if bytes.isEmpty { return true }
        if bytes.first == UInt8(ascii: "[") {
            guard let close = bytes.firstIndex(of: UInt8(ascii: "]")) else { return false }
            let literal = bytes[bytes.index(after: bytes.startIndex)..<close]
            guard !literal.isEmpty,
                literal.allSatisfy({ isHex($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") })
            else { return false }
            bytes = bytes[bytes.index(after: close)...]
        } else {
            let end = bytes.firstIndex(of: UInt8(ascii: ":")) ?? bytes.endIndex
            for byte in bytes[..<end] where !isRegNameByte(byte) { return false }
            bytes = bytes[end...]
        }
        guard let colon = bytes.first else { return true }
        guard colon == UInt8(ascii: ":") else { return false }
        let port = bytes.dropFirst()
        return port.count <= 5 && port.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }

    private static func isHex(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
            || (byte | 0x20 >= UInt8(ascii: "a") && byte | 0x20 <= UInt8(ascii: "f"))
    }

    /// unreserved / pct-encoded / sub-delims (RFC 3986 §3.2.2).
    private static func isRegNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "%"),
            UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("),
            UInt8(ascii: ")"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"),
            UInt8(ascii: "="):
            return true
        default:
            return false
        }
    }
}
