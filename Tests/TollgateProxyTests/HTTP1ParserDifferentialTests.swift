import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import TollgateProxy

/// The proxy's parser against NIO's `HTTPRequestDecoder` (llhttp) on one corpus of valid and
/// hostile request streams: both must accept or refuse alike and agree on every parsed field,
/// except where the proxy refuses on purpose, each such case named with the rule it applies.
@Suite struct HTTP1ParserDifferentialTests {
    /// What a decoder made of a byte stream.
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
        var method: String
        var uri: String
        var version: HTTPVersion
        var headers: [[String]]
        var body: [UInt8] = []
        var trailers: [[String]]?
        var ended = false

        var description: String {
            "\(method) \(uri) \(version) \(headers) body=\(body.count) trailers=\(trailers ?? []) ended=\(ended)"
        }
    }

    static func ours(_ bytes: [UInt8]) -> Outcome {
        var parser = HTTP1RequestParser(
            limits: .init(maximumHeadBytes: 80 * 1024, maximumTrailerBytes: 80 * 1024)
        )
        var buffer = ByteBuffer(bytes: bytes)
        var messages: [Message] = []
        do {
            while true {
                guard case .part(let part) = try parser.next(&buffer) else { break }
                switch part {
                case .head(let head): messages.append(message(head.nioHead))
                case .body(let body): messages[messages.count - 1].body += body.readableBytesView
                case .end(let trailers): end(&messages, trailers)
                }
            }
        } catch {
            return .refused
        }
        return .parsed(messages)
    }

    static func nios(_ bytes: [UInt8]) -> Outcome {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        var messages: [Message] = []
        do {
            try channel.pipeline.syncOperations.addHandler(
                ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes))
            )
            try channel.writeInbound(ByteBuffer(bytes: bytes))
            while let part = try channel.readInbound(as: HTTPServerRequestPart.self) {
                switch part {
                case .head(let head): messages.append(message(head))
                case .body(let body): messages[messages.count - 1].body += body.readableBytesView
                case .end(let trailers): end(&messages, trailers)
                }
            }
        } catch {
            return .refused
        }
        return .parsed(messages)
    }

    static func message(_ head: HTTPRequestHead) -> Message {
        Message(
            method: head.method.rawValue,
            uri: head.uri,
            version: head.version,
            headers: head.headers.map { [$0.name, $0.value] }
        )
    }

    static func end(_ messages: inout [Message], _ trailers: HTTPHeaders?) {
        messages[messages.count - 1].ended = true
        messages[messages.count - 1].trailers = trailers.map { $0.map { [$0.name, $0.value] } }
    }

    static let valid: [String] = [
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /a/b?c=d&e=%2F HTTP/1.1\r\nHost: api.test:8080\r\nAccept: */*\r\n\r\n",
        "PURGE /cache HTTP/1.1\r\nHost: a\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http://api.test/abs?x=1 HTTP/1.1\r\nHost: api.test\r\n\r\n",
        "GET / HTTP/1.0\r\n\r\n",
        "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "\r\nGET /after-an-empty-line HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: a\r\nx-lower: v\r\nX-UPPER: V\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Spaces:    \r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX-Inner: a  b\tc\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX-Name: Zoë 東京\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX-Token: !#$%&'*+-.^_`|~\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-A: 2\r\n\r\n",
        "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n1234567",
        "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n",
        "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0;last\r\n\r\n",
        "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 1\r\nX-Other: 2\r\n\r\n",
        "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n00005\r\nhello\r\n0\r\n\r\n",
        "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nPOST /3 HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx",
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        "GET /incomplete HTTP/1.1\r\nHost: a\r\n",
        "POST /incomplete-body HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc",
    ]

    /// Streams the proxy refuses though llhttp takes them, each with the rule the refusal applies.
    /// Every other stream of `HTTP1RequestParserTests`' hostile table llhttp refuses too.
    static let refusedOnPurpose: [String: String] = [
        "Content_Length":
            "RFC 9112 §11.2 (smuggling): upstreams that map header names CGI-style read `_` as `-` and would frame the body by it",
        "Transfer_Encoding": "RFC 9112 §11.2 (smuggling): as Content_Length",
        "a bare LF before the request line": "RFC 9112 §2.2: only CRLF empty lines are skipped before a request line",
        "too many empty lines first":
            "RFC 9112 §2.2: a server SHOULD ignore at least one empty line; the proxy ignores up to eight",
        "two spaces after the method": "RFC 9112 §3: the request line's parts are separated by exactly one SP",
        "chunk extensions past the limit": "RFC 9112 §7.1.1: a recipient limits the chunk extensions it accepts",
        "Transfer-Encoding in HTTP/1.0":
            "RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 MUST be treated as faulty framing",
        "gzip, chunked":
            "RFC 9112 §6.1: a coding the proxy does not implement (501 allowed); the proxy would forward the body decoded of chunked only",
    ]

    @Test(arguments: valid)
    func validStreamsParseTheSameInBoth(_ text: String) {
        let bytes = Array(text.utf8)
        let ours = Self.ours(bytes)
        #expect(ours != .refused, "refused: \(text.debugDescription)")
        #expect(ours == Self.nios(bytes), "\(text.debugDescription)\nours: \(ours)\nNIO:  \(Self.nios(bytes))")
    }

    @Test(arguments: HTTP1RequestParserTests.refused)
    func hostileStreamsAreRefusedByUsAndLlhttpEitherAgreesOrTheRuleIsNamed(_ name: String, _ text: String) {
        let bytes = Array(text.utf8)
        #expect(Self.ours(bytes) == .refused, "\(name) accepted")
        let nio = Self.nios(bytes)
        if nio == .refused {
            #expect(Self.refusedOnPurpose[name] == nil, "llhttp refuses \(name) too: no exception to name")
        } else {
            let rule = Self.refusedOnPurpose[name]
            #expect(rule?.hasPrefix("RFC") == true, "llhttp accepts \(name) as \(nio) and no rule is named")
        }
    }

    /// RFC 9110 §5.5: a field value excludes leading and trailing whitespace (SP and HTAB); llhttp
    /// keeps a trailing HTAB, which an upstream comparing values would then see.
    @Test func trailingTabsAreTrimmedFromValuesWhereLlhttpKeepsThem() {
        let bytes = Array("GET / HTTP/1.1\r\nHost: a\r\nX-Tab:\tv\t\r\n\r\n".utf8)
        guard case .parsed(let ours) = Self.ours(bytes), case .parsed(let nio) = Self.nios(bytes) else {
            Issue.record("refused")
            return
        }
        #expect(ours.first?.headers.last == ["X-Tab", "v"])
        #expect(nio.first?.headers.last == ["X-Tab", "v\t"])
    }
}
