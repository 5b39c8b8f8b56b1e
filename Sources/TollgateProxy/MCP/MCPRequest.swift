import TollgateCore

/// One JSON-RPC message a client POSTs to an MCP route (streamable HTTP), read strictly before
/// the gate decides: a request or notification (`method`, and for `tools/call`, `prompts/get`
/// and `resources/read` the name or URI it acts on), or a response to a request of the server's.
///
/// Refused, with a JSON-RPC error and nothing forwarded: invalid JSON (duplicate member names
/// included: two `method` members would let the gate and the server read different requests), a
/// batch (an array: MCP has none since 2025-06-18, and one rule per request is what the gate
/// checks), `jsonrpc` other than "2.0", a `method` that is not a string, `params` that is not an
/// object, a `null` `id`, a named method without its name, and `Mcp-Method`/`Mcp-Name` headers
/// that say something else than the body.
struct MCPRequest: Equatable {
    /// Nesting accepted in an MCP message: tool arguments and schemas go deeper than a token's
    /// claims (`JSONParser.maximumDepth`).
    static let maximumDepth = 128

    /// `nil` for a response the client sends back (`result` or `error`).
    let method: String?
    /// `params.name` (tools, prompts) or `params.uri` (resources) of a named method.
    let name: String?
    /// The request's `id` (a string or a number), for a JSON-RPC error answer.
    let id: JSONValue?

    static func parse(_ body: [UInt8], methodHeader: [String], nameHeader: [String]) -> Result<MCPRequest, GateError> {
        let message: JSONValue
        do {
            message = try JSONParser.parse(body, maximumDepth: Self.maximumDepth)
        } catch {
            return .failure(refusal(.mcpInvalidRequest, "invalid JSON: \(error.reason)", code: .parseError, id: nil))
        }
        guard case .object(let members) = message else {
            if case .array = message {
                return .failure(refusal(.mcpInvalidRequest, "a batch", code: .invalidRequest, id: nil))
            }
            return .failure(refusal(.mcpInvalidRequest, "not an object", code: .invalidRequest, id: nil))
        }
        var id: JSONValue?
        switch members["id"] {
        case nil: break
        case .string?, .number?: id = members["id"]
        default:
            return .failure(
                refusal(.mcpInvalidRequest, "'id' is not a string or number", code: .invalidRequest, id: nil)
            )
        }
        guard members["jsonrpc"] == .string("2.0") else {
            return .failure(refusal(.mcpInvalidRequest, "'jsonrpc' is not \"2.0\"", code: .invalidRequest, id: id))
        }
        let request: MCPRequest
        if let methodValue = members["method"] {
            guard case .string(let method) = methodValue, !method.isEmpty else {
                return .failure(refusal(.mcpInvalidRequest, "'method' is not a string", code: .invalidRequest, id: id))
            }
            if members["result"] != nil || members["error"] != nil {
                return .failure(refusal(.mcpInvalidRequest, "a request with a result", code: .invalidRequest, id: id))
            }
            let params = members["params"]
            if let params, params.objectValue == nil {
                return .failure(refusal(.mcpInvalidRequest, "'params' is not an object", code: .invalidParams, id: id))
            }
            var name: String?
            if let member = MCPPolicy.namedMember(of: method) {
                guard case .string(let value)? = params?[member], !value.isEmpty else {
                    return .failure(
                        refusal(
                            .mcpInvalidRequest,
                            "'\(method)' without params.\(member)",
                            code: .invalidParams,
                            id: id
                        )
                    )
                }
                name = value
            }
            request = MCPRequest(method: method, name: name, id: id)
        } else {
            // A response to the server's request (sampling, elicitation): an id and exactly one of
            // result and error.
            guard id != nil, (members["result"] != nil) != (members["error"] != nil), members["params"] == nil else {
                return .failure(
                    refusal(.mcpInvalidRequest, "neither a request nor a response", code: .invalidRequest, id: id)
                )
            }
            request = MCPRequest(method: nil, name: nil, id: id)
        }
        if let mismatch = request.headerMismatch(methodHeader: methodHeader, nameHeader: nameHeader) {
            return .failure(refusal(.mcpHeaderMismatch, mismatch, code: .headerMismatch, id: id))
        }
        return .success(request)
    }

    /// `Mcp-Method` and `Mcp-Name` (MCP 2026-07-28) mirror the body for intermediaries; a gateway
    /// may decide on them only when they agree with it, so any disagreement is refused. A client
    /// of an earlier revision sends neither, and the body alone decides.
    func headerMismatch(methodHeader: [String], nameHeader: [String]) -> String? {
        if methodHeader.count > 1 || nameHeader.count > 1 { return "Mcp-Method or Mcp-Name appears more than once" }
        if let sent = methodHeader.first, sent != method { return "Mcp-Method does not match the body's method" }
        if let sent = nameHeader.first {
            guard methodHeader.first != nil, Self.decodedHeaderValue(sent) == name else {
                return "Mcp-Name does not match the body"
            }
        } else if methodHeader.first != nil, name != nil {
            return "Mcp-Name is missing for a named method"
        }
        return nil
    }

    /// A header value as MCP writes it: verbatim, or `=?base64?…?=` (canonical base64 of UTF-8)
    /// for what would not survive as a field value; `nil` for a malformed sentinel, which then
    /// matches nothing.
    static func decodedHeaderValue(_ value: String) -> String? {
        guard value.hasPrefix("=?base64?"), value.hasSuffix("?="), value.utf8.count >= 11 else { return value }
        let payload = value.dropFirst(9).dropLast(2)
        let urlForm = String(payload.map { $0 == "+" ? "-" : $0 == "/" ? "_" : $0 }).filter { $0 != "=" }
        guard let bytes = Base64URL.decode(urlForm) else { return nil }
        var canonical = Base64URL.encode(bytes).map { $0 == "-" ? "+" : $0 == "_" ? "/" : $0 }
        while canonical.count % 4 != 0 { canonical.append("=") }
        guard String(canonical) == payload else { return nil }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func refusal(
        _ code: GateError.Code,
        _ reason: String,
        code rpcCode: GateError.JSONRPCError.Code,
        id: JSONValue?
    ) -> GateError {
        var error = GateError(code, reason)
        error.jsonRPC = GateError.JSONRPCError(id: id, code: rpcCode)
        return error
    }
}
