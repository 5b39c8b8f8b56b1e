import Foundation
import Testing
import TollgateCore

@testable import TollgateProxy

#if canImport(Glibc)
import Glibc
#endif

/// The access log's line, formatted straight into bytes, and its per-loop buffer: JSON any
/// parser reads back exactly, whole lines written in order, a full standard output never waited
/// on, lines beyond the bound dropped and counted.
@Suite struct AccessLogTests {
    static func line(_ build: (inout LineWriter) -> Void) -> String {
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 8192, alignment: 1)
        defer { scratch.deallocate() }
        var writer = LineWriter(scratch, capacity: 8192)
        build(&writer)
        return String(decoding: UnsafeRawBufferPointer(rebasing: scratch[..<writer.count]), as: UTF8.self)
    }

    @Test(arguments: [
        "plain", "", "quote \" and backslash \\", "new\nline\r\ttab", "\u{0}\u{1}\u{1f}\u{7f}", "ünïcödé ✓ 🚪",
        "</script>", String(repeating: "a\"", count: 300),
    ])
    func stringsAreEscapedAsJSONAndReadBackExactly(_ value: String) throws {
        let text = Self.line { $0.quoted(value) }
        let parsed = try JSONParser.parse(Array(("{\"v\":" + text + "}").utf8))
        #expect(parsed["v"] == .string(value))
        #expect(!text.utf8.contains { $0 < 0x20 }, "no raw control byte")
    }

    @Test func numbersAreDecimalAndPadded() {
        #expect(Self.line { $0.decimal(0) } == "0")
        #expect(Self.line { $0.decimal(1_765_000_123) } == "1765000123")
        #expect(Self.line { $0.decimal(7, width: 3) } == "007")
        #expect(Self.line { $0.decimal(999, width: 3) } == "999")
        #expect(Self.line { $0.decimal(Int.max) } == String(Int.max))
    }

    static func pipe() -> (read: Int32, write: Int32) {
        var ends: [Int32] = [0, 0]
        _ = Glibc.pipe(&ends)
        _ = fcntl(ends[1], F_SETFL, fcntl(ends[1], F_GETFL) | O_NONBLOCK)
        _ = fcntl(ends[0], F_SETFL, fcntl(ends[0], F_GETFL) | O_NONBLOCK)
        return (ends[0], ends[1])
    }

    static func drain(_ descriptor: Int32) -> String {
        var collected: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(descriptor, &chunk, chunk.count)
            if count <= 0 { break }
            collected += chunk[0..<count]
        }
        return String(decoding: collected, as: UTF8.self)
    }

    @Test func aFullPipeIsNeverWaitedOnAndWhatItCannotTakeWaitsThenIsDroppedAndCounted() {
        let (readEnd, writeEnd) = Self.pipe()
        defer {
            close(readEnd)
            close(writeEnd)
        }
        let buffer = AccessLogBuffer(fileDescriptor: writeEnd)
        let droppedBefore = AccessLog.dropped
        let line = String(repeating: "x", count: 199) + "\n"
        // Far more than the pipe (64 KiB) and the bound (4 MiB) hold, never blocking.
        let started = ContinuousClock.now
        for _ in 0..<30_000 { buffer.append(maximumBytes: 200) { $0.unescaped(line) } }
        #expect(ContinuousClock.now - started < .seconds(5))
        let dropped = AccessLog.dropped - droppedBefore
        #expect(dropped > 0, "lines past the bound are dropped and counted")
        // What the pipe took is whole lines, in order.
        let written = Self.drain(readEnd)
        #expect(!written.isEmpty && written.hasSuffix("\n"))
        #expect(written.split(separator: "\n").allSatisfy { $0.utf8.count == 199 })
        // Once read, the rest follows on the next flush.
        buffer.flush(until: ContinuousClock.now + .milliseconds(200))
        let rest = Self.drain(readEnd)
        #expect(rest.split(separator: "\n").allSatisfy { $0.utf8.count == 199 })
    }

    @Test func linesWaitForTheNextFlushAndComeOutWhole() {
        let (readEnd, writeEnd) = Self.pipe()
        defer {
            close(readEnd)
            close(writeEnd)
        }
        let buffer = AccessLogBuffer(fileDescriptor: writeEnd)
        for index in 0..<10 {
            buffer.append(maximumBytes: 64) {
                $0.ascii("{\"n\":"); $0.decimal(index); $0.ascii("}\n")
            }
        }
        #expect(Self.drain(readEnd).isEmpty, "small lines wait for the loop's timer")
        buffer.flush()
        let lines = Self.drain(readEnd).split(separator: "\n")
        #expect(lines == (0..<10).map { "{\"n\":\($0)}"[...] })
    }
}
