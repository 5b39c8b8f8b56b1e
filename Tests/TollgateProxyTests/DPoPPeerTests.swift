import Foundation
import Testing
import TollgateTestSupport

/// The same honest and hostile DPoP proofs (made by joserfc) sent to Tollgate and to Apache
/// mod_oauth2 (Debian's libapache2-mod-oauth2, liboauth2 1.4.5.4), in the DPoP benchmark's own
/// set-up (`benchmarks/load/dpop.sh --cases`): Tollgate takes only the honest one, and
/// mod_oauth2 answers each case as the README's table says.
@Suite("DPoP against mod_oauth2", .serialized)
struct DPoPPeerTests {
    @Test func tollgateRefusesEveryHostileProofAndModOAuth2AnswersAsTheReadmeSays() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        var environment = ProcessInfo.processInfo.environment
        environment["TOLLGATE_BIN"] = TollgateBinary.path
        for name in ["UP_PORT", "APACHE_PORT", "APACHE_BEARER_PORT", "TOLLGATE_PORT", "ADMIN_PORT"] {
            environment[name] = String(try Ports.free())
        }
        let harness = try ExternalProcess(
            "/usr/bin/env",
            ["bash", root.appendingPathComponent("benchmarks/load/dpop.sh").path, "--cases"],
            environment: environment
        )
        defer { harness.stop() }
        let exited = await harness.waitForExit(timeout: .seconds(180))
        try #require(exited, "the harness did not finish: \(harness.log)")
        #expect(harness.process.terminationStatus == 0, "\(harness.log)")
        #expect(harness.log.contains("| no ath | 401 | 200 **taken** |"))
        #expect(harness.log.contains("dpop cases: as the table says"))
    }
}
