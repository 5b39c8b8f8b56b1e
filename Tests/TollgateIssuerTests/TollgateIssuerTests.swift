import Testing
import TollgateIssuer

@Suite struct TollgateIssuerTests {
    @Test func versionIsSemantic() {
        let parts = TollgateIssuer.version.split(separator: ".")
        #expect(parts.count == 3)
        #expect(parts.allSatisfy { UInt($0) != nil })
    }
}
