import NIOConcurrencyHelpers

/// Wall-clock seconds that a test sets and advances by hand.
public final class ManualClock: Sendable {
    private let seconds: NIOLockedValueBox<Double>

    public init(_ start: Double = 1_800_000_000) {
        seconds = NIOLockedValueBox(start)
    }

    public var now: Double { seconds.withLockedValue { $0 } }

    public func advance(by delta: Double) {
        seconds.withLockedValue { $0 += delta }
    }

    public var function: @Sendable () -> Double {
        { [self] in self.now }
    }
}
