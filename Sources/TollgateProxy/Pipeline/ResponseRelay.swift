import NIOHTTP1

/// What becomes of the upstream's answer head on its way to the client, decided from the head
/// and the exchange's facts alone; `ProxyHandler` performs it.
enum ResponseRelay {
    enum HeadAction: Equatable {
        /// An interim answer the client does not see.
        case skip
        /// Not relayable: 502, and neither connection is used again.
        case refuse(reason: String)
        /// Relay this head (hop-by-hop fields removed, `Connection` set); after a 101 the
        /// connections relay bytes. `upstreamReusable`: the upstream connection may serve
        /// another request once this answer has ended.
        case relay(HTTPResponseHead, switchesProtocols: Bool, upstreamReusable: Bool)
    }

    /// - Parameters:
    ///   - fromStream: the answer came on an h2c stream, whose framing no HTTP/1.1 parser checked.
    ///   - upgradeProtocols: the protocols the client asked to switch to and the route allows,
    ///     `nil` when the request asked for no upgrade that was relayed.
    ///   - clientKeepAlive: the client's connection stays open after this answer.
    ///   - toHTTP1Client: the client speaks HTTP/1.1 (not a stream of its own).
    static func head(
        _ head: HTTPResponseHead,
        fromStream: Bool,
        upgradeProtocols: [String]?,
        clientKeepAlive: Bool,
        toHTTP1Client: Bool
    ) -> HeadAction {
        if head.status == .continue { return .skip }
        if fromStream, let problem = UpstreamResponseFraming.problem(head) { return .refuse(reason: problem) }
        let switches = head.status == .switchingProtocols
        if switches && !acceptsSwitch(head, asked: upgradeProtocols) {
            // A 101 nobody asked for, or to another protocol than the one asked for (an h2c
            // tunnel): neither connection can be trusted to speak HTTP/1.1 any more.
            return .refuse(reason: "unrequested_upgrade")
        }
        var relayed = head
        relayed.headers = ProxySnapshot.downstreamHeaders(from: head.headers, isUpgrade: switches)
        if !clientKeepAlive && toHTTP1Client && !switches {
            relayed.headers.replaceOrAdd(name: "Connection", value: "close")
        }
        guard HTTPQuoting.areValidToSend(relayed.headers) else { return .refuse(reason: "invalid_response_header") }
        // An upstream that closes after this answer (`Connection: close`, HTTP/1.0) must not go
        // back to the pool, or the next request would meet a closing connection; nor one that was
        // asked to upgrade and did not (its parser may have stopped).
        let reusable = head.isKeepAlive && upgradeProtocols == nil
        return .relay(relayed, switchesProtocols: switches, upstreamReusable: reusable)
    }

    /// A 101 is relayed only for an upgrade the route allowed, to one protocol the client asked for.
    static func acceptsSwitch(_ head: HTTPResponseHead, asked: [String]?) -> Bool {
        guard let asked else { return false }
        let chosen = head.headers["upgrade"].flatMap { $0.split(separator: ",") }.map {
            ($0.trimmingSpaces().split(separator: "/", maxSplits: 1).first ?? "").lowercased()
        }
        return chosen.count == 1 && asked.contains(chosen[0])
    }
}
