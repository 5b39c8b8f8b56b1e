import Foundation
import TollgateCore
import TollgateIssuer

/// What a configuration will do, in the words operators read: the listeners, the issuers and
/// where their keys come from, and the routes with their requirements. `check-config` prints it
/// as a table; `serve` logs it once at start, as text on a terminal and as one JSON line
/// otherwise.
struct ConfigurationSummary {
    struct Issuer {
        let name: String
        let issuer: String
        let algorithms: String
        let keys: String
    }

    struct Route {
        let name: String
        let methods: String
        let match: String
        let rule: String
    }

    let listen: String
    let admin: String
    let upstream: String?
    let issuers: [Issuer]
    let routes: [Route]
    let defaultAction: String

    init(_ configuration: TollgateConfiguration) {
        listen = "\(configuration.listen)"
        admin = "\(configuration.admin)"
        upstream = configuration.upstream.map { "\($0.url)" }
        issuers = configuration.issuers.map { issuer in
            var keys = "introspection only"
            switch issuer.keySource {
            case .jwksURI(let url): keys = "jwks_uri \(url)"
            case .discovery: keys = "discovery"
            case .fixed(let box): keys = "jwks_file (\(box.keySet.keys.count) keys)"
            case .inProcess: keys = "the issuer in this process"
            case nil: break
            }
            if issuer.introspection != nil, issuer.keySource.map({ _ in true }) ?? false { keys += " + introspection" }
            return Issuer(
                name: issuer.policy.name,
                issuer: issuer.policy.issuer,
                algorithms: issuer.policy.algorithms.map(\.rawValue).sorted().joined(separator: ","),
                keys: keys
            )
        }
        routes = configuration.routes.routes.map { route in
            var rule: String
            switch route.authentication {
            case .none: rule = "public (no token)"
            case .required(let issuers): rule = "token from " + (issuers?.joined(separator: ",") ?? "any issuer")
            }
            if let scopes = route.scopes {
                if !scopes.all.isEmpty { rule += "; all of [\(scopes.all.joined(separator: " "))]" }
                if !scopes.any.isEmpty { rule += "; any of [\(scopes.any.joined(separator: " "))]" }
            }
            for condition in route.conditions { rule += "; \(condition)" }
            return Route(
                name: route.name,
                methods: route.methods.map { $0.sorted().joined(separator: ",") } ?? "*",
                match: "\(route.pattern)",
                rule: rule
            )
        }
        defaultAction = configuration.routes.defaultAction.rawValue
    }

    /// Columns padded to their widest cell.
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    var routeTable: String {
        Self.table(
            ["ROUTE", "METHODS", "MATCH", "REQUIRES"],
            routes.map { [$0.name, $0.methods, $0.match, $0.rule] } + [
                ["(default)", "*", "anything else", defaultAction]
            ]
        )
    }

    var issuerTable: String {
        Self.table(
            ["ISSUER", "URL", "ALGORITHMS", "KEYS"],
            issuers.map { [$0.name, $0.issuer, $0.algorithms, $0.keys] }
        )
    }

    var text: String {
        var lines = ["tollgate \(TollgateIssuer.version): proxy \(listen), admin \(admin)"]
        if let upstream { lines[0] += ", upstream \(upstream)" }
        lines.append(issuerTable)
        lines.append("routes (first match wins):")
        lines.append(routeTable)
        return lines.joined(separator: "\n")
    }

    var json: String {
        let value = JSONValue.object([
            "message": .string("tollgate started"),
            "version": .string(TollgateIssuer.version),
            "listen": .string(listen),
            "admin": .string(admin),
            "upstream": upstream.map(JSONValue.string) ?? .null,
            "issuers": .array(
                issuers.map {
                    .object([
                        "name": .string($0.name), "issuer": .string($0.issuer),
                        "algorithms": .string($0.algorithms), "keys": .string($0.keys),
                    ])
                }
            ),
            "routes": .array(
                routes.map {
                    .object([
                        "name": .string($0.name), "methods": .string($0.methods), "match": .string($0.match),
                        "requires": .string($0.rule),
                    ])
                }
            ),
            "default": .string(defaultAction),
        ])
        return value.serialized()
    }
}
