import FuzzSupport
import NIOCore
import NIOHTTP1
import TollgateCore
import TollgateProxy

/// A request stream as the proxy receives it: `HTTP1RequestParser`, then Tollgate's checks
/// (Host, target form) and path normalisation. Properties: no crash, no hang; the stream parses
/// to the same parts (or the same refusal after the same parts) whether it arrives at once or in
/// two pieces split where the input says; no accepted name or value holds CR, LF or NUL; body
/// bytes never outnumber the input; the fields the parser located are those a lookup by name
/// finds; an accepted head has at most one Host, one for HTTP/1.1, an origin-form target and no
/// CONNECT.
enum FuzzRequestHead {
    /// A part as compared between the two runs: the head by its fields and framing.
    enum Part: Equatable {
        case head(HTTPRequestHead, RequestHead.Framing, keepAlive: Bool)
        case body(ByteBuffer)
        case end(HTTPHeaders?)

        init(_ part: HTTP1RequestParser.Part) {
            switch part {
            case .head(let head): self = .head(head.nioHead, head.framing, keepAlive: head.isKeepAlive)
            case .body(let body): self = .body(body)
            case .end(let trailers): self = .end(trailers)
            }
        }
    }

    struct Run: Equatable {
        var parts: [Part] = []
        var heads: [RequestHead] = []
        var refused = false

        static func == (lhs: Run, rhs: Run) -> Bool { lhs.parts == rhs.parts && lhs.refused == rhs.refused }
    }

    static func run(_ pieces: [UnsafeRawBufferPointer]) -> Run {
        var parser = HTTP1RequestParser(limits: .init(maximumHeadBytes: 8192, maximumTrailerBytes: 4096))
        var buffer = ByteBuffer()
        var run = Run()
        for piece in pieces {
            buffer.writeBytes(piece)
            while true {
                do {
                    guard case .part(let parsed) = try parser.next(&buffer) else { break }
                    if case .head(let head) = parsed { run.heads.append(head) }
                    var part = Part(parsed)
                    if case .body(let body) = part {
                        // Body slices of the two runs differ in where they are cut: compare bytes.
                        if case .body(var previous)? = run.parts.last {
                            run.parts.removeLast()
                            previous.writeImmutableBuffer(body)
                            part = .body(previous)
                        }
                    }
                    run.parts.append(part)
                } catch {
                    run.refused = true
                    return run
                }
            }
        }
        return run
    }

    static func check(_ bytes: UnsafeRawBufferPointer) {
        let whole = run([bytes])
        let split = bytes.isEmpty ? 0 : Int(bytes[0]) % bytes.count
        let pieces = run([
            UnsafeRawBufferPointer(rebasing: bytes[..<split]), UnsafeRawBufferPointer(rebasing: bytes[split...]),
        ])
        require(whole == pieces, "the stream parsed differently when split at \(split)")
        var bodyBytes = 0
        for head in whole.heads {
            checkIndex(head)
            checkHead(head)
        }
        for part in whole.parts {
            switch part {
            case .head:
                break
            case .body(let body):
                bodyBytes += body.readableBytes
            case .end(let trailers):
                for (name, value) in trailers ?? [:] { requireClean(name, value) }
            }
        }
        require(bodyBytes <= bytes.count, "more body bytes than input")
    }

    static func requireClean(_ name: String, _ value: String) {
        require(
            !name.isEmpty && !name.utf8.contains { $0 <= 0x20 || $0 >= 0x7F || $0 == UInt8(ascii: ":") },
            "name \(name.debugDescription)"
        )
        require(!value.utf8.contains { $0 == 0 || $0 == 0x0A || $0 == 0x0D }, "value \(value.debugDescription)")
    }

    /// Each field's offsets lie inside the head, in order: a line holds its name, a colon and its
    /// value and ends in CRLF.
    static func checkIndex(_ head: RequestHead) {
        var previousEnd = 0
        var index = 0
        head.forEachField { _, name, value in
            require(name.startIndex >= previousEnd, "field \(index) starts before the previous one ends")
            require(
                name.endIndex < value.startIndex || name.endIndex == value.startIndex - 1 || value.isEmpty,
                "field \(index): its value does not follow its name"
            )
            require(name.base[name.endIndex] == UInt8(ascii: ":"), "field \(index): no colon after the name")
            previousEnd = value.endIndex
            index += 1
            return true
        }
        require(previousEnd <= head.bytes.readableBytes, "a field past the head")
    }

    static func checkHead(_ parsed: RequestHead) {
        let head = parsed.nioHead
        for (name, value) in head.headers { requireClean(name, value) }
        // The fields the parser located are the ones a lookup by name finds.
        let known = parsed.known
        for (position, name) in [
            (known.host, "host"), (known.authorization, "authorization"), (known.cookie, "cookie"),
            (known.requestID, "x-request-id"), (known.traceparent, "traceparent"), (known.upgrade, "upgrade"),
            (known.connection, "connection"), (known.contentLength, "content-length"),
        ] {
            require(position.count == head.headers[name].count, "\(name) counted \(position.count)")
            require(parsed.value(of: position) == head.headers.first(name: name), "\(name) located wrongly")
        }
        require(
            !head.uri.isEmpty && !head.uri.utf8.contains { $0 <= 0x20 || $0 >= 0x7F },
            "target \(head.uri.debugDescription)"
        )
        var checked = parsed
        do {
            try checked.check(isHTTP2: false)
            require(head.method != .CONNECT, "CONNECT accepted")
            require(checked.target.hasPrefix("/") || checked.target == "*", "target \(checked.target)")
            let hosts = head.headers["host"]
            require(hosts.count <= 1, "two Host headers accepted")
            if head.version == .http1_1 { require(hosts.count == 1, "HTTP/1.1 without Host accepted") }
            if let authority = checked.authority {
                require(RequestHead.isValidAuthority(authority), "authority \(authority)")
            }
            _ = PathNormalizer.normalize(checked.target)
        } catch {
            let answer = error.response(realm: "fuzz")
            require(answer.status == 400, "a malformed head answered \(answer.status)")
        }
    }
}

@main
enum Entry {
    static func main() { FuzzEntry.main(FuzzRequestHead.check) }
}

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    FuzzRequestHead.check(UnsafeRawBufferPointer(start: start, count: count))
    return 0
}
#endif
