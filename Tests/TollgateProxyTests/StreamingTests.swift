import Foundation
import Testing
import TollgateTestSupport

/// Large bodies pass through the real `tollgate` process without being buffered.
@Suite("Streaming", .serialized)
struct StreamingTests {
    static let gibibyte = 1 << 30

    /// Peak resident memory of a process, in bytes (`VmHWM` in /proc).
    static func peakResidentBytes(of pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let digits = line.filter(\.isNumber)
            return Int(digits).map { $0 * 1024 }
        }
        return nil
    }

    @Test("a 1 GiB request body and a 1 GiB response body pass through; peak memory stays under 100 MB")
    func gibibyteBothWays() async throws {
        let upstream = try await StreamingServer.start()
        defer { Task { try? await upstream.shutdown() } }
        let port = try Ports.free()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        try """
        listen: 127.0.0.1:\(port)
        admin: 127.0.0.1:0
        upstream: http://127.0.0.1:\(upstream.port)
        server:
          access_log: false
        routes:
          - match: { prefix: / }
            auth: none
        """.write(to: file, atomically: true, encoding: .utf8)
        let process = try ExternalProcess(TollgateBinary.path, ["serve", "--config", file.path])
        defer { process.stop() }
        try await Ports.waitUntilListening(port)

        let upload = try await StreamingClient.upload(port: port, path: "/sink", bytes: Self.gibibyte)
        #expect(upload.head.hasPrefix("HTTP/1.1 200"), "\(upload.head)")
        #expect(upload.body == "received \(Self.gibibyte)")

        let download = try await StreamingClient.download(port: port, path: "/source/\(Self.gibibyte)")
        #expect(download.head.hasPrefix("HTTP/1.1 200"), "\(download.head)")
        #expect(download.bodyBytes == Self.gibibyte)

        let peak = try #require(Self.peakResidentBytes(of: process.process.processIdentifier))
        #expect(peak < 100 * 1024 * 1024, "peak resident memory \(peak / 1024 / 1024) MB")
    }
}
