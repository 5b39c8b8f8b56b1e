import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import TollgateProxy

/// The proxy's response parser against NIO's `HTTPResponseDecoder` (llhttp) on one corpus of
/// valid and hostile upstream answers: both accept or refuse alike and agree on every parsed
/// field, except where the proxy refuses on purpose, each such case named with its rule.
@Suite struct HTTP1ResponseDifferentialTests {
    enum Outcome: Equatable, CustomStringConvertible {
        case refused
        case parsed([Message])

        var description: String {
            switch self {
            case .refused: "refused"
            case .parsed(let messages): messages.map(\.description).joined(separator: " | ")
            }
        }
    }

    struct Message: Equatable, CustomStringConvertible {
        var status: Int
        var reason: String
        var version: HTTPVersion
        var headers: [[String]]
        var body: [UInt8] = []
        var trailers: [[String]]?
        var ended = false

        init(_ head: HTTPResponseHead) {
            status = Int(head.status.code)
            reason = head.status.reasonPhrase
            version = head.version
            headers = head.headers.map { [$0.name, $0.value] }
        }

        var description: String {
            "\(status) \(reason) \(version) \(headers) body=\(body.count) trailers=\(trailers ?? []) ended=\(ended)"
        }
    }

    static func take(_ part: HTTPClientResponsePart, into messages: inout [Message]) {
        switch part {
        case .head(let head): messages.append(Message(head))
        case .body(let body): messages[messages.count - 1].body += body.readableBytesView
        case .end(let trailers):
            messages[messages.count - 1].ended = true
            messages[messages.count - 1].trailers = trailers.map { $0.map { [$0.name, $0.value] } }
        }
    }

    /// Both decoders see the stream as the answers to `methods`, then the input's end.
    static func ours(_ bytes: [UInt8], _ methods: [HTTPMethod]) -> Outcome {
        var parser = HTTP1ResponseParser(limits: .init(maximumHeadBytes: 80 * 1024, maximumTrailerBytes: 80 * 1024))
        for method in methods { parser.expectResponse(to: method) }
        var buffer = ByteBuffer(bytes: bytes)
        var messages: [Message] = []
        do {
            while case .part(let part) = try parser.next(&buffer) {
                take(
                    {
                        switch part {
                        case .head(let head): .head(head.nioHead)
                        case .body(let body): .body(body)
                        case .end(let trailers): .end(trailers)
                        }
                    }(),
                    into: &messages
                )
            }
            if let last = try parser.inputClosed() {
                if case .end(let trailers) = last { take(.end(trailers), into: &messages) }
            }
        } catch {
            return .refused
        }
        return .parsed(messages)
    }

    static func nios(_ bytes: [UInt8], _ methods: [HTTPMethod]) -> Outcome {
        let channel = EmbeddedChannel()
        var messages: [Message] = []
        do {
            try channel.pipeline.syncOperations.addHandler(HTTPRequestEncoder())
            try channel.pipeline.syncOperations.addHandler(
                ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes))
            )
            for method in methods {
                let head = HTTPRequestHead(version: .http1_1, method: method, uri: "/")
                try channel.writeOutbound(HTTPClientRequestPart.head(head))
                try channel.writeOutbound(HTTPClientRequestPart.end(nil))
            }
            try channel.writeInbound(ByteBuffer(bytes: bytes))
            while let part = try channel.readInbound(as: HTTPClientResponsePart.self) { take(part, into: &messages) }
            _ = try channel.finish()
            while let part = try channel.readInbound(as: HTTPClientResponsePart.self) { take(part, into: &messages) }
        } catch {
            return .refused
        }
        return .parsed(messages)
    }

    static let valid: [(String, [HTTPMethod])] = [
        ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", [.GET]),
        ("HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n", [.GET]),
        ("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc", [.GET]),
        ("HTTP/1.1 200 OK\r\nX-Empty:\r\nX-Inner: a  b\r\nX-Name: Zoë\r\nContent-Length: 0\r\n\r\n", [.GET]),
        ("HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n", [.GET]),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", [.GET]),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\nA;x=1\r\n0123456789\r\n0\r\n\r\n", [.GET]),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\ngrpc-status: 0\r\nX-B: 2\r\n\r\n",
            [.GET]
        ),
        ("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the close", [.GET]),
        ("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", [.HEAD]),
        ("HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", [.GET, .GET]),
        ("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx", [.POST]),
        ("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb", [.GET, .GET]),
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", [.GET]),
        ("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Length: 4\r\n\r\nbusy", [.GET]),
    ]

    /// Answers the proxy refuses though llhttp takes them, each with the rule the refusal applies.
    static let refusedOnPurpose: [String: String] = [
        "Content_Length":
            "RFC 9112 §11.2 (smuggling): a client behind the proxy that maps names CGI-style would frame the body by it",
        "Transfer_Encoding": "RFC 9112 §11.2 (smuggling): as Content_Length",
        "gzip before chunked":
            "RFC 9112 §6.3: a final coding other than chunked leaves the body to the close, which a pooled connection must never do silently",
        "Transfer-Encoding in HTTP/1.0":
            "RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message MUST be treated as faulty framing",
        "status 600": "RFC 9110 §15: status codes run from 100 to 599",
        "status 099": "RFC 9110 §15: status codes run from 100 to 599",
        "an empty line before the status line":
            "RFC 9112 §2.2: only a server skips empty lines, before a request line; an answer starts with its status line",
    ]

    @Test(arguments: valid)
    func validAnswersParseTheSameInBoth(_ text: String, _ methods: [HTTPMethod]) {
        let bytes = Array(text.utf8)
        let ours = Self.ours(bytes, methods)
        let nio = Self.nios(bytes, methods)
        #expect(ours != .refused, "refused: \(text.debugDescription)")
        #expect(ours == nio, "\(text.debugDescription)\nours: \(ours)\nNIO:  \(nio)")
    }

    @Test(arguments: HTTP1ResponseParserTests.refused)
    func hostileAnswersAreRefusedByUsAndLlhttpEitherAgreesOrTheRuleIsNamed(_ name: String, _ text: String) {
        let bytes = Array(text.utf8)
        #expect(Self.ours(bytes, [.GET]) == .refused, "\(name) accepted")
        let nio = Self.nios(bytes, [.GET])
        if nio == .refused {
            #expect(Self.refusedOnPurpose[name] == nil, "llhttp refuses \(name) too: no exception to name")
        } else {
            let rule = Self.refusedOnPurpose[name]
            #expect(rule?.hasPrefix("RFC") == true, "llhttp accepts \(name) as \(nio) and no rule is named")
        }
    }
}
