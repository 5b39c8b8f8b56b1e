import Foundation
import Testing
import TollgateCore
import TollgateProxy
import TollgateTestSupport

@Suite("WebSocket", .serialized)
struct WebSocketTests {
    /// A masked client text frame (RFC 6455 §5.2), payload under 126 bytes.
    static func clientFrame(_ text: String) -> [UInt8] {
        let payload = Array(text.utf8)
        let mask: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        return [0x81, 0x80 | UInt8(payload.count)] + mask
            + payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
    }

    @Test("a WebSocket upgrade with a valid token is relayed: the echo comes back through Tollgate")
    func echoThroughTheProxy() async throws {
        let echo = try await WebSocketEchoServer.start()
        defer { Task { try? await echo.shutdown() } }
        let upstreamURL = "http://127.0.0.1:\(echo.port)"
        try await ProxyEnvironment.with { environment in
            // Point the proxy at the WebSocket server.
            var configuration = environment.proxy.runtime.snapshot.configuration
            configuration.upstream = UpstreamSettings(url: upstreamURL)
            try await environment.proxy.runtime.apply(configuration)

            let connection = try await RawConnection.connect(port: environment.proxy.port)
            defer { Task { await connection.close() } }
            let request =
                [
                    "GET /orders/live HTTP/1.1", "Host: api.test", "Upgrade: websocket", "Connection: Upgrade",
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
                    "Authorization: Bearer \(TestIssuer.shared.token())",
                ].joined(separator: "\r\n") + "\r\n\r\n"
            try await connection.send(Array(request.utf8))
            let head = try await connection.receive { String(decoding: $0, as: UTF8.self).contains("\r\n\r\n") }
            let text = String(decoding: head, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 101"), "\(text)")
            #expect(text.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="))
            try await connection.send(Self.clientFrame("hello through the gate"))
            let expected: [UInt8] =
                [0x81, UInt8("hello through the gate".utf8.count)] + Array("hello through the gate".utf8)
            let all = try await connection.receive { bytes in
                bytes.count >= head.count + expected.count
            }
            #expect(Array(all[head.count...]) == expected)
        }
    }

    @Test("a WebSocket upgrade without a token is refused before it reaches the upstream")
    func upgradeWithoutToken() async throws {
        try await ProxyEnvironment.with { environment in
            let response = try await environment.send(
                "/orders/live",
                headers: [
                    "Upgrade: websocket", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
                ]
            )
            #expect(response.status == 401)
            #expect(environment.upstream.requestCount == 0)
        }
    }
}
