import HTTPTypes
import NIOCore
import NIOHTTP1

/// A locally decided answer (a refusal, forward-auth's verdict, a local endpoint's answer) as the
/// parts written to the client: its headers checked, its length, the request's id and the
/// `Connection` field the client needs (`close` where the connection ends with the answer,
/// `keep-alive` for an HTTP/1.0 client whose connection stays open).
struct LocalAnswer {
    let head: HTTPResponseHead
    /// Nil for an empty body and for the answer to a HEAD request.
    let body: ByteBuffer?
    /// The log reason when the verdict could not be written as it was and a 500 went instead.
    let failure: String?

    var status: Int { Int(head.status.code) }

    init(
        _ verdict: VerdictResponse,
        requestID: String,
        connection: String?,
        isHeadRequest: Bool,
        allocator: ByteBufferAllocator
    ) {
        var headers = HTTPHeaders()
        for (name, value) in verdict.headers { headers.add(name: name, value: value) }
        var body = verdict.body
        var status = verdict.status
        failure = HTTPQuoting.areValidToSend(headers) ? nil : "invalid_response_header"
        if failure != nil {
            // Cannot happen with the fixed texts of GateError, but no header Tollgate writes may
            // ever carry a CR, LF or NUL, whatever it was built from.
            headers = HTTPHeaders()
            body = #"{"error":"server_error","error_description":"the answer could not be written"}"#
            status = 500
        }
        if !body.isEmpty && !headers.contains(name: "content-type") {
            headers.add(name: "Content-Type", value: "application/json")
        }
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        headers.add(name: "X-Request-Id", value: requestID)
        if let connection { headers.add(name: "Connection", value: connection) }
        head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: headers)
        if body.isEmpty || isHeadRequest {
            self.body = nil
        } else {
            var buffer = allocator.buffer(capacity: body.utf8.count)
            buffer.writeString(body)
            self.body = buffer
        }
    }
}

extension VerdictResponse {
    /// A local endpoint's answer; its own `Content-Length` and `Connection` are Tollgate's to set.
    init(endpointAnswer head: HTTPResponse, body: [UInt8]) {
        var headers: [(String, String)] = []
        for field in head.headerFields where field.name != .contentLength && field.name != .connection {
            headers.append((field.name.rawName, field.value))
        }
        self.init(status: head.status.code, headers: headers, body: String(decoding: body, as: UTF8.self))
    }
}

extension HTTPRequest {
    /// The request as swift-http-types has it, for a local endpoint.
    /// - Parameter head: a head that passed `check`.
    init(localRequest head: RequestHead, scheme: String) {
        let authority = head.authority ?? head.value(of: head.known.host)
        self.init(
            method: HTTPRequest.Method(head.method.rawValue) ?? .get,
            scheme: scheme,
            authority: authority,
            path: head.target
        )
        for (name, value) in head.headers {
            guard let fieldName = HTTPField.Name(name) else { continue }
            headerFields.append(HTTPField(name: fieldName, value: value))
        }
    }
}
