import Foundation
import Testing

/// The README's configuration reference cannot drift from the loader: every field the loader
/// accepts (its `mapping(allowed:)` lists) is a row of the README's field tables, and every field
/// those tables name is one the loader accepts.
@Suite struct ConfigurationReferenceTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// Every name in the loader's `allowed:` lists.
    static func acceptedFields() throws -> Set<String> {
        // The gate's loader, and the issuer module's parser of the `issuer:` section.
        let source = try [
            "Sources/TollgateCore/Configuration/ConfigurationLoader.swift",
            "Sources/TollgateIssuer/Configuration/LocalIssuerSettings+Parsing.swift",
        ].map { try String(contentsOf: root.appendingPathComponent($0), encoding: .utf8) }.joined(separator: "\n")
        var fields = Set<String>()
        var rest = Substring(source)
        while let start = rest.range(of: "allowed: [") {
            let list = rest[start.upperBound...]
            guard let end = list.firstIndex(of: "]") else { break }
            for piece in list[..<end].split(separator: "\"", omittingEmptySubsequences: false).enumerated()
            where piece.offset % 2 == 1 {
                fields.insert(String(piece.element))
            }
            rest = list[end...]
        }
        return fields
    }

    /// The names in the first column of the README's field tables (`| `a.b[].c` / `d` | …`),
    /// split into their parts.
    static func documentedFields() throws -> Set<String> {
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        var fields = Set<String>()
        var inTable = false
        for line in readme.split(separator: "\n") {
            if line.hasPrefix("| field |") || line.hasPrefix("| option |") {
                inTable = true
                continue
            }
            guard inTable else { continue }
            guard line.hasPrefix("|") else {
                inTable = false
                continue
            }
            let cells = line.split(separator: "|", omittingEmptySubsequences: false)
            guard cells.count > 2 else { continue }
            let names = cells[1].split(separator: "`", omittingEmptySubsequences: false).enumerated()
                .filter { $0.offset % 2 == 1 }.map(\.element)
            for name in names {
                for part in name.split(whereSeparator: { ".[]/ ".contains($0) }) { fields.insert(String(part)) }
            }
        }
        return fields
    }

    @Test func everyAcceptedFieldIsDocumentedAndEveryDocumentedFieldIsAccepted() throws {
        let accepted = try Self.acceptedFields()
        let documented = try Self.documentedFields()
        #expect(accepted.count > 100, "the loader's lists were found")
        #expect(documented.count > 100, "the README's tables were found")
        let undocumented = accepted.subtracting(documented).sorted()
        #expect(undocumented.isEmpty, "accepted by the loader but not in the README's tables: \(undocumented)")
        let unknown = documented.subtracting(accepted).sorted()
        #expect(unknown.isEmpty, "in the README's tables but unknown to the loader: \(unknown)")
    }
}
