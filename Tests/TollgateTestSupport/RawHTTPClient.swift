import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Sends bytes exactly as written (two Authorization headers, unnormalised paths, spoofed
/// headers) over a real TCP connection and reads the answer until the server closes.
public enum RawHTTPClient {
    public struct Response: Sendable {
        public let status: Int
        public let headers: [(String, String)]
        public let body: String

        public func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String

        public init(description: String) {
            self.description = description
        }
    }

    /// `request` is the head without the final blank line's CRLFs normalised: lines joined
    /// with CRLF, `Connection: close` added, then the body.
    public static func send(
        port: Int,
        lines: [String],
        body: String = "",
        timeout: Duration = .seconds(30)
    ) async throws -> Response {
        var text = lines.joined(separator: "\r\n") + "\r\n"
        text += "Connection: close\r\n"
        if !body.isEmpty { text += "Content-Length: \(body.utf8.count)\r\n" }
        text += "\r\n" + body
        let raw = try await exchange(port: port, bytes: Array(text.utf8), timeout: timeout)
        return try parse(raw)
    }

    /// Writes `bytes`, returns everything read until the peer closes.
    public static func exchange(port: Int, bytes: [UInt8], timeout: Duration = .seconds(30)) async throws -> [UInt8] {
        let connection = try await RawConnection.connect(port: port, sending: bytes)
        return try await connection.untilClosed(timeout: timeout)
    }

    public static func parse(_ raw: [UInt8]) throws -> Response {
        let text = String(decoding: raw, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else {
            throw Failure(description: "no complete response head in \(text.prefix(200))")
        }
        let headLines = text[..<split.lowerBound].components(separatedBy: "\r\n")
        let statusParts = headLines[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else {
            throw Failure(description: "bad status line \(headLines[0])")
        }
        var headers: [(String, String)] = []
        for line in headLines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append(
                (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
            )
        }
        var body = String(text[split.upperBound...])
        if headers.contains(where: { $0.0.lowercased() == "transfer-encoding" && $0.1.lowercased() == "chunked" }) {
            body = dechunk(body)
        }
        return Response(status: status, headers: headers, body: body)
    }

    /// Over the bytes: as `Character`s, a CRLF is one element and a chunk's end would be misread.
    static func dechunk(_ text: String) -> String {
        let bytes = Array(text.utf8)
        var result: [UInt8] = []
        var index = 0
        while let lineEnd = bytes[index...].firstIndex(of: 0x0D), lineEnd + 1 < bytes.count {
            guard let size = Int(String(decoding: bytes[index..<lineEnd], as: UTF8.self), radix: 16), size > 0 else {
                break
            }
            let start = lineEnd + 2
            let end = min(start + size, bytes.count)
            result += bytes[start..<end]
            index = min(end + 2, bytes.count)
        }
        return String(decoding: result, as: UTF8.self)
    }

}
