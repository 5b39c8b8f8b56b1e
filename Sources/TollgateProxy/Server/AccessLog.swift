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
        // The detail may quote a token's header or claims: bounded, and escaped.
        let detail = detail.map {
            $0.utf8.count > 256 ? String(decoding: $0.utf8.prefix(256), as: UTF8.self) + "…" : $0
        }
        // The line's size at most: every string byte escaped as `\u00XX`, and the fixed parts.
        var strings = requestID.utf8.count + method.utf8.count + path.utf8.count + route.utf8.count
        strings += outcome.utf8.count + (reason?.utf8.count ?? 0) + (detail?.utf8.count ?? 0) + (peer?.utf8.count ?? 0)
        let (buffer, onLoop) = bufferOfThisThread()
        buffer.append(maximumBytes: 6 * strings + 256) { line in
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
                line.quoted(detail)
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
    private var bytes: ByteBuffer
    private let fileDescriptor: Int32

    init(fileDescriptor: Int32) {
        self.fileDescriptor = fileDescriptor
        bytes = ByteBufferAllocator().buffer(capacity: AccessLog.flushBytes * 2)
        _ = AccessLog.nonBlockingStandardOutput
    }

    /// Formats one line of at most `maximumBytes` at the end, with one access to the buffer's
    /// storage; drops it (and counts it) when the buffer would pass the capacity; writes the
    /// buffer when it passes `AccessLog.flushBytes` (or half the capacity).
    func append(maximumBytes: Int, _ format: (inout LineWriter) -> Void) {
        lock.withLockVoid {
            let start = bytes.writerIndex
            bytes.writeWithUnsafeMutableBytes(minimumWritableBytes: maximumBytes) { out in
                var writer = LineWriter(out, capacity: maximumBytes)
                format(&writer)
                return writer.count
            }
            if bytes.readableBytes > AccessLog.capacity {
                bytes.moveWriterIndex(to: start)
                AccessLog.drop(1)
            }
            if bytes.readableBytes >= min(AccessLog.flushBytes, AccessLog.capacity / 2) { writeWithoutWaiting() }
        }
    }

    /// Writes what standard output takes now.
    func flush() { lock.withLockVoid { writeWithoutWaiting() } }

    /// Writes everything, waiting for standard output until `deadline`; what is left is dropped.
    func flush(until deadline: ContinuousClock.Instant) {
        lock.withLockVoid {
            while bytes.readableBytes > 0 && ContinuousClock.now < deadline {
                writeWithoutWaiting()
                if bytes.readableBytes > 0 {
                    var descriptor = pollfd(fd: fileDescriptor, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&descriptor, 1, 50)
                }
            }
            if bytes.readableBytes > 0 {
                AccessLog.drop(Self.lines(in: bytes.readableBytesView))
                bytes.clear()
            }
        }
    }

    /// Writes whole lines in pieces of at most `PIPE_BUF` bytes (a pipe takes such a write whole
    /// or not at all, so lines of several loops never interleave) until standard output would
    /// block; keeps the rest. Called with the lock held.
    private func writeWithoutWaiting() {
        var offset = 0
        let total = bytes.readableBytes
        bytes.withUnsafeReadableBytes { buffer in
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
            bytes.clear()
        } else if offset > 0 {
            bytes.moveReaderIndex(forwardBy: offset)
            bytes.discardReadBytes()
        }
    }

    private static func lines(in bytes: some Collection<UInt8>) -> Int {
        max(1, bytes.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) })
    }
}

/// Writes a log line's parts as bytes into room the caller sized for the whole line (a bound
/// the caller computes: every string byte escaped, the fixed parts), without a capacity check
/// per part.
struct LineWriter {
    private let out: UnsafeMutableRawBufferPointer
    private let capacity: Int
    /// The bytes written so far.
    private(set) var count = 0

    init(_ out: UnsafeMutableRawBufferPointer, capacity: Int) {
        precondition(out.count >= capacity)
        self.out = out
        self.capacity = capacity
    }

    mutating func byte(_ value: UInt8) {
        precondition(count < capacity)
        out[count] = value
        count += 1
    }

    mutating func ascii(_ text: StaticString) {
        copy(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// Bytes as they are, not escaped: for tests that need lines of a given shape.
    mutating func unescaped(_ text: String) {
        var text = text
        text.withUTF8 { copy(UnsafeRawBufferPointer($0)) }
    }

    private mutating func copy(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        precondition(count + bytes.count <= capacity)
        (out.baseAddress! + count).copyMemory(from: base, byteCount: bytes.count)
        count += bytes.count
    }

    /// A non-negative number in decimal, zero-padded to `width` digits.
    mutating func decimal(_ value: Int, width: Int = 1) {
        var value = max(0, value)
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        var length = 0
        withUnsafeMutableBytes(of: &digits) { scratch in
            repeat {
                length += 1
                scratch[24 - length] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: value % 10)
                value /= 10
            } while value > 0 && length < 24
            while length < min(width, 24) {
                length += 1
                scratch[24 - length] = UInt8(ascii: "0")
            }
            copy(UnsafeRawBufferPointer(rebasing: scratch[(24 - length)...]))
        }
    }

    /// A JSON string (RFC 8259 §7): runs that need no escape copied whole (usually the whole
    /// string at once).
    mutating func quoted(_ text: String) {
        byte(UInt8(ascii: "\""))
        if text.utf8.withContiguousStorageIfAvailable({ escaping(UnsafeRawBufferPointer($0)) }) == nil {
            var copy = text
            copy.withUTF8 { escaping(UnsafeRawBufferPointer($0)) }
        }
        byte(UInt8(ascii: "\""))
    }

    private mutating func escaping(_ utf8: UnsafeRawBufferPointer) {
        var start = 0
        var index = 0
        let total = utf8.count
        while index < total {
            let value = utf8[index]
            guard value < 0x20 || value == UInt8(ascii: "\"") || value == UInt8(ascii: "\\") else {
                index += 1
                continue
            }
            if index > start { copy(UnsafeRawBufferPointer(rebasing: utf8[start..<index])) }
            index += 1
            start = index
            byte(UInt8(ascii: "\\"))
            switch value {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): byte(value)
            case 0x0A: byte(UInt8(ascii: "n"))
            case 0x0D: byte(UInt8(ascii: "r"))
            case 0x09: byte(UInt8(ascii: "t"))
            default:
                let hex: StaticString = "0123456789abcdef"
                ascii("u00")
                byte(hex.utf8Start[Int(value >> 4)])
                byte(hex.utf8Start[Int(value & 0x0F)])
            }
        }
        if total > start { copy(UnsafeRawBufferPointer(rebasing: utf8[start...])) }
    }
}

/// `write(2)`, named apart from the buffer's methods.
private func systemWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    write(descriptor, bytes, count)
}
