import NIOHTTP1

/// Step 1: what RFC 9112 makes a proxy refuse or rewrite in a request head before anything else
/// looks at it, read from the fields the parser located (`known`), without walking the head again.
extension RequestHead {
    /// Refuses what no route may see, and sets `target` (origin form) and `authority` (an
    /// absolute-form target's).
    /// - Throws: the refusal, always answered with a close.
    package mutating func check(isHTTP2: Bool) throws(GateError) {
        // CONNECT would make the decoder read what follows as another protocol: a tunnel.
        if method == .CONNECT { throw GateError(.malformedRequest, "CONNECT is not proxied") }
        // RFC 9112 §3.2: a second Host, or none in an HTTP/1.1 request, is a 400.
        if known.host.count > 1 { throw GateError(.malformedRequest, "more than one Host header") }
        let hostIndex = known.host.first
        if let hostIndex, !withValue(at: hostIndex, Self.isValidAuthority) {
            throw GateError(.malformedRequest, "invalid Host header")
        }
        if !isHTTP2 && version == .http1_1 && hostIndex == nil {
            throw GateError(.malformedRequest, "an HTTP/1.1 request without Host")
        }
        // An HTTP/2 request may leave out `:authority` (RFC 9113 §8.3.1), but the HTTP/1.1
        // upstream it goes to needs a Host.
        if isHTTP2 && hostIndex == nil {
            throw GateError(.malformedRequest, "an HTTP/2 request without :authority or Host")
        }
        // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means the framing is faulty (the parser
        // refuses it already; a head built another way is held to the same rule).
        if !isHTTP2 && version.major == 1 && version.minor == 0 && known.transferEncoding.count > 0 {
            throw GateError(.malformedRequest, "Transfer-Encoding in an HTTP/1.0 request")
        }
        absoluteForm = nil
        if uri.utf8.first != UInt8(ascii: "/") && !isHTTP2 && uri != "*" {
            guard let parts = Self.absoluteForm(uri) else {
                throw GateError(.malformedRequest, "the request target is neither origin nor absolute form")
            }
            // RFC 9112 §3.2.2 lets the target's authority override Host; a gateway in front that
            // routes by Host and an upstream that reads the target would then disagree on which
            // service the request is for, so the two must name the same one (and Host must be
            // there, HTTP/1.0 included). The scheme's default port may be spelt in one and not
            // the other (RFC 3986 §6.2.3).
            guard let host = value(of: known.host),
                Self.withoutDefaultPort(host, https: parts.https).utf8.equalsIgnoringASCIICase(
                    Self.withoutDefaultPort(parts.authority, https: parts.https).lowercased().utf8
                )
            else {
                throw GateError(.malformedRequest, "an absolute-form target for another host than Host")
            }
            absoluteForm = AbsoluteForm(authority: parts.authority, target: parts.target)
        }
    }

    /// The lower-cased protocol names of `Upgrade` when `Connection` names `upgrade` (RFC 9110
    /// §7.8: ignored in an HTTP/1.0 request).
    package var upgradeProtocols: [String] {
        guard known.connectionUpgrade, known.upgrade.count > 0, version.major > 1 || version.minor >= 1 else {
            return []
        }
        var protocols: [String] = []
        for value in values(name: "upgrade") {
            for item in value.split(separator: ",") {
                let name = item.trimmingSpaces()
                let bare = name.split(separator: "/", maxSplits: 1).first ?? name
                if !bare.isEmpty { protocols.append(bare.lowercased()) }
            }
        }
        return protocols
    }

    /// The request carries `TE: trailers` (gRPC): its trailers are kept, with the spoofable
    /// names removed; every other request's trailers are dropped.
    package var acceptsTrailers: Bool { known.acceptsTrailers }

    /// The lower-cased options the client's `Connection` lists (other than `close`,
    /// `keep-alive` and `upgrade`): the headers they name are removed on the way upstream.
    package var connectionNamed: [String] {
        guard known.connectionNamesFields else { return [] }
        var named: [String] = []
        for value in values(name: "connection") {
            for item in value.split(separator: ",") {
                let option = item.trimmingSpaces().lowercased()
                if !option.isEmpty, option != "keep-alive", option != "close", option != "upgrade" {
                    named.append(option)
                }
            }
        }
        return named
    }

    /// `http://authority/path?query` (RFC 9112 §3.2.2): the authority (no userinfo), the
    /// origin-form rest, `/` when the path is empty, and whether the scheme is `https`.
    static func absoluteForm(_ target: String) -> (authority: String, target: String, https: Bool)? {
        let rest: Substring
        let https: Bool
        if target.utf8.count > 7, target.utf8.prefix(7).equalsIgnoringASCIICase("http://".utf8) {
            rest = target.dropFirst(7)
            https = false
        } else if target.utf8.count > 8, target.utf8.prefix(8).equalsIgnoringASCIICase("https://".utf8) {
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
        var value = value
        return value.withUTF8 { isValidAuthority(UnsafeRawBufferPointer($0)[...]) }
    }

    /// `isValidAuthority(_:)` over the bytes of a field as received.
    static func isValidAuthority(_ value: UnsafeRawBufferPointer.SubSequence) -> Bool {
        var bytes = value
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
