import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import Testing

@testable import TollgateProxy

/// An HTTP/2 stream's frames as request parts and answer parts as frames, as NIO's
/// `HTTP2FramePayloadToHTTP1ServerCodec` did before the proxy handler took them over.
@Suite struct HTTP2StreamCodecTests {
    static func decode(_ payloads: [HTTP2Frame.FramePayload]) -> [RequestPart] {
        var codec = HTTP2StreamCodec()
        var parts: [RequestPart] = []
        for payload in payloads { codec.decode(payload) { parts.append($0) } }
        return parts
    }

    static let post: HPACKHeaders = [
        ":method": "POST", ":path": "/orders?x=1", ":scheme": "https", ":authority": "api.test",
        "content-type": "application/json",
    ]

    @Test func aPOSTWithoutLengthWhoseBodyFollowsGoesChunkedWithHostFromAuthority() throws {
        let parts = Self.decode([
            .headers(.init(headers: Self.post)),
            .data(.init(data: .byteBuffer(ByteBuffer(string: "{}")))),
            .data(.init(data: .byteBuffer(ByteBuffer()), endStream: true)),
        ])
        #expect(parts.count == 3)
        guard case .head(let head) = parts.first else {
            Issue.record("a head first")
            return
        }
        #expect(head.method == .POST && head.uri == "/orders?x=1" && head.version == .http2)
        #expect(head.first(name: "host") == "api.test")
        #expect(head.first(name: "transfer-encoding") == "chunked")
        #expect(head.framing == .chunked)
        #expect(head.first(name: "content-type") == "application/json")
        #expect(!head.contains(name: ":path"), "pseudo-header fields are not field lines")
        #expect(parts[1] == .body(ByteBuffer(string: "{}")))
        #expect(parts[2] == .end(nil), "an empty last DATA frame is only the end")
    }

    @Test func aRequestThatEndsWithItsHeadersIsAHeadAndAnEnd() throws {
        let parts = Self.decode([.headers(.init(headers: Self.post, endStream: true))])
        guard case .head(let head) = parts.first else {
            Issue.record("a head first")
            return
        }
        #expect(head.first(name: "content-length") == "0")
        #expect(head.framing == .length(0))
        #expect(parts.last == .end(nil))
        let get = Self.decode([
            .headers(
                .init(headers: [":method": "GET", ":path": "/", ":scheme": "http", ":authority": "a"], endStream: true)
            )
        ])
        guard case .head(let getHead) = get.first else {
            Issue.record("a head first")
            return
        }
        #expect(!getHead.contains(name: "content-length") && !getHead.contains(name: "transfer-encoding"))
        #expect(getHead.framing == .none)
    }

    @Test func aHostFieldIsKeptOverTheAuthority() throws {
        let parts = Self.decode([
            .headers(
                .init(
                    headers: [
                        ":method": "GET", ":path": "/", ":scheme": "http", ":authority": "a.test", "host": "b.test",
                    ],
                    endStream: true
                )
            )
        ])
        guard case .head(let head) = parts.first else {
            Issue.record("a head first")
            return
        }
        #expect(head.values(name: "host") == ["b.test"])
    }

    @Test func aSecondHeaderBlockIsTheTrailers() throws {
        let parts = Self.decode([
            .headers(.init(headers: Self.post)),
            .data(.init(data: .byteBuffer(ByteBuffer(string: "x")))),
            .headers(.init(headers: ["grpc-status": "0"], endStream: true)),
        ])
        #expect(parts.last == .end(HTTPHeaders([("grpc-status", "0")])))
    }

    @Test func answersAreLowerCasedWithoutConnectionSpecificFields() throws {
        var headers = HTTPHeaders([
            ("Content-Type", "text/plain"), ("Connection", "close"), ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"), ("X-Request-Id", "r1"),
        ])
        headers.add(name: "Upgrade", value: "h2c")
        guard
            case .headers(let frame) = HTTP2StreamCodec.encode(
                .head(HTTPResponseHead(version: .http2, status: .created, headers: headers)),
                allocator: ByteBufferAllocator()
            )
        else {
            Issue.record("a HEADERS frame")
            return
        }
        #expect(
            frame.headers.map { "\($0.name)=\($0.value)" } == [
                ":status=201", "content-type=text/plain", "x-request-id=r1",
            ]
        )
        #expect(!frame.endStream)
        guard case .data(let end) = HTTP2StreamCodec.encode(.end(nil), allocator: ByteBufferAllocator()) else {
            Issue.record("an empty DATA frame")
            return
        }
        #expect(end.endStream)
        guard
            case .headers(let trailers) = HTTP2StreamCodec.encode(
                .end(HTTPHeaders([("Grpc-Status", "0")])),
                allocator: ByteBufferAllocator()
            )
        else {
            Issue.record("a trailers frame")
            return
        }
        #expect(trailers.endStream && trailers.headers.first(name: "grpc-status") == "0")
    }

    /// An HTTP/1.1 upstream needs a Host: a request with neither `:authority` nor `host` is a 400.
    @Test func aRequestWithoutAuthorityOrHostIsRefused() throws {
        let parts = Self.decode([
            .headers(.init(headers: [":method": "GET", ":path": "/", ":scheme": "http"], endStream: true))
        ])
        guard case .head(var head) = parts.first else {
            Issue.record("a head first")
            return
        }
        #expect(throws: GateError(.malformedRequest, "an HTTP/2 request without :authority or Host")) {
            try head.check(isHTTP2: true)
        }
    }
}
