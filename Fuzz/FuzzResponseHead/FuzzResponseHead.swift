import FuzzSupport
import NIOCore
import NIOHTTP1
import TollgateProxy

/// An upstream's answers as the proxy reads them: `HTTP1ResponseParser`, the requests' methods
/// chosen by the input's first byte (a set bit: HEAD). Properties: no crash, no hang; the stream
/// parses to the same parts (or the same refusal after the same parts) whether it arrives at once
/// or in two pieces split where the input says, and whether or not the input then closes; no
/// accepted name or value holds CR, LF or NUL; no status outside 100–599 and no interim answer
/// but 101 is delivered; body bytes never outnumber the input, and a HEAD's answer has none.
enum FuzzResponseHead {
    struct Run: Equatable {
        var parts: [HTTP1ResponseParser.Part] = []
        var refused = false
        var switched = false
    }

    static func methods(_ selector: UInt8) -> [HTTPMethod] {
        (0..<8).map { selector & (1 << $0) != 0 ? .HEAD : .GET }
    }

    static func run(_ pieces: [UnsafeRawBufferPointer], methods: [HTTPMethod], closes: Bool) -> Run {
        var parser = HTTP1ResponseParser(limits: .init(maximumHeadBytes: 8192, maximumTrailerBytes: 4096))
        for method in methods { parser.expectResponse(to: method) }
        var buffer = ByteBuffer()
        var run = Run()
        func append(_ part: HTTP1ResponseParser.Part) {
            if case .body(let body) = part, case .body(var previous)? = run.parts.last {
                // Body slices of the two runs differ in where they are cut: compare bytes.
                run.parts.removeLast()
                previous.writeImmutableBuffer(body)
                run.parts.append(.body(previous))
                return
            }
            run.parts.append(part)
        }
        do {
            for piece in pieces {
                buffer.writeBytes(piece)
                loop: while true {
                    switch try parser.next(&buffer) {
                    case .part(let part): append(part)
                    case .needMoreData: break loop
                    case .switched:
                        run.switched = true
                        break loop
                    }
                }
            }
            if closes, let last = try parser.inputClosed() { append(last) }
        } catch {
            run.refused = true
        }
        return run
    }

    static func check(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= 2 else { return }
        let methods = methods(bytes[0])
        let stream = UnsafeRawBufferPointer(rebasing: bytes[2...])
        let split = stream.isEmpty ? 0 : Int(bytes[1]) % stream.count
        let closes = bytes[1] & 0x80 != 0
        let whole = run([stream], methods: methods, closes: closes)
        let pieces = run(
            [UnsafeRawBufferPointer(rebasing: stream[..<split]), UnsafeRawBufferPointer(rebasing: stream[split...])],
            methods: methods,
            closes: closes
        )
        require(whole == pieces, "the stream parsed differently when split at \(split)")
        var bodyBytes = 0
        var answered = 0
        for part in whole.parts {
            switch part {
            case .head(let head):
                require(head.status.code >= 100 && head.status.code <= 599, "status \(head.status.code)")
                require(head.status.code >= 200 || head.status.code == 101, "interim \(head.status.code) delivered")
                for (name, value) in head.headers { requireClean(name, value) }
                answered += 1
            case .body(let body):
                require(answered > 0 && methods[answered - 1] != .HEAD, "a body in the answer to HEAD")
                bodyBytes += body.readableBytes
            case .end(let trailers):
                for (name, value) in trailers ?? [:] { requireClean(name, value) }
            }
        }
        require(answered <= methods.count, "more answers than requests")
        require(bodyBytes <= stream.count, "more body bytes than input")
    }

    static func requireClean(_ name: String, _ value: String) {
        require(
            !name.isEmpty && !name.utf8.contains { $0 <= 0x20 || $0 >= 0x7F || $0 == UInt8(ascii: ":") },
            "name \(name.debugDescription)"
        )
        require(!value.utf8.contains { $0 == 0 || $0 == 0x0A || $0 == 0x0D }, "value \(value.debugDescription)")
    }
}

@main
enum Entry {
    static func main() { FuzzEntry.main(FuzzResponseHead.check) }
}

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    FuzzResponseHead.check(UnsafeRawBufferPointer(start: start, count: count))
    return 0
}
#endif
