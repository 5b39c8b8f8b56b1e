import Testing
import TollgateCore

/// Configurations the loader must refuse, with a message naming the file, the field and what is
/// wrong with it.
enum ConfigurationErrors {
    /// One issuer (`main`) and one route matching `prefix`, then `tail`: more members of the
    /// route (indented by four spaces) or top-level sections (from column 0).
    static func oneRoute(prefix: String, _ tail: String) -> String {
        """
        upstream: http://127.0.0.1:1
        issuers:
          - name: main
            issuer: https://idp.test
            jwks_uri: https://idp.test/jwks
            audiences: [api]
        routes:
          - match: { prefix: \(prefix) }
        \(tail)
        """
    }

    /// Expects `yaml` refused with a message that names `file`, `field` and `message`.
    static func expectRefused(
        _ yaml: String,
        file: String,
        field: String,
        message: String,
        environment: [String: String] = [:],
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(sourceLocation: sourceLocation) {
            try ConfigurationLoader.parse(yaml: yaml, file: file, baseDirectory: "/tmp", environment: environment)
        } throws: { error in
            let text = "\(error)"
            return text.contains(file + ":") && text.contains(field) && text.contains(message)
        }
    }
}
