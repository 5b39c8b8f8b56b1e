import AsyncHTTPClient
import NIOCore
import NIOHTTP1

/// The rules every outbound call (JWKS, discovery, introspection) follows.
public enum OutboundHTTP {
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public let reason: String
        public var description: String { reason }
    }

    /// An HTTP client for key and introspection calls: no redirects (a redirect could move a key
    /// fetch off HTTPS), short connect timeout.
    /// - Parameter readTimeout: how long an answer may pause; tests on a loaded machine give more.
    public static func makeClient(readTimeout: TimeAmount = .seconds(10)) -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.timeout = .init(connect: .seconds(3), read: readTimeout)
        configuration.decompression = .disabled
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// HTTPS only, unless the host is loopback or insecure HTTP is explicitly allowed.
    public static func checkScheme(of url: String, allowInsecureHTTP: Bool) -> Failure? {
        let lowered = url.lowercased()
        if lowered.hasPrefix("https://") { return nil }
        guard lowered.hasPrefix("http://") else {
            return Failure(reason: "only http(s) URLs can be fetched")
        }
        if allowInsecureHTTP || isLoopback(lowered) { return nil }
        return Failure(reason: "refusing plain HTTP to a non-loopback host (set allow_insecure_http to override)")
    }

    static func isLoopback(_ url: String) -> Bool {
        let afterScheme = url.dropFirst("http://".count)
        let authority = afterScheme.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        let hostPort = authority.split(separator: "@").last.map(String.init) ?? ""
        let host: Substring
        if hostPort.hasPrefix("[") {
            host = hostPort.dropFirst().prefix { $0 != "]" }
        } else {
            host = hostPort.prefix { $0 != ":" }
        }
        if host == "localhost" || host == "::1" { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }

    struct Response: Sendable {
        let status: HTTPResponseStatus
        let headers: HTTPHeaders
        let body: ByteBuffer
    }

    static func execute(
        _ request: HTTPClientRequest,
        client: HTTPClient,
        timeout: TimeAmount,
        maximumBodyBytes: Int
    ) async throws(Failure) -> Response {
        do {
            let response = try await client.execute(request, timeout: timeout)
            let body = try await response.body.collect(upTo: maximumBodyBytes)
            return Response(status: response.status, headers: response.headers, body: body)
        } catch is NIOTooManyBytesError {
            throw Failure(reason: "the response body is larger than \(maximumBodyBytes) bytes")
        } catch let error as HTTPClientError {
            throw Failure(reason: "request failed: \(error.shortDescription)")
        } catch {
            throw Failure(reason: "request failed: \(type(of: error))")
        }
    }

    /// `max-age` from a Cache-Control header; `no-cache`/`no-store` count as 0.
    public static func maxAge(fromCacheControl value: String?) -> Double? {
        guard let value else { return nil }
        var result: Double?
        for directive in value.split(separator: ",") {
            let trimmed = directive.trimmedSpaces.lowercased()
            if trimmed == "no-cache" || trimmed == "no-store" { return 0 }
            if trimmed.hasPrefix("max-age=") {
                let number = trimmed.dropFirst("max-age=".count).filter { $0 != "\"" }
                if let seconds = UInt64(number) { result = Double(seconds) }
            }
        }
        return result
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces and tabs.
    var trimmedSpaces: Substring {
        let text = self[...]
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = text.firstIndex(where: { !isSpace($0) }),
            let last = text.lastIndex(where: { !isSpace($0) })
        else { return Substring() }
        return Substring(text[first...last])
    }
}

extension HTTPClientError {
    fileprivate var shortDescription: String {
        switch self {
        case .deadlineExceeded, .readTimeout, .connectTimeout, .getConnectionFromPoolTimeout: "timed out"
        case .remoteConnectionClosed: "connection closed"
        default: String(describing: self)
        }
    }
}
