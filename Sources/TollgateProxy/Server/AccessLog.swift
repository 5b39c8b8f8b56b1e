import Atomics
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import TollgateCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One JSON line per request on standard output (DESIGN step 8). Never the token: only ids,
/// the normalised path, the route, the verdict, the refusal's detail and the time taken, every
/// string escaped.
///
/// Hand-written for the request path (measured: Swift string building, per-character quoting
/// and a writer thread woken per line cost about 45,000 instructions per request, a third of a
/// pass-through). The line is formatted straight into bytes, into a buffer of the event loop
/// that answered (`AccessLogBuffer`), which that loop writes itself in batches — when the buffer
/// passes `flushBytes`, every `flushInterval`, and on shutdown — with writes that never block
/// it: standard output is made non-blocking when it is a pipe or socket, and what it cannot take
/// waits in the buffer up to `capacity` bytes; lines beyond are dropped and counted.
enum AccessLog {
    /// A buffer past this is written at once.
    static let flushBytes = 32 * 1024
    /// A buffer with anything in it is written at least this often.
    static let flushInterval = TimeAmount.milliseconds(250)

    private static let capacityBytes = ManagedAtomic<Int>(4 << 20)
    private static let droppedLines = ManagedAtomic<Int>(0)
    private static let buffers = NIOLockedValueBox<[AccessLogBuffer]>([])
    private static let current = ThreadSpecificVariable<AccessLogBuffer>()
    /// Lines written on threads that are not event loops: one shared buffer, written at once.
    private static let elsewhere = AccessLogBuffer(fileDescriptor: 1)

    /// How many bytes of lines may wait per event loop (`server.access_log_buffer_bytes`).
    static var capacity: Int {
        get { capacityBytes.load(ordering: .relaxed) }
        set { capacityBytes.store(newValue, ordering: .relaxed) }
    }

    /// Lines dropped: a buffer was full, or standard output failed.
    static var dropped: Int { droppedLines.load(ordering: .relaxed) }

    static func drop(_ lines: Int) { droppedLines.wrappingIncrement(by: lines, ordering: .relaxed) }

    static func write(
        requestID: String,
        method: String,
        path: String,
        route: String,
        status: Int,
        outcome: String,
        reason: String?,
        detail: String? = nil,
        milliseconds: Double,
        peer: String?
    ) {
        let (buffer, onLoop) = bufferOfThisThread()
        buffer.append { line in
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            line.ascii("{\"ts\":")
            line.decimal(Int(now.tv_sec))
            line.byte(UInt8(ascii: "."))
            line.decimal(Int(now.tv_nsec / 1_000_000), width: 3)
            line.ascii(",\"request_id\":")
            line.quoted(requestID)
            line.ascii(",\"method\":")
            line.quoted(method)
            line.ascii(",\"path\":")
            line.quoted(path)
            line.ascii(",\"route\":")
            line.quoted(route)
            line.ascii(",\"status\":")
            line.decimal(status)
            line.ascii(",\"outcome\":")
            line.quoted(outcome)
            if let reason {
                line.ascii(",\"reason\":")
                line.quoted(reason)
            }
            if let detail {
                line.ascii(",\"detail\":")
                // The detail may quote a token's header or claims: bounded, and escaped.
                line.quoted(detail.utf8.count > 256 ? String(detail.prefix(256)) + "…" : detail)
            }
            let micros = Int((milliseconds * 1000).rounded())
            line.ascii(",\"latency_ms\":")
            line.decimal(micros / 1000)
            line.byte(UInt8(ascii: "."))
            line.decimal(micros % 1000, width: 3)
            if let peer {
                line.ascii(",\"peer\":")
                line.quoted(peer)
            }
            line.ascii("}\n")
        }
        if !onLoop { buffer.flush() }
    }

    /// This event loop's buffer (made, registered and given its flush timer on first use), or
    /// the shared one on any other thread.
    private static func bufferOfThisThread() -> (AccessLogBuffer, onLoop: Bool) {
        if let buffer = current.currentValue { return (buffer, true) }
        guard let loop = MultiThreadedEventLoopGroup.currentEventLoop else { return (elsewhere, false) }
        let buffer = AccessLogBuffer(fileDescriptor: 1)
        current.currentValue = buffer
        buffers.withLockedValue { $0.append(buffer) }
        loop.scheduleRepeatedTask(initialDelay: flushInterval, delay: flushInterval) { _ in buffer.flush() }
        return (buffer, true)
    }

    /// Writes every buffer's lines, waiting for a slow standard output at most `timeout` in all:
    /// on shutdown.
    static func flushAll(timeout: Duration = .seconds(2)) {
        let deadline = ContinuousClock.now + timeout
        for buffer in buffers.withLockedValue({ $0 }) + [elsewhere] { buffer.flush(until: deadline) }
    }

    /// Standard output made non-blocking when it is a pipe or a socket, once, so a reader that
    /// stalls never blocks an event loop. Not a terminal (a shell shares it) nor a file (writes
    /// to it do not wait on a reader).
    static let nonBlockingStandardOutput: Void = {
        var status = stat()
        guard fstat(1, &status) == 0 else { return }
        let type = status.st_mode & S_IFMT
        guard type == S_IFIFO || type == S_IFSOCK else { return }
        let flags = fcntl(1, F_GETFL)
        if flags >= 0 { _ = fcntl(1, F_SETFL, flags | O_NONBLOCK) }
    }()
}

/// The lines one event loop formatted and has not written yet. Its lock is only ever contended
/// on shutdown; the loop appends and writes, its timer writes.
final class AccessLogBuffer: @unchecked Sendable {
    private let lock = NIOLock()
    private var bytes: [UInt8] = []
    private let fileDescriptor: Int32

    init(fileDescriptor: Int32) {
        self.fileDescriptor = fileDescriptor
        bytes.reserveCapacity(AccessLog.flushBytes * 2)
        _ = AccessLog.nonBlockingStandardOutput
    }

    /// Formats one line at the end; drops it (and counts it) when the buffer would pass the
    /// capacity; writes the buffer when it passes `AccessLog.flushBytes` (or half the capacity).
    func append(_ format: (inout LineWriter) -> Void) {
        lock.withLockVoid {
            let start = bytes.count
            // The bytes move into the writer and back, never shared, so nothing is copied.
            var writer = LineWriter(bytes: [])
            swap(&writer.bytes, &bytes)
            format(&writer)
            swap(&writer.bytes, &bytes)
            if bytes.count > AccessLog.capacity {
                bytes.removeSubrange(start...)
                AccessLog.drop(1)
            }
            if bytes.count >= min(AccessLog.flushBytes, AccessLog.capacity / 2) { writeWithoutWaiting() }
        }
    }

    /// Writes what standard output takes now.
    func flush() { lock.withLockVoid { writeWithoutWaiting() } }

    /// Writes everything, waiting for standard output until `deadline`; what is left is dropped.
    func flush(until deadline: ContinuousClock.Instant) {
        lock.withLockVoid {
            while !bytes.isEmpty && ContinuousClock.now < deadline {
                writeWithoutWaiting()
                if !bytes.isEmpty {
                    var descriptor = pollfd(fd: fileDescriptor, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&descriptor, 1, 50)
                }
            }
            if !bytes.isEmpty {
                AccessLog.drop(Self.lines(in: bytes[...]))
                bytes.removeAll(keepingCapacity: true)
            }
        }
    }

    /// Writes whole lines in pieces of at most `PIPE_BUF` bytes (a pipe takes such a write whole
    /// or not at all, so lines of several loops never interleave) until standard output would
    /// block; keeps the rest. Called with the lock held.
    private func writeWithoutWaiting() {
        var offset = 0
        let total = bytes.count
        bytes.withUnsafeBytes { buffer in
            while offset < total {
                var end = min(total, offset + 4096)
                if end < total {
                    // Back to the last line end within the piece, or on to the end of a long line.
                    var cut = end
                    while cut > offset && buffer[cut - 1] != UInt8(ascii: "\n") { cut -= 1 }
                    if cut == offset {
                        while end < total && buffer[end - 1] != UInt8(ascii: "\n") { end += 1 }
                    } else {
                        end = cut
                    }
                }
                let written = systemWrite(fileDescriptor, buffer.baseAddress! + offset, end - offset)
                if written > 0 {
                    offset += written
                } else if written < 0 && errno == EINTR {
                    continue
                } else if written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                    break
                } else {
                    // Standard output closed or failing: these lines are lost.
                    AccessLog.drop(Self.lines(in: buffer[offset...]))
                    offset = total
                }
            }
        }
        if offset == total {
            bytes.removeAll(keepingCapacity: true)
        } else if offset > 0 {
            bytes.removeSubrange(..<offset)
        }
    }

    private static func lines(in bytes: some Collection<UInt8>) -> Int {
        max(1, bytes.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) })
    }
}

/// Appends a log line's parts as bytes.
struct LineWriter {
    var bytes: [UInt8]

    mutating func byte(_ value: UInt8) { bytes.append(value) }

    mutating func ascii(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    /// A non-negative number in decimal, zero-padded to `width` digits.
    mutating func decimal(_ value: Int, width: Int = 1) {
        var value = max(0, value)
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { scratch in
            let scratch = scratch.bindMemory(to: UInt8.self)
            repeat {
                count += 1
                scratch[24 - count] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: value % 10)
                value /= 10
            } while value > 0 && count < 24
            while count < min(width, 24) {
                count += 1
                scratch[24 - count] = UInt8(ascii: "0")
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: scratch[(24 - count)...]))
        }
    }

    /// A JSON string (RFC 8259 §7): runs that need no escape copied whole (usually the whole
    /// string at once).
    mutating func quoted(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        if text.utf8.withContiguousStorageIfAvailable({ escaping($0) }) == nil {
            var copy = text
            copy.withUTF8 { escaping($0) }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    private mutating func escaping(_ utf8: UnsafeBufferPointer<UInt8>) {
        var start = 0
        var index = 0
        let count = utf8.count
        while index < count {
            let byte = utf8[index]
            guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else {
                index += 1
                continue
            }
            if index > start { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<index])) }
            index += 1
            start = index
            bytes.append(UInt8(ascii: "\\"))
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): bytes.append(byte)
            case 0x0A: bytes.append(UInt8(ascii: "n"))
            case 0x0D: bytes.append(UInt8(ascii: "r"))
            case 0x09: bytes.append(UInt8(ascii: "t"))
            default:
                let hex: StaticString = "0123456789abcdef"
                bytes.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                hex.withUTF8Buffer { digits in
                    bytes.append(digits[Int(byte >> 4)])
                    bytes.append(digits[Int(byte & 0x0F)])
                }
            }
        }
        if count > start {
            bytes.append(contentsOf: start == 0 ? utf8 : UnsafeBufferPointer(rebasing: utf8[start...]))
        }
    }
}

/// `write(2)`, named apart from the buffer's methods.
private func systemWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    write(descriptor, bytes, count)
}
