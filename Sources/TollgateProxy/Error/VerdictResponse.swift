import TollgateCore

/// A locally decided answer as it goes on the wire: status, headers and body. Refusals are made
/// by `GateError.response(realm:)`; forward-auth's 200 is the other one.
public struct VerdictResponse: Sendable, Equatable {
    public let status: Int
    public let headers: [(String, String)]
    public let body: String

    public init(status: Int, headers: [(String, String)] = [], body: String = "") {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// An error answer: `{"error": …, "error_description": …}`, written by the one JSON encoder.
    init(status: Int, headers: [(String, String)] = [], error: String, description: String) {
        self.init(
            status: status,
            headers: headers,
            body: "{\"error\":" + JSONValue.quoted(error) + ",\"error_description\":" + JSONValue.quoted(description)
                + "}"
        )
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.status == rhs.status && lhs.body == rhs.body && lhs.headers.elementsEqual(rhs.headers) { $0 == $1 }
    }
}
