import Atomics
import Foundation
import NIOConcurrencyHelpers
import TollgateCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One JSON line per request on standard output (DESIGN step 8). Never the token: only ids,
/// the normalised path, the route, the verdict, the refusal's detail and the time taken, every
/// string escaped by the one JSON encoder.
enum AccessLog {
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
        var line = "{\"ts\":"
        line.reserveCapacity(256)
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        line += String(now.tv_sec) + "." + pad(Int(now.tv_nsec / 1_000_000), 3)
        line += ",\"request_id\":"
        appendQuoted(requestID, to: &line)
        line += ",\"method\":"
        appendQuoted(method, to: &line)
        line += ",\"path\":"
        appendQuoted(path, to: &line)
        line += ",\"route\":"
        appendQuoted(route, to: &line)
        line += ",\"status\":" + String(status)
        line += ",\"outcome\":\"" + outcome + "\""
        if let reason {
            line += ",\"reason\":"
            appendQuoted(reason, to: &line)
        }
        if let detail {
            line += ",\"detail\":"
            // The detail may quote a token's header or claims: bounded, and escaped.
            appendQuoted(detail.utf8.count > 256 ? String(detail.prefix(256)) + "…" : detail, to: &line)
        }
        let micros = Int((milliseconds * 1000).rounded())
        line += ",\"latency_ms\":" + String(micros / 1000) + "." + pad(micros % 1000, 3)
        if let peer {
            line += ",\"peer\":"
            appendQuoted(peer, to: &line)
        }
        line += "}\n"
        AccessLogWriter.standardOutput.submit(line)
    }

    static func pad(_ value: Int, _ width: Int) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }

    static func appendQuoted(_ value: String, to line: inout String) {
        JSONValue.writeQuoted(value, into: &line)
    }
}

/// Writes log lines from a thread of its own, so a slow reader of standard output (a full pipe,
/// a stalled container log driver) never blocks an event loop. Lines wait in a bounded buffer;
/// when it is full, a line is dropped and counted instead (`tollgate_access_log_dropped_total`).
final class AccessLogWriter: @unchecked Sendable {
    static let standardOutput = AccessLogWriter(fileDescriptor: 1, capacity: 4 << 20)

    private let fileDescriptor: Int32
    private let capacityBytes: ManagedAtomic<Int>
    /// 1 while lines wait, 0 when the buffer is empty; guards `pending` and `writing`.
    private let condition = ConditionLock(value: 0)
    private var pending: [UInt8] = []
    /// The writer thread holds a batch it has not finished writing.
    private var writing = false
    private let droppedLines = ManagedAtomic<Int>(0)

    init(fileDescriptor: Int32, capacity: Int) {
        self.fileDescriptor = fileDescriptor
        self.capacityBytes = ManagedAtomic(capacity)
        let thread = Thread { [self] in drain() }
        thread.name = "tollgate-access-log"
        thread.start()
    }

    /// How many bytes of lines may wait (`server.access_log_buffer_bytes`).
    var capacity: Int {
        get { capacityBytes.load(ordering: .relaxed) }
        set { capacityBytes.store(newValue, ordering: .relaxed) }
    }

    /// Lines dropped: the buffer was full, or standard output failed.
    var dropped: Int { droppedLines.load(ordering: .relaxed) }

    /// Queues `line` without blocking (beyond a short lock), or drops it when the buffer is full.
    func submit(_ line: String) {
        var line = line
        let capacity = self.capacity
        let accepted = line.withUTF8 { bytes -> Bool in
            condition.lock()
            guard pending.count + bytes.count <= capacity else {
                condition.unlock()
                return false
            }
            pending.append(contentsOf: bytes)
            condition.unlock(withValue: 1)
            return true
        }
        if !accepted { droppedLines.wrappingIncrement(ordering: .relaxed) }
    }

    /// Waits (polling, at most `timeout`) until every queued line is written: on shutdown.
    func flush(timeout: Duration = .seconds(2)) async {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            condition.lock()
            let idle = pending.isEmpty && !writing
            condition.unlock()
            if idle { return }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    private func drain() {
        var batch: [UInt8] = []
        while true {
            condition.lock(whenValue: 1)
            swap(&batch, &pending)
            writing = true
            condition.unlock(withValue: 0)
            let unwritten = write(batch)
            if unwritten > 0 {
                let lost = batch.suffix(unwritten).reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
                droppedLines.wrappingIncrement(by: max(lost, 1), ordering: .relaxed)
            }
            batch.removeAll(keepingCapacity: true)
            condition.lock()
            writing = false
            condition.unlock(withValue: pending.isEmpty ? 0 : 1)
        }
    }

    /// Writes all of `bytes`, waiting when the descriptor is non-blocking and full; returns how
    /// many bytes could not be written (standard output closed or failing).
    private func write(_ bytes: [UInt8]) -> Int {
        bytes.withUnsafeBytes { buffer -> Int in
            var offset = 0
            while offset < buffer.count {
                let written = systemWrite(fileDescriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written > 0 {
                    offset += written
                    continue
                }
                if written < 0 && errno == EINTR { continue }
                if written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                    var descriptor = pollfd(fd: fileDescriptor, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&descriptor, 1, 1000)
                    continue
                }
                return buffer.count - offset
            }
            return 0
        }
    }
}

/// `write(2)`, named apart from the writer's own method.
private func systemWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    write(descriptor, bytes, count)
}
