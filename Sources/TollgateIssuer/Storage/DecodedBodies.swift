import Foundation
import Synchronization

/// Decoded record bodies, by their JSON text: the stores read the row on every call (so a change
/// by another process is always seen) but decode a body they have seen before only once.
/// JSONDecoder was a fifth of the CPU of an introspection on SQLite (a client and a token
/// decoded per request). Bounded; emptied when full.
final class DecodedBodies: Sendable {
    static let capacity = 4096

    private let entries = Mutex<[String: any Sendable]>([:])

    func decode<T: Decodable & Sendable>(_ type: T.Type, _ text: String) throws -> T {
        if let hit = entries.withLock({ $0[text] }) as? T { return hit }
        let value = try JSONDecoder().decode(type, from: Data(text.utf8))
        entries.withLock { entries in
            if entries.count >= Self.capacity { entries.removeAll(keepingCapacity: true) }
            entries[text] = value
        }
        return value
    }
}
