#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Seconds since 1970 from the system clock: token times (`exp`, `nbf`, `iat`) are wall-clock.
@Sendable public func wallClockSeconds() -> Double {
    Date().timeIntervalSince1970
}
