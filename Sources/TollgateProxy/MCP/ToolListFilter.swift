import NIOHTTP1
import TollgateCore

/// Cuts a `tools/list` answer to the tools the caller's token may call, so a client never offers
/// a tool the gate would refuse. The answer is a JSON body (read whole) or server-sent events
/// (each event read whole and relayed in turn); both are bounded by `maximumToolListBytes`.
///
/// Fails closed: an answer that cannot be read strictly (invalid JSON, duplicate members, a
/// result without a `tools` array, a tool without a name, over the bound, compressed) is never
/// relayed; the client gets a JSON-RPC error instead. The tools kept are copied byte for byte,
/// and everything else in the answer too. A class: the proxy handler's exchange holds a pointer,
/// `nil` on every request that is not a `tools/list`.
final class ToolListFilter {
    let policy: MCPPolicy
    let token: VerifiedToken
    /// The request's id, which its answer carries; `nil` for a GET's event stream.
    let requestID: JSONValue?
    /// The request was `tools/list`: its answer must carry the list. Otherwise only events are
    /// read (a stream can carry an earlier `tools/list` answer again, replayed after
    /// `Last-Event-ID`), and a JSON answer, which answers this request alone, passes.
    let listRequested: Bool
    /// Where the unread part of `pending` starts.
    private var consumed = 0
    /// No byte of the answer was read yet (a byte order mark may open an event stream).
    private var atStart = true
    private(set) var mode = Mode.undecided
    private var pending: [UInt8] = []
    /// A JSON answer's head, held until its body is read and cut.
    var heldHead: (relayed: ResponseRelay.Relayed, head: HTTPResponseHead)?
    /// Where the scan for the end of the next event goes on.
    private var scanned = 0

    enum Mode: Equatable {
        case undecided
        /// Not an answer to filter (an error status): relayed as it is.
        case passThrough
        /// A JSON body, read whole before anything is written.
        case json
        /// Server-sent events, each one filtered as it completes.
        case events
        case failed
    }

    struct Failure: Error, Equatable {
        let reason: String
    }

    init(policy: MCPPolicy, token: VerifiedToken, requestID: JSONValue?, listRequested: Bool) {
        self.policy = policy
        self.token = token
        self.requestID = requestID
        self.listRequested = listRequested
    }

    /// Decides from the answer's status and headers (never called for a 1xx, which neither
    /// starts nor ends the filter). An error status or a 204 passes as it is: any other success
    /// could carry the list, and must be readable.
    func start(status: Int, contentType: String?, contentEncoding: String?) -> Result<Mode, Failure> {
        guard (200..<300).contains(status), status != 204 else {
            mode = .passThrough
            return .success(mode)
        }
        let type = (contentType ?? "").split(separator: ";").first.map { $0.trimmingSpaces().lowercased() } ?? ""
        let readable = type == "text/event-stream" || (listRequested && type == "application/json")
        if !readable && !listRequested {
            mode = .passThrough
            return .success(mode)
        }
        if let contentEncoding, !contentEncoding.isEmpty, contentEncoding.lowercased() != "identity" {
            mode = .failed
            return .failure(Failure(reason: "a compressed answer that may carry a tool list"))
        }
        switch type {
        case "application/json": mode = .json
        case "text/event-stream": mode = .events
        default:
            mode = .failed
            return .failure(Failure(reason: "a tool list of type '\(type)'"))
        }
        return .success(mode)
    }

    /// A JSON body's bytes, held until its end.
    func append(_ bytes: some Collection<UInt8>) -> Failure? {
        guard pending.count + bytes.count <= policy.maximumToolListBytes else {
            mode = .failed
            return Failure(reason: "the tool list is over its bound")
        }
        pending += bytes
        return nil
    }

    /// The JSON body, filtered.
    func finishJSON() -> Result<[UInt8], Failure> {
        let body = pending
        pending = []
        switch filtered(message: body, mustAnswer: true) {
        case .success(let bytes): return .success(bytes ?? body)
        case .failure(let failure):
            mode = .failed
            return .failure(failure)
        }
    }

    /// Server-sent events' bytes: the complete events, filtered, to relay now, and the failure
    /// that stopped the rest (the events before it are relayed).
    func feed(_ bytes: some Collection<UInt8>) -> (relay: [UInt8], failure: Failure?) {
        pending += bytes
        if atStart {
            // A byte order mark may open the stream; a reader drops it, and so does this one, or
            // the first event would not be seen to carry data.
            if pending.count < 3 && [0xEF, 0xBB, 0xBF].starts(with: pending) { return ([], nil) }
            atStart = false
            if pending.starts(with: [0xEF, 0xBB, 0xBF]) { pending.removeFirst(3) }
        }
        var out: [UInt8] = []
        while let end = nextEventEnd() {
            let event = Array(pending[consumed..<end])
            consumed = end
            scanned = end
            switch filteredEvent(event) {
            case .success(let bytes): out += bytes
            case .failure(let failure):
                mode = .failed
                return (out, failure)
            }
        }
        // What was read goes at once, not event by event (which would move the rest each time).
        pending.removeFirst(consumed)
        scanned -= consumed
        consumed = 0
        if pending.count > policy.maximumToolListBytes {
            mode = .failed
            return (out, Failure(reason: "an event of the tool list is over its bound"))
        }
        return (out, nil)
    }

    /// The events' end: a last event without its blank line is read as one (an answer cut short
    /// is refused like any other that cannot be read).
    func finishEvents() -> Result<[UInt8], Failure> {
        guard !pending.isEmpty else { return .success([]) }
        let event = pending
        pending = []
        if event.allSatisfy({ $0 == 0x0A || $0 == 0x0D }) { return .success(event) }
        return filteredEvent(event)
    }

    func fail() {
        mode = .failed
        pending = []
    }

    /// The head of a filtered answer: the upstream's fields less those that describe its
    /// connection or its length (the filtered body has its own).
    static func answerHead(_ head: ResponseHead, closes: Bool) -> HTTPResponseHead {
        let nio = head.nioHead
        let named = Set(
            nio.headers["connection"].flatMap { $0.split(separator: ",") }.map { $0.trimmingSpaces().lowercased() }
        )
        var headers = HTTPHeaders()
        for (name, value) in nio.headers {
            switch name.lowercased() {
            case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "content-length", "te", "trailer",
                "upgrade":
                continue
            case let lowered where named.contains(lowered):
                continue
            default:
                headers.add(name: name, value: value)
            }
        }
        if closes { headers.add(name: "Connection", value: "close") }
        return HTTPResponseHead(version: .http1_1, status: nio.status, headers: headers)
    }

    /// The JSON-RPC error that stands for an answer that could not be filtered.
    var errorMessage: String {
        GateError.JSONRPCError(id: requestID, code: .internalError).body
    }

    /// The end (exclusive) of the first complete event in `pending`: after the blank line that
    /// closes it (lines end in CRLF, LF or CR).
    private func nextEventEnd() -> Int? {
        var index = max(scanned, consumed)
        var lineStart = index
        while index < pending.count {
            let byte = pending[index]
            guard byte == 0x0A || byte == 0x0D else {
                index += 1
                continue
            }
            var next = index + 1
            if byte == 0x0D {
                // A CR at the end of what arrived may be half of a CRLF.
                if next == pending.count {
                    scanned = lineStart
                    return nil
                }
                if pending[next] == 0x0A { next += 1 }
            }
            // A blank line ends the event (a blank line with nothing before it is relayed alone).
            if index == lineStart { return next }
            lineStart = next
            index = next
        }
        scanned = lineStart
        return nil
    }

    /// One event: relayed as it is unless its data is a JSON-RPC answer carrying a tool list,
    /// which is filtered and written back as the event's data.
    private func filteredEvent(_ event: [UInt8]) -> Result<[UInt8], Failure> {
        var data: [UInt8] = []
        var hasData = false
        var otherLines: [UInt8] = []
        var index = 0
        while index < event.count {
            var end = index
            while end < event.count, event[end] != 0x0A, event[end] != 0x0D { end += 1 }
            let line = event[index..<end]
            var next = end
            if next < event.count {
                next += event[next] == 0x0D && next + 1 < event.count && event[next + 1] == 0x0A ? 2 : 1
            }
            if line.starts(with: Array("data".utf8))
                && (line.count == 4 || line[line.startIndex + 4] == UInt8(ascii: ":"))
            {
                var value = line.dropFirst(5)
                if value.first == 0x20 { value = value.dropFirst() }
                if hasData { data.append(0x0A) }
                data += value
                hasData = true
            } else if !line.isEmpty {
                otherLines += line
                otherLines.append(0x0A)
            }
            index = next
        }
        // No data, or empty data (a stream's priming event, which only carries its id).
        guard hasData, data.contains(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }) else {
            return .success(event)
        }
        switch filtered(message: data, mustAnswer: false) {
        case .failure(let failure): return .failure(failure)
        case .success(nil): return .success(event)
        case .success(let bytes?):
            var out = otherLines
            var lineStart = 0
            for (offset, byte) in bytes.enumerated() where byte == 0x0A || byte == 0x0D {
                out += Array("data: ".utf8) + bytes[lineStart..<offset] + [0x0A]
                lineStart = offset + 1
            }
            out += Array("data: ".utf8) + bytes[lineStart...] + [0x0A, 0x0A]
            return .success(out)
        }
    }

    /// A JSON-RPC message, filtered when it is an answer carrying a tool list; `nil` when nothing
    /// in it changes. `mustAnswer`: the message is the whole answer to the `tools/list` request
    /// (a JSON body), so anything else is refused.
    func filtered(message: [UInt8], mustAnswer: Bool) -> Result<[UInt8]?, Failure> {
        let parsed: JSONValue
        do {
            parsed = try JSONParser.parse(message, maximumDepth: MCPRequest.maximumDepth)
        } catch {
            return .failure(Failure(reason: "the tool list is not valid JSON (\(error.reason))"))
        }
        guard case .object(let members) = parsed else {
            return .failure(Failure(reason: "the tool list is not a JSON-RPC message"))
        }
        let isOurAnswer = members["method"] == nil && requestID != nil && members["id"] == requestID
        guard let tools = members["result"]?["tools"] else {
            if isOurAnswer && members["result"] != nil && members["error"] != nil {
                return .failure(Failure(reason: "an answer with both a result and an error"))
            }
            if isOurAnswer && listRequested && members["error"] == nil {
                return .failure(Failure(reason: "an answer without a tool list"))
            }
            if mustAnswer && !isOurAnswer { return .failure(Failure(reason: "the answer is for another request")) }
            return .success(nil)
        }
        // A tool list, wherever it is: filtered, or refused when it cannot be.
        guard members["method"] == nil, members["error"] == nil, case .array(let list) = tools else {
            return .failure(Failure(reason: "the tool list is not an array of a plain answer"))
        }
        if mustAnswer && !isOurAnswer { return .failure(Failure(reason: "the answer is for another request")) }
        var keep: [Bool] = []
        for tool in list {
            guard case .string(let name)? = tool["name"] else {
                return .failure(Failure(reason: "a tool without a name"))
            }
            keep.append(policy.mayCall(tool: name, token))
        }
        if !keep.contains(false) { return .success(nil) }
        // Splice: the message as received, with the refused tools taken out of the array.
        let spans = JSONSpans(bytes: message)
        let root = spans.skipWhitespace(0)
        guard let result = spans.members(ofObjectAt: root).last(where: { $0.name == "result" })?.value,
            let array = spans.members(ofObjectAt: result.lowerBound).last(where: { $0.name == "tools" })?.value
        else { return .failure(Failure(reason: "the tool list could not be located")) }
        let elements = spans.elements(ofArrayAt: array.lowerBound)
        guard elements.count == keep.count else {
            return .failure(Failure(reason: "the tool list could not be located"))
        }
        var out = Array(message[..<array.lowerBound])
        out.append(UInt8(ascii: "["))
        var first = true
        for (element, kept) in zip(elements, keep) where kept {
            if !first { out.append(UInt8(ascii: ",")) }
            out += message[element]
            first = false
        }
        out.append(UInt8(ascii: "]"))
        out += message[array.upperBound...]
        return .success(out)
    }
}
