import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The upstream response timeout of HTTP/2 streams, checked by one repeating task per event loop.
/// A stream lives for one request: a repeating task of its own (scheduled when the stream opens,
/// cancelled when it closes) cost about 18,000 instructions per request, more than the timeout
/// is worth. A stream registers here while its request is with the upstream; the loop's task
/// runs while any is registered and stops at the first check that finds none. Each instance is
/// used only on its own loop's thread, hence the unchecked `Sendable`.
final class StreamTimeouts: @unchecked Sendable {
    private static let perThread = ThreadSpecificVariable<StreamTimeouts>()

    /// The instance of the current thread's event loop (created on first use).
    static func current(on eventLoop: any EventLoop) -> StreamTimeouts {
        if let existing = perThread.currentValue { return existing }
        let created = StreamTimeouts(eventLoop: eventLoop)
        perThread.currentValue = created
        return created
    }

    private let eventLoop: any EventLoop
    private var watched: [ObjectIdentifier: ProxyHandler] = [:]
    private var task: RepeatedTask?
    private var period = TimeAmount.zero

    private init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// `handler`'s request went upstream: its timeout is checked at least every `period` until
    /// `unwatch`. A shorter period than the running task's (a reload shortened the timeout)
    /// restarts the task with it.
    func watch(_ handler: ProxyHandler, period: TimeAmount) {
        watched[ObjectIdentifier(handler)] = handler
        if let task {
            guard period < self.period else { return }
            task.cancel()
        }
        self.period = period
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        task = eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { task in
            loopBound.value.check(task)
        }
    }

    func unwatch(_ handler: ProxyHandler) {
        watched.removeValue(forKey: ObjectIdentifier(handler))
    }

    private func check(_ task: RepeatedTask) {
        guard task === self.task else {
            // A task replaced by a shorter period.
            task.cancel()
            return
        }
        guard !watched.isEmpty else {
            task.cancel()
            self.task = nil
            return
        }
        // A timed-out handler unwatches itself while answering: iterate over a copy.
        for handler in Array(watched.values) { handler.checkTimeouts() }
    }
}
