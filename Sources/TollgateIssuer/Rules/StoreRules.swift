/// The issuer's rules that need a transaction, written once over `IssuerTransaction`'s
/// primitives for every store; what they decide is `GrantRules`' and the records' own.
extension IssuerStore {
    /// Redeems the code under `digest`: `accept` (the client, redirect URI, PKCE and resource
    /// checks) decides on the unredeemed record before anything changes, so a request that fails
    /// them does not spend the code. A second redemption is a replay: the code's grant is revoked
    /// (until `grantUntil`) in the same transaction.
    public func redeemCode(
        digest: String,
        now: Int,
        grantUntil: Int,
        accept: @escaping @Sendable (AuthorizationCodeRecord) -> Bool
    ) async throws -> CodeRedemption {
        try await transaction { tx in
            guard let code = try await tx.find(AuthorizationCodeRecord.self, .code, digest) else { return .unknown }
            if code.redeemed {
                if let grant = GrantRules.grantToRevoke(onReplayOf: code) {
                    try await tx.revokeGrant(grant, until: grantUntil, now: now)
                }
                return .replayed(code)
            }
            guard accept(code) else { return .refused(code) }
            var redeemed = code
            redeemed.redeemed = true
            try await tx.put(redeemed, .code, digest, expiresAt: code.expiresAt)
            return .redeemed(code)
        }
    }

    /// Exchanges the refresh token `digest` for `successor`, as a compare-and-set on the token
    /// being unspent: exactly one of any number of concurrent calls rotates. The winner keeps
    /// `answer` (sealed for the presented token's holder, `RetryAnswer`) until `reuseInterval`
    /// seconds after the spend; any other presentation is `GrantRules.reuse`'s to judge, and
    /// may revoke the grant (until `grantUntil`).
    public func rotateRefreshToken(
        digest: String,
        clientID: String,
        successor: RefreshTokenRecord,
        answer: String?,
        now: Int,
        reuseInterval: Int,
        grantUntil: Int
    ) async throws -> RefreshRotation {
        try await transaction { tx in
            if try await tx.spendRefreshToken(
                digest: digest,
                clientID: clientID,
                now: now,
                successorDigest: successor.digest,
                answer: answer
            ) {
                try await tx.insertRefreshToken(successor)
                return .rotated
            }
            let current = try await tx.refreshToken(digest: digest)
            switch GrantRules.reuse(
                of: current?.token,
                by: clientID,
                successorUsed: current?.successorUsed ?? false,
                now: now,
                reuseInterval: reuseInterval
            ) {
            case .refuse:
                return .refused(familyRevoked: false)
            case .replay(let given):
                return .replayWithinGrace(given)
            case .revokeGrant:
                if let grant = current?.token.familyID { try await tx.revokeGrant(grant, until: grantUntil, now: now) }
                return .refused(familyRevoked: true)
            }
        }
    }

    /// Revokes a grant (see `IssuerTransaction.revokeGrant`), in one transaction.
    public func revokeGrant(_ grantID: String, until: Int, now: Int) async throws {
        try await transaction { tx in try await tx.revokeGrant(grantID, until: until, now: now) }
    }

    /// Marks the client revoked and revokes every token and refresh token issued to it, and every
    /// grant they belong to, in one transaction; `false` when there is no such client.
    public func revokeClient(id: String, now: Int) async throws -> Bool {
        try await transaction { tx in
            guard var client = try await tx.find(RegisteredClient.self, .client, id) else { return false }
            client.revoked = true
            try await tx.put(client, .client, id, expiresAt: nil)
            try await tx.revokeTokens(ofClient: id, now: now)
            return true
        }
    }

    /// Adds `scopes` to what `username` consented to for `clientID`.
    public func saveConsent(username: String, clientID: String, scopes: Set<String>) async throws {
        try await transaction { tx in
            var merged = try await tx.consent(username: username, clientID: clientID) ?? []
            merged.formUnion(scopes)
            try await tx.putConsent(username: username, clientID: clientID, scopes: merged)
        }
    }

    /// Stores a new device authorization; `false` (and nothing stored) when its user code is
    /// already taken, so a collision can never point a live code at another device.
    public func saveDeviceAuthorization(_ record: DeviceAuthorizationRecord) async throws -> Bool {
        try await transaction { tx in
            guard try await tx.insertNew(record.digest, .userCode, record.userCode, expiresAt: record.expiresAt) else {
                return false
            }
            try await tx.put(record, .device, record.digest, expiresAt: record.expiresAt)
            return true
        }
    }

    /// The device authorization whose (normalised) user code is `userCode`.
    public func deviceAuthorization(userCode: String) async throws -> DeviceAuthorizationRecord? {
        try await transaction { tx in try await Self.device(tx, userCode: userCode) }
    }

    static func device(_ tx: any IssuerTransaction, userCode: String) async throws -> DeviceAuthorizationRecord? {
        guard let digest = try await tx.find(String.self, .userCode, userCode) else { return nil }
        return try await tx.find(DeviceAuthorizationRecord.self, .device, digest)
    }

    /// Settles a pending device authorization (`DeviceAuthorizationRecord.decided`): approved by
    /// `username`, or denied when it is `nil`; `false` when it is no longer pending.
    public func decideDeviceAuthorization(
        userCode: String,
        username: String?,
        authenticatedAt: Int,
        now: Int
    ) async throws -> Bool {
        try await transaction { tx in
            guard let record = try await Self.device(tx, userCode: userCode),
                let decided = record.decided(by: username, authenticatedAt: authenticatedAt, now: now)
            else { return false }
            try await tx.put(decided, .device, decided.digest, expiresAt: decided.expiresAt)
            return true
        }
    }

    /// One poll by `clientID`: `accept` decides first (a poll it refuses changes nothing);
    /// otherwise returns the record as it was and stores `record.polled(at: now)`, so of
    /// concurrent polls of an approved code exactly one sees it approved. `nil` when there is
    /// none under `digest` for this client.
    public func pollDeviceAuthorization(
        digest: String,
        clientID: String,
        now: Int,
        accept: @escaping @Sendable (DeviceAuthorizationRecord) -> Bool
    ) async throws -> DeviceAuthorizationRecord? {
        try await transaction { tx in
            guard let record = try await tx.find(DeviceAuthorizationRecord.self, .device, digest),
                record.clientID == clientID
            else { return nil }
            guard accept(record) else { return record }
            try await tx.put(record.polled(at: now), .device, digest, expiresAt: record.expiresAt)
            return record
        }
    }
}
