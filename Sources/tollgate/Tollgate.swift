import ArgumentParser
import TollgateCore
import TollgateIssuer

@main
struct Tollgate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tollgate",
        abstract: "Edge token verification: checks OAuth 2 access tokens in front of a service.",
        version: TollgateIssuer.version,
        subcommands: [CheckConfig.self]
    )
}

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate a configuration file and print the resolved route table."
    )

    @Argument(help: "The YAML configuration file.")
    var file: String

    func run() throws {
        let configuration: TollgateConfiguration
        do {
            configuration = try ConfigurationLoader.load(path: file)
        } catch {
            printError("error: \(error)")
            throw ExitCode(2)
        }
        print("configuration \(file) is valid")
        print("issuers:")
        for issuer in configuration.issuers {
            let algorithms = issuer.policy.algorithms.map(\.rawValue).sorted().joined(separator: ",")
            var keys = "introspection only"
            switch issuer.keySource {
            case .jwksURI(let url): keys = "jwks_uri \(url)"
            case .discovery: keys = "discovery"
            case .fixed(let box): keys = "jwks_file (\(box.keySet.keys.count) keys)"
            case nil: break
            }
            print("  \(issuer.policy.name): \(issuer.policy.issuer) [\(algorithms)] \(keys)")
        }
        print("routes (first match wins):")
        for route in configuration.routes.routes {
            let methods = route.methods.map { $0.sorted().joined(separator: ",") } ?? "*"
            var rule: String
            switch route.authentication {
            case .none: rule = "no token"
            case .required(let issuers): rule = "token from " + (issuers?.joined(separator: ",") ?? "any issuer")
            }
            if let scopes = route.scopes {
                if !scopes.all.isEmpty { rule += "; all of [\(scopes.all.joined(separator: " "))]" }
                if !scopes.any.isEmpty { rule += "; any of [\(scopes.any.joined(separator: " "))]" }
            }
            for condition in route.conditions { rule += "; \(condition)" }
            print("  \(route.name): \(methods) \(route.pattern) → \(rule)")
        }
        print("  default: \(configuration.routes.defaultAction.rawValue)")
        for warning in configuration.warnings { printError("warning: \(warning)") }
    }
}

func printError(_ message: String) {
    var standardError = StandardError()
    print(message, to: &standardError)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        FileHandleOutput.writeToStandardError(string)
    }
}
