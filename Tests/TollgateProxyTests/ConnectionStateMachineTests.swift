import NIOCore
import NIOHTTP1
import Testing

@testable import TollgateProxy

/// `ConnectionStateMachine` without sockets: every transition of a client connection between and
/// around its exchanges.
@Suite struct ConnectionStateMachineTests {
    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    static let header = TimeAmount.seconds(10)
    static let idle = TimeAmount.seconds(60)

    static func head(_ uri: String = "/") -> RequestPart {
        .head(RequestHead(HTTPRequestHead(version: .http1_1, method: .GET, uri: uri)))
    }

    static let body = RequestPart.body(ByteBuffer(string: "x"))
    static let end = RequestPart.end(nil)

    static func machine(isStream: Bool = false) -> ConnectionStateMachine {
        ConnectionStateMachine(isStream: isStream, now: start)
    }

    @Test func aHeadStartsServingAndItsPartsAreProcessed() {
        var machine = Self.machine()
        let result1 = machine.partReceived(Self.head())
        #expect(result1 == .process)
        #expect(machine.state == .serving)
        let result2 = machine.partReceived(Self.body)
        #expect(result2 == .process)
        let result3 = machine.partReceived(Self.end)
        #expect(result3 == .process)
    }

    @Test func aHeadPipelinedBehindARequestIsQueuedWithEverythingAfterIt() {
        var machine = Self.machine()
        _ = machine.partReceived(Self.head("/1"))
        let result4 = machine.partReceived(Self.head("/2"))
        #expect(result4 == .queue)
        let result5 = machine.partReceived(Self.end)
        #expect(result5 == .queue, "after a queued part, everything queues")
        #expect(machine.hasQueuedParts)
        let result6 = machine.nextQueuedPart()
        #expect(result6 == nil, "the next head waits for the current exchange")
    }

    @Test func keepAliveReplaysTheQueueInOrderUntilARequestHasToWait() {
        var machine = Self.machine()
        _ = machine.partReceived(Self.head("/1"))
        _ = machine.partReceived(Self.end)
        _ = machine.partReceived(Self.head("/2"))
        _ = machine.partReceived(Self.body)
        _ = machine.partReceived(Self.end)
        _ = machine.partReceived(Self.head("/3"))
        let later = Self.start + .seconds(1)
        let result7 = machine.exchangeFinished(keepAlive: true, parserStopped: false, now: later)
        #expect(result7 == .replayQueue)
        #expect(machine.state == .waitingForHead(since: later))
        let result8 = machine.nextQueuedPart()
        #expect(result8 == Self.head("/2"))
        #expect(machine.state == .serving)
        let result9 = machine.nextQueuedPart()
        #expect(result9 == Self.body)
        let result10 = machine.nextQueuedPart()
        #expect(result10 == Self.end)
        let result11 = machine.nextQueuedPart()
        #expect(result11 == nil, "/3 waits for /2's answer")
        let result12 = machine.exchangeFinished(keepAlive: true, parserStopped: false, now: later)
        #expect(result12 == .replayQueue)
        let result13 = machine.nextQueuedPart()
        #expect(result13 == Self.head("/3"))
        #expect(!machine.hasQueuedParts)
    }

    @Test func queuedPartsLeftBeforeTheNextHeadAreDroppedWhenTheConnectionWaitsForOne() {
        var machine = Self.machine()
        _ = machine.partReceived(Self.head("/1"))
        _ = machine.partReceived(Self.head("/2"))
        _ = machine.partReceived(Self.body)
        _ = machine.partReceived(Self.end)
        _ = machine.partReceived(Self.head("/3"))
        _ = machine.exchangeFinished(keepAlive: true, parserStopped: false, now: Self.start)
        let result14 = machine.nextQueuedPart()
        #expect(result14 == Self.head("/2"))
        // /2's exchange finishes before the rest of it is replayed.
        _ = machine.exchangeFinished(keepAlive: true, parserStopped: false, now: Self.start)
        let result15 = machine.nextQueuedPart()
        #expect(result15 == Self.head("/3"))
        #expect(!machine.hasQueuedParts)
    }

    @Test func aClosingAnswerDropsTheQueueAndIgnoresEverythingAfter() {
        var machine = Self.machine()
        _ = machine.partReceived(Self.head("/1"))
        _ = machine.partReceived(Self.head("/smuggled"))
        let result16 = machine.exchangeFinished(keepAlive: false, parserStopped: false, now: Self.start)
        #expect(result16 == .closeAfterLastWrite)
        #expect(machine.state == .closing(since: Self.start))
        #expect(!machine.hasQueuedParts)
        let result17 = machine.nextQueuedPart()
        #expect(result17 == nil)
        let result18 = machine.partReceived(Self.head("/later"))
        #expect(result18 == .ignore)
        let result19 = machine.partReceived(Self.body)
        #expect(result19 == .ignore)
    }

    @Test func aStoppedParserIsResumedOnlyWhenNothingIsQueued() {
        var machine = Self.machine()
        _ = machine.partReceived(Self.head())
        let result20 = machine.exchangeFinished(keepAlive: true, parserStopped: true, now: Self.start)
        #expect(result20 == .resumeStoppedParser)
        var queued = Self.machine()
        _ = queued.partReceived(Self.head("/1"))
        _ = queued.partReceived(Self.head("/2"))
        let result21 = queued.exchangeFinished(keepAlive: true, parserStopped: true, now: Self.start)
        #expect(result21 == .replayQueue)
    }

    @Test func aParseErrorDropsTheQueue() {
        var machine = Self.machine()
        _ = machine.partReceived(Self.head("/1"))
        _ = machine.partReceived(Self.head("/2"))
        machine.parseErrorReceived()
        #expect(!machine.hasQueuedParts)
        let result22 = machine.partReceived(Self.end)
        #expect(result22 == .process, "the current request goes on")
    }

    @Test func aSwitchEndsHTTP() {
        var machine = Self.machine()
        _ = machine.partReceived(Self.head())
        _ = machine.partReceived(Self.head("/after"))
        machine.switchedProtocols()
        #expect(machine.state == .relaying)
        #expect(!machine.hasQueuedParts)
        let result23 = machine.partReceived(Self.head())
        #expect(result23 == .ignore)
        #expect(!machine.hasTimedOut(now: Self.start + .hours(1), headerTimeout: Self.header, idleTimeout: Self.idle))
    }

    @Test func theHeaderTimeoutRunsBeforeTheFirstRequestAndTheIdleTimeoutAfter() {
        var machine = Self.machine()
        #expect(!machine.hasTimedOut(now: Self.start + .seconds(9), headerTimeout: Self.header, idleTimeout: Self.idle))
        #expect(machine.hasTimedOut(now: Self.start + .seconds(10), headerTimeout: Self.header, idleTimeout: Self.idle))
        _ = machine.partReceived(Self.head())
        #expect(!machine.hasTimedOut(now: Self.start + .hours(1), headerTimeout: Self.header, idleTimeout: Self.idle))
        let finished = Self.start + .seconds(100)
        _ = machine.exchangeFinished(keepAlive: true, parserStopped: false, now: finished)
        #expect(machine.servedOne)
        #expect(!machine.hasTimedOut(now: finished + .seconds(59), headerTimeout: Self.header, idleTimeout: Self.idle))
        #expect(machine.hasTimedOut(now: finished + .seconds(60), headerTimeout: Self.header, idleTimeout: Self.idle))
    }

    @Test func aClosingConnectionWhoseClientStopsReadingStillTimesOut() {
        var machine = Self.machine()
        _ = machine.partReceived(Self.head())
        _ = machine.exchangeFinished(keepAlive: false, parserStopped: false, now: Self.start)
        #expect(
            !machine.hasTimedOut(now: Self.start + .seconds(59), headerTimeout: Self.header, idleTimeout: Self.idle)
        )
        #expect(machine.hasTimedOut(now: Self.start + .seconds(60), headerTimeout: Self.header, idleTimeout: Self.idle))
    }

    @Test func quiescingClosesAnIdleConnectionNowAndABusyOneAfterItsExchange() {
        var idle = Self.machine()
        let result24 = idle.quiesce()
        #expect(result24 == .closeNow)
        var busy = Self.machine()
        _ = busy.partReceived(Self.head())
        let result25 = busy.quiesce()
        #expect(result25 == .closeAfterCurrentExchange)
        #expect(busy.quiescing)
        let result26 = busy.exchangeFinished(keepAlive: true, parserStopped: false, now: Self.start)
        #expect(result26 == .closeAfterLastWrite)
        var closing = Self.machine()
        _ = closing.partReceived(Self.head())
        _ = closing.exchangeFinished(keepAlive: false, parserStopped: false, now: Self.start)
        let result27 = closing.quiesce()
        #expect(result27 == .none)
    }

    @Test func readsWaitWhileSomethingIsQueuedOrTheExchangeHoldsThem() {
        var machine = Self.machine()
        let result28 = machine.readRequested(exchangeHolds: false)
        #expect(result28)
        let result29 = machine.resumeReads()
        #expect(!result29, "nothing was held")
        let result30 = machine.readRequested(exchangeHolds: true)
        #expect(!result30)
        let result31 = machine.resumeReads()
        #expect(result31)
        let result32 = machine.resumeReads()
        #expect(!result32, "a held read is issued once")
        _ = machine.partReceived(Self.head("/1"))
        _ = machine.partReceived(Self.head("/2"))
        let result33 = machine.readRequested(exchangeHolds: false)
        #expect(!result33, "no more reads while requests are queued")
        machine.closed()
        let result34 = machine.resumeReads()
        #expect(!result34)
        #expect(!machine.hasQueuedParts)
    }

    @Test func anHTTP2StreamServesOneExchangeWithoutTimeoutsOrKeepAlive() {
        var stream = Self.machine(isStream: true)
        let result35 = stream.partReceived(Self.head())
        #expect(result35 == .process)
        let result36 = stream.exchangeFinished(keepAlive: false, parserStopped: false, now: Self.start)
        #expect(result36 == .none)
        #expect(!stream.hasTimedOut(now: Self.start + .hours(1), headerTimeout: Self.header, idleTimeout: Self.idle))
        let result37 = stream.quiesce()
        #expect(result37 == .none)
    }
}
