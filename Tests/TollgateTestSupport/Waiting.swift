import NIOConcurrencyHelpers

/// Hands out 0, 1, 2… to concurrent workers.
public final class Counter: Sendable {
    private let box = NIOLockedValueBox(0)

    public init() {}

    public func next() -> Int {
        box.withLockedValue { value in
            defer { value += 1 }
            return value
        }
    }

    public func set(_ newValue: Int) { box.withLockedValue { $0 = newValue } }
}

public struct ConditionTimeout: Error, CustomStringConvertible {
    public let description: String
}

/// Polls `condition` until it holds; throws when it does not within `timeout`.
public func waitUntil(timeout: Duration = .seconds(5), _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        if ContinuousClock.now > deadline { throw ConditionTimeout(description: "condition not met within \(timeout)") }
        try await Task.sleep(for: .milliseconds(20))
    }
}
