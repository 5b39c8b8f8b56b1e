import Synchronization

/// The in-process issuer's `issuer:` section, as the gate needs it: its name, URL and audiences.
/// TollgateIssuer parses the section whole (`LocalIssuerSettings`) and registers its parser
/// (`IssuerSectionParser.register`); TollgateCore only finds the section and hands it over.
public protocol LocalIssuerSection: Sendable {
    var name: String { get }
    var issuer: String { get }
    var audiences: [String] { get }
    /// Where the section starts in the file.
    var line: Int? { get }
    /// Whether `other` configures the same issuer, wherever it sits in the file.
    func sameSection(as other: any LocalIssuerSection) -> Bool
}

/// A parsed `issuer:` section in a configuration (equal when it configures the same issuer at
/// the same place).
public struct IssuerSection: Sendable, Equatable {
    public let value: any LocalIssuerSection

    public init(_ value: any LocalIssuerSection) {
        self.value = value
    }

    public static func == (lhs: IssuerSection, rhs: IssuerSection) -> Bool {
        lhs.value.sameSection(as: rhs.value) && lhs.value.line == rhs.value.line
    }
}

/// Who parses the `issuer:` section: the issuer module, registered by the program that runs
/// it before any configuration is loaded. Without it the section is refused.
public enum IssuerSectionParser {
    public typealias Parse =
        @Sendable (ConfigurationNode, ConfigurationContext) throws(ConfigurationError) -> any LocalIssuerSection

    private static let registered = Mutex<Parse?>(nil)

    public static func register(_ parse: @escaping Parse) {
        registered.withLock { $0 = parse }
    }

    static func parse(
        _ node: ConfigurationNode,
        context: ConfigurationContext
    ) throws(ConfigurationError) -> any LocalIssuerSection {
        guard let parse = registered.withLock({ $0 }) else {
            throw node.error("this program does not run an issuer (the tollgate executable does)")
        }
        return try parse(node, context)
    }
}
