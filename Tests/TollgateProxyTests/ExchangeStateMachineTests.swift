import NIOCore
import NIOHTTP1
import Testing

@testable import TollgateProxy

/// The exchange's decisions without a channel: the upstream is a plain object, every event's
/// action is checked.
@Suite struct ExchangeStateMachineTests {
    final class Upstream {}
    typealias Machine = ExchangeStateMachine<Upstream>

    static let get = Machine.RequestFacts(keepAlive: true, hasBody: false, isHead: false, isHTTP10: false)
    static let post = Machine.RequestFacts(keepAlive: true, hasBody: true, isHead: false, isHTTP10: false)
    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    static func head(_ method: HTTPMethod = .GET) -> UpstreamRequestHead {
        UpstreamRequestHead(
            method: method,
            bytes: ByteBuffer(string: "\(method.rawValue) / HTTP/1.1\r\n\r\n"),
            framing: .none
        )
    }

    static func relayed(
        reusable: Bool = true,
        closesClient: Bool = false,
        switches: Bool = false
    ) -> ResponseRelay.Relayed {
        ResponseRelay.Relayed(
            part: .head(HTTPResponseHead(version: .http1_1, status: .ok)),
            switchesProtocols: switches,
            upstreamReusable: reusable,
            closesClient: closesClient
        )
    }

    /// A GET forwarded on `upstream`, its end received.
    static func forwarded(_ upstream: Upstream, reused: Bool = false, facts: Machine.RequestFacts = get) -> Machine {
        var machine = Machine()
        machine.start(facts)
        machine.forwarding(head(), upgradeProtocols: nil)
        _ = machine.requestEnd(nil)
        _ = machine.upstreamConnected(upstream, reused: reused, now: start)
        return machine
    }

    @Test func partsAreHeldUntilTheUpstreamIsThereThenSentInOrder() {
        var machine = Machine()
        let upstream = Upstream()
        machine.start(Self.post)
        machine.verifying()
        guard case .none = machine.requestBody(ByteBuffer(string: "ab")) else {
            Issue.record("a body part while verifying is held")
            return
        }
        #expect(machine.holdsReads { _ in true }, "a body still coming waits at the socket")
        machine.forwarding(Self.head(.POST), upgradeProtocols: nil)
        guard case .send(let parts) = machine.upstreamConnected(upstream, reused: false, now: Self.start) else {
            Issue.record("connected")
            return
        }
        #expect(parts.count == 2)
        if case .head = parts[0] {} else { Issue.record("the head goes first") }
        guard case .write(let to, let buffer) = machine.requestBody(ByteBuffer(string: "cd")) else {
            Issue.record("a body part while forwarding goes upstream")
            return
        }
        #expect(to === upstream && String(buffer: buffer) == "cd")
        guard case .writeEnd(let ended) = machine.requestEnd(nil) else {
            Issue.record("the end goes upstream")
            return
        }
        #expect(ended === upstream)
        #expect(!machine.holdsReads { _ in true })
        #expect(machine.holdsReads { _ in false }, "an upstream that cannot take more holds the client's reads")
    }

    @Test func aConnectionThatArrivesAfterTheAnswerGoesBackUnused() {
        var machine = Machine()
        machine.start(Self.get)
        machine.forwarding(Self.head(), upgradeProtocols: nil)
        _ = machine.requestEnd(nil)
        let failure = machine.upstreamConnectFailed()
        #expect(failure != nil)
        let answered = machine.answeringLocally(status: 502)
        #expect(answered == .finish)
        _ = machine.finished()
        guard case .release = machine.upstreamConnected(Upstream(), reused: false, now: Self.start) else {
            Issue.record("released")
            return
        }
    }

    @Test func aFailedConnectClosesTheClientOnlyWhenABodyIsStillComing() {
        var machine = Machine()
        machine.start(Self.post)
        machine.forwarding(Self.head(.POST), upgradeProtocols: nil)
        let failure = machine.upstreamConnectFailed()
        #expect(failure?.code == .upstreamUnreachable)
        #expect(!machine.keepAlive)
        var bodiless = Machine()
        bodiless.start(Self.get)
        bodiless.forwarding(Self.head(), upgradeProtocols: nil)
        _ = bodiless.requestEnd(nil)
        let bodilessFailure = bodiless.upstreamConnectFailed()
        #expect(bodilessFailure != nil)
        #expect(bodiless.keepAlive)
    }

    @Test func theEndOfTheAnswerReturnsAReusableConnectionAndFinishes() {
        let upstream = Upstream()
        var machine = Self.forwarded(upstream)
        let flushes = machine.answerHeadRelayed(Self.relayed())
        #expect(!flushes)
        #expect(machine.responseStarted)
        guard
            case .complete(let back, let reusable, let writeEnd, let finishes) = machine.answerEnded(
                trailersAreValid: true
            )
        else {
            Issue.record("complete")
            return
        }
        #expect(back === upstream && reusable && writeEnd && finishes)
        let finished = machine.finished()
        #expect(finished == (keepAlive: true, parserStopped: false))
        #expect(!machine.isActive)
    }

    @Test func anUpstreamThatSaysCloseIsNotReusedAndAHEADAnswerHasNoEnd() {
        var machine = Self.forwarded(
            Upstream(),
            facts: .init(keepAlive: true, hasBody: false, isHead: true, isHTTP10: false)
        )
        _ = machine.answerHeadRelayed(Self.relayed(reusable: false, closesClient: true))
        #expect(!machine.keepAlive)
        guard case .complete(_, let reusable, let writeEnd, _) = machine.answerEnded(trailersAreValid: true) else {
            Issue.record("complete")
            return
        }
        #expect(!reusable && !writeEnd)
    }

    @Test func anEarlyAnswerDropsTheRestOfTheRequestThenFinishes() {
        let upstream = Upstream()
        var machine = Machine()
        machine.start(Self.post)
        machine.forwarding(Self.head(.POST), upgradeProtocols: nil)
        _ = machine.upstreamConnected(upstream, reused: false, now: Self.start)
        _ = machine.answerHeadRelayed(Self.relayed())
        guard case .complete(_, let reusable, _, let finishes) = machine.answerEnded(trailersAreValid: true) else {
            Issue.record("complete")
            return
        }
        #expect(!reusable, "the upstream had not read the whole request")
        #expect(!finishes)
        guard case .none = machine.requestBody(ByteBuffer(string: "late")) else {
            Issue.record("dropped")
            return
        }
        guard case .finish = machine.requestEnd(nil) else {
            Issue.record("the request's end finishes the exchange")
            return
        }
    }

    @Test func invalidAnswerTrailersCutBothConnections() {
        let upstream = Upstream()
        var machine = Self.forwarded(upstream)
        _ = machine.answerHeadRelayed(Self.relayed())
        guard case .fail(.cut(let closing, let code, let detail)) = machine.answerEnded(trailersAreValid: false) else {
            Issue.record("cut")
            return
        }
        #expect(closing === upstream && code == .upstreamInvalidResponse && detail == "invalid_response_trailer")
    }

    @Test func aRefusedAnswerIsA502BeforeItStartedAndACutAfter() {
        var before = Self.forwarded(Upstream())
        guard case .respond(_, let error) = before.answerRefused(reason: "bad") else {
            Issue.record("502")
            return
        }
        #expect(error.code == .upstreamInvalidResponse && !before.keepAlive)
        var after = Self.forwarded(Upstream())
        _ = after.answerHeadRelayed(Self.relayed())
        guard case .cut = after.answerRefused(reason: "bad") else {
            Issue.record("cut")
            return
        }
    }

    @Test func aPooledConnectionFoundClosedIsRetriedOnceForAnIdempotentBodilessRequest() {
        var machine = Self.forwarded(Upstream(), reused: true)
        guard case .retry = machine.upstreamClosed() else {
            Issue.record("retried")
            return
        }
        #expect(machine.isWaiting(generation: machine.generation))
        guard case .send(let parts) = machine.upstreamConnected(Upstream(), reused: false, now: Self.start) else {
            Issue.record("sent again")
            return
        }
        #expect(parts.count == 2)
        guard case .fail(.respond(_, let error)) = machine.upstreamClosed() else {
            Issue.record("not retried twice")
            return
        }
        #expect(error.code == .upstreamClosed)
    }

    @Test(arguments: [("a new connection", false, HTTPMethod.GET), ("a POST", true, .POST)])
    func noRetryOnANewConnectionOrForAPOST(_ label: String, _ reused: Bool, _ method: HTTPMethod) {
        var machine = Machine()
        machine.start(Self.get)
        machine.forwarding(Self.head(method), upgradeProtocols: nil)
        _ = machine.requestEnd(nil)
        _ = machine.upstreamConnected(Upstream(), reused: reused, now: Self.start)
        guard case .fail = machine.upstreamClosed() else {
            Issue.record("\(label): not retried")
            return
        }
    }

    @Test func theUpstreamTimesOutOnlyBeforeItsAnswerStarts() {
        let upstream = Upstream()
        var waiting = Machine()
        waiting.start(Self.get)
        waiting.verifying()
        let notForwarding = waiting.checkUpstreamTimeout(now: Self.start + .seconds(100), limit: .seconds(5))
        #expect(notForwarding == nil)
        var machine = Self.forwarded(upstream)
        let early = machine.checkUpstreamTimeout(now: Self.start + .milliseconds(4999), limit: .seconds(5))
        #expect(early == nil)
        guard
            case .respond(let closing, let error) = machine.checkUpstreamTimeout(
                now: Self.start + .seconds(5),
                limit: .seconds(5)
            )
        else {
            Issue.record("504")
            return
        }
        #expect(closing === upstream && error.code == .upstreamTimeout && !machine.keepAlive)
        var answering = Self.forwarded(upstream)
        _ = answering.answerHeadRelayed(Self.relayed())
        let started = answering.checkUpstreamTimeout(now: Self.start + .seconds(100), limit: .seconds(5))
        #expect(started == nil)
    }

    @Test func aParseErrorAfterACompleteRequestLetsItsAnswerFinish() {
        var machine = Self.forwarded(Upstream())
        guard case .closeAfterAnswer = machine.parseError() else {
            Issue.record("the answer finishes first")
            return
        }
        #expect(!machine.keepAlive)
    }

    @Test func aParseErrorInABodyCutsTheUpstreamAndIsAnswered() {
        let upstream = Upstream()
        var machine = Machine()
        machine.start(Self.post)
        machine.forwarding(Self.head(.POST), upgradeProtocols: nil)
        _ = machine.upstreamConnected(upstream, reused: false, now: Self.start)
        guard case .respond(let closing) = machine.parseError() else {
            Issue.record("answered")
            return
        }
        #expect(closing === upstream && !machine.keepAlive)
        let answered = machine.answeringLocally(status: 400)
        #expect(answered == .discardAndFinish)
    }

    @Test func aParseErrorWhileDroppingTheRestOfAnAnsweredRequestFinishesAndCloses() {
        var machine = Machine()
        machine.start(Self.post)
        machine.forwarding(Self.head(.POST), upgradeProtocols: nil)
        _ = machine.upstreamConnected(Upstream(), reused: false, now: Self.start)
        _ = machine.answerHeadRelayed(Self.relayed())
        _ = machine.answerEnded(trailersAreValid: true)
        guard case .finishAndClose = machine.parseError() else {
            Issue.record("the answer is whole: finish, then close after it")
            return
        }
        #expect(!machine.keepAlive)
    }

    @Test func aParseErrorWithoutAnExchangeStartsOneForTheRefusal() {
        var machine = Machine()
        guard case .respondToNewExchange = machine.parseError() else {
            Issue.record("a new exchange")
            return
        }
        #expect(machine.isActive && !machine.keepAlive)
    }

    @Test func aRefusalOfARequestWithABodyStillComingCloses() {
        var machine = Machine()
        machine.start(Self.post)
        let closing = machine.answeringLocally(status: 401)
        #expect(closing == .discardAndFinish)
        var ended = Machine()
        ended.start(Self.post)
        _ = ended.requestEnd(nil)
        let finishing = ended.answeringLocally(status: 401)
        #expect(finishing == .finish)
        #expect(ended.keepAlive)
        var answered = Machine()
        answered.start(Self.post)
        let reading = answered.answeringLocally(status: 200)
        #expect(reading == .discardAndRead, "a 2xx reads the body on")
    }

    @Test func aLocalEndpointsBodyIsCollectedAndBounded() {
        var machine = Machine()
        machine.start(Self.post)
        machine.collectingLocally()
        _ = machine.requestBody(ByteBuffer(string: "a=1"))
        guard case .answerLocally(let body) = machine.requestEnd(nil) else {
            Issue.record("answered")
            return
        }
        #expect(body == Array("a=1".utf8))
        #expect(machine.isWaiting(generation: machine.generation))
        #expect(!machine.isWaiting(generation: machine.generation &- 1), "a stale result is not taken")
        var large = Machine()
        large.start(Self.post)
        large.collectingLocally()
        guard
            case .respond(let error) = large.requestBody(ByteBuffer(repeating: 0x61, count: maximumLocalBodyBytes + 1))
        else {
            Issue.record("413")
            return
        }
        #expect(error.code == .payloadTooLarge && !large.keepAlive)
    }

    @Test func anAcceptedUpgradeRelaysAfterTheAnswersEnd() {
        let upstream = Upstream()
        var machine = Machine()
        machine.start(Self.get)
        machine.headChecked(parserStops: true, acceptsTrailers: false)
        machine.forwarding(Self.head(), upgradeProtocols: ["websocket"])
        _ = machine.requestEnd(nil)
        _ = machine.upstreamConnected(upstream, reused: false, now: Self.start)
        #expect(machine.holdsReads { _ in true }, "the stopped parser holds reads")
        let flushes = machine.answerHeadRelayed(Self.relayed(switches: true))
        #expect(flushes)
        guard case .relay(let relayed) = machine.answerEnded(trailersAreValid: true) else {
            Issue.record("relay")
            return
        }
        #expect(relayed === upstream)
        _ = machine.finished()
        let closed = machine.upstreamClosed()
        #expect(closed == nil, "the relay owns the connections now")
    }

    @Test func theClientClosingHandsBackTheUpstreamInUse() {
        let upstream = Upstream()
        var machine = Self.forwarded(upstream)
        let inUse = machine.clientClosed()
        #expect(inUse === upstream)
        #expect(!machine.isActive)
        let again = machine.clientClosed()
        #expect(again == nil)
    }
}
