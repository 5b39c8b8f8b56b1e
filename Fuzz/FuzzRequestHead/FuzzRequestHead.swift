import FuzzSupport
import NIOCore
import NIOEmbedded
import NIOHTTP1
import TollgateCore
import TollgateProxy

/// A request head as the proxy handler receives it: NIO's decoder, then Tollgate's checks
/// (framing, Host, target form) and path normalisation. Properties: no crash, no hang, and an
/// accepted head has one valid Host (HTTP/1.1), an origin-form target and no CONNECT.
enum FuzzRequestHead {
    static func check(_ bytes: UnsafeRawBufferPointer) {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        do {
            try channel.pipeline.syncOperations.addHandler(
                ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes))
            )
            try channel.writeInbound(ByteBuffer(bytes: bytes))
        } catch {
            return
        }
        while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
            guard case .head(let head) = part else { continue }
            switch CheckedRequestHead.check(head, isHTTP2: false) {
            case .success(let checked):
                require(head.method != .CONNECT, "CONNECT accepted")
                require(checked.target.hasPrefix("/") || checked.target == "*", "target \(checked.target)")
                let hosts = head.headers["host"]
                require(hosts.count <= 1, "two Host headers accepted")
                if head.version == .http1_1 { require(hosts.count == 1, "HTTP/1.1 without Host accepted") }
                if let authority = checked.authority {
                    require(CheckedRequestHead.isValidAuthority(authority), "authority \(authority)")
                }
                _ = PathNormalizer.normalize(checked.target)
            case .failure(let error):
                let answer = error.response(realm: "fuzz")
                require(answer.status == 400, "a malformed head answered \(answer.status)")
            }
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
