import Crypto
import Synchronization

/// The `jti`s of the proofs accepted within their lifetime, so none is accepted twice (RFC 9449
/// §11.1). Per process: a proof replayed to another replica within the lifetime is not caught
/// there, which is what the server nonce bounds — with `nonce: true` a proof is good only while
/// its nonce is (about three nonce periods).
///
/// Two generations, each `window` long (at least a proof's lifetime): a proof is looked for in
/// both and recorded in the current one; when a window ends the current generation becomes the
/// previous and the previous is dropped whole. So a proof is remembered at least `window`, no
/// request ever walks the cache, and the memory is at most `capacity` digests.
public final class DPoPReplayCache: Sendable {
    private struct State {
        var current: Set<SHA256Digest> = []
        var previous: Set<SHA256Digest> = []
        var rotatesAt: Double = 0
        var capacity: Int
        var window: Double
    }

    private let state: Mutex<State>

    public init(capacity: Int, window: Double) {
        state = Mutex(State(capacity: capacity, window: window))
    }

    public var count: Int { state.withLock { $0.current.count + $0.previous.count } }
    public var capacity: Int { state.withLock { $0.capacity } }
    public var window: Double { state.withLock { $0.window } }

    private static func key(_ proof: DPoPProof) -> SHA256Digest {
        SHA256.hash(data: Array((proof.thumbprint + " " + proof.jti).utf8))
    }

    /// A new bound or window (a reload), in place: the same cache goes on, so no proof recorded
    /// before, during or after the reload is forgotten early. A shorter window takes effect once
    /// the proofs remembered under the longer one have had it; a lower bound forgets nothing (a
    /// cache over its bound refuses new proofs until old ones expire).
    public func reconfigure(capacity: Int, window: Double) {
        state.withLock { state in
            state.rotatesAt += max(0, state.window - window)
            state.capacity = capacity
            state.window = window
        }
    }

    /// Records a proof; `false` when it was seen before (a replay) or the cache is full of proofs
    /// that may still be live (refused rather than forgotten).
    public func accept(_ proof: DPoPProof, now: Double) -> Bool {
        let key = Self.key(proof)
        return state.withLock { state in
            if now >= state.rotatesAt {
                // A gap of more than a window leaves nothing live in either generation.
                state.previous = now >= state.rotatesAt + state.window ? [] : state.current
                state.current = []
                state.rotatesAt = now + state.window
            }
            if state.current.contains(key) || state.previous.contains(key) { return false }
            guard state.current.count + state.previous.count < state.capacity else { return false }
            state.current.insert(key)
            return true
        }
    }

    /// Forgets a proof `accept` took for a request that then failed, so proofs of failing
    /// requests take no room.
    public func forget(_ proof: DPoPProof) {
        let key = Self.key(proof)
        _ = state.withLock { $0.current.remove(key) }
    }
}
