import TollgateCore

/// What a token request proved it holds, so the tokens are bound to it: the key of a DPoP proof
/// (RFC 9449) and the client certificate of the connection (RFC 8705). Either, both or neither.
public struct SenderBinding: Sendable, Equatable {
    /// The RFC 7638 thumbprint of a valid DPoP proof's key (`cnf.jkt`).
    public var dpopJKT: String?
    /// The base64url SHA-256 of the client certificate's DER (`cnf["x5t#S256"]`).
    public var certificateThumbprint: String?

    public init(dpopJKT: String? = nil, certificateThumbprint: String? = nil) {
        self.dpopJKT = dpopJKT
        self.certificateThumbprint = certificateThumbprint
    }

    /// The token's `cnf` claim (RFC 7800), `nil` when it is bound to nothing.
    var confirmation: JSONValue? {
        var members: [String: JSONValue] = [:]
        if let dpopJKT { members["jkt"] = .string(dpopJKT) }
        if let certificateThumbprint { members["x5t#S256"] = .string(certificateThumbprint) }
        return members.isEmpty ? nil : .object(members)
    }
}
