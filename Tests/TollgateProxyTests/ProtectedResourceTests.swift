import Foundation
import Testing
import TollgateCore
import TollgateTestSupport

@testable import TollgateProxy

/// A route that is an OAuth protected resource (RFC 9728), as MCP clients find one: its metadata
/// served without a token ahead of routing, challenges that name the metadata and the scopes,
/// and no token passed on to the upstream. Over the real listener.
@Suite("Protected resource metadata")
struct ProtectedResourceTests {
    static let routes = """
          - name: tools
            match: { prefix: /mcp }
            issuers: [main]
            resource:
              identifier: https://api.test/mcp
              name: Orders tools
              documentation: https://api.test/docs/mcp
            require: { scopes: { all: ["mcp:tools"], any: ["mcp:read", "mcp:write"] } }
        """

    static let metadataURL = "https://api.test/.well-known/oauth-protected-resource/mcp"

    /// A token for the resource: the issuer's audience (its own check) and the resource's.
    static func token(scope: String, audience: String = "https://api.test/mcp") -> String {
        TestIssuer.shared.token(scope: scope, ["aud": [TestIssuer.audience, audience]])
    }

    static func document(_ body: String) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
    }

    @Test("the metadata is served at the path and the root form, without a token, ahead of default deny")
    func theMetadataIsServedWithoutAToken() async throws {
        try await ProxyEnvironment.with(routes: Self.routes) { environment in
            for path in ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"] {
                let response = try await environment.send(path)
                #expect(response.status == 200, "\(path)")
                #expect(response.header("Content-Type") == "application/json")
                let document = try Self.document(response.body)
                #expect(document["resource"] as? String == "https://api.test/mcp")
                #expect(document["authorization_servers"] as? [String] == [TestIssuer.issuer])
                #expect(document["scopes_supported"] as? [String] == ["mcp:tools", "mcp:read", "mcp:write"])
                #expect(document["bearer_methods_supported"] as? [String] == ["header"])
                #expect(document["resource_name"] as? String == "Orders tools")
                #expect(document["resource_documentation"] as? String == "https://api.test/docs/mcp")
                // RFC 9449 §5.2: the issuer takes DPoP (allowed), so the proofs are listed.
                #expect(document["dpop_bound_access_tokens_required"] as? Bool == false)
                #expect((document["dpop_signing_alg_values_supported"] as? [String])?.contains("ES256") == true)
                #expect(document.count == 8, "no member without a value")
            }
            // Only GET and HEAD are answered there; anything else is routed (and denied).
            #expect(
                try await environment.send("/.well-known/oauth-protected-resource/mcp", method: "POST").status == 403
            )
            // Another path under the well-known prefix names no resource.
            #expect(try await environment.send("/.well-known/oauth-protected-resource/other").status == 403)
            #expect(environment.upstream.requestCount == 0)
        }
    }

    @Test("a 401 names the metadata and every scope the route needs; a 403 names them all in one challenge")
    func challengesNameTheMetadataAndTheScopes() async throws {
        try await ProxyEnvironment.with(routes: Self.routes) { environment in
            let missing = try await environment.send("/mcp", method: "POST", body: "{}")
            #expect(missing.status == 401)
            #expect(
                missing.header("WWW-Authenticate")
                    == "Bearer realm=\"orders\", resource_metadata=\"\(Self.metadataURL)\", "
                    + "scope=\"mcp:tools mcp:read mcp:write\""
            )
            let invalid = try await environment.send("/mcp", headers: ["Authorization: Bearer not.a.token"])
            #expect(invalid.status == 401)
            #expect(
                invalid.header("WWW-Authenticate")?.hasPrefix(
                    "Bearer realm=\"orders\", resource_metadata=\"\(Self.metadataURL)\", "
                        + "scope=\"mcp:tools mcp:read mcp:write\", error=\"invalid_token\""
                ) == true,
                "\(invalid.header("WWW-Authenticate") ?? "")"
            )
            // The token has mcp:tools but neither mcp:read nor mcp:write.
            let token = Self.token(scope: "mcp:tools")
            let lacking = try await environment.send("/mcp", headers: ["Authorization: Bearer \(token)"])
            #expect(lacking.status == 403)
            #expect(
                lacking.header("WWW-Authenticate")
                    == "Bearer realm=\"orders\", resource_metadata=\"\(Self.metadataURL)\", "
                    + "error=\"insufficient_scope\", scope=\"mcp:tools mcp:read mcp:write\""
            )
            #expect(environment.upstream.requestCount == 0)
            // A route that is not a resource keeps the plain RFC 6750 challenge.
            let plain = try await environment.send("/orders/1")
            #expect(plain.header("WWW-Authenticate") == "Bearer realm=\"orders\"")
        }
    }

    @Test("the client's token does not reach the resource's upstream; the claims do")
    func theTokenIsNotPassedOn() async throws {
        try await ProxyEnvironment.with(routes: Self.routes) { environment in
            let token = Self.token(scope: "mcp:tools mcp:read")
            let response = try await environment.send("/mcp", headers: ["Authorization: Bearer \(token)"])
            #expect(response.status == 200, "\(response.body)")
            #expect(!response.body.lowercased().contains("authorization:"), "\(response.body)")
            #expect(response.body.contains("X-Auth-Subject: user-42"))
            // Elsewhere the token goes on as before.
            let orders = try await environment.send(
                "/orders/1",
                headers: ["Authorization: Bearer \(TestIssuer.shared.token())"]
            )
            #expect(orders.body.contains("Authorization: Bearer"))
        }
    }

    @Test("a token is accepted only when its audience names the resource (or an audience the route lists)")
    func aTokenMustBeIssuedForTheResource() async throws {
        let routes = Self.routes.replacingOccurrences(
            of: "      documentation: https://api.test/docs/mcp",
            with: "      documentation: https://api.test/docs/mcp\n      audiences: [\"api://orders-tools\"]"
        )
        try await ProxyEnvironment.with(routes: routes) { environment in
            let scope = "mcp:tools mcp:write"
            for (audience, status) in [
                ("https://api.test/mcp", 200), ("api://orders-tools", 200), ("https://other.test/mcp", 401),
                ("https://api.test/mcp/", 401), ("https://API.test/mcp", 401),
            ] {
                let token = Self.token(scope: scope, audience: audience)
                let response = try await environment.send("/mcp", headers: ["Authorization: Bearer \(token)"])
                #expect(response.status == status, "\(audience)")
                if status == 401 {
                    #expect(
                        response.header("WWW-Authenticate")?.contains(
                            "error=\"invalid_token\", error_description=\"the token's audience is not accepted\""
                        ) == true
                    )
                    #expect(response.header("WWW-Authenticate")?.contains("resource_metadata=") == true)
                }
            }
            // The issuer's own audience alone is not this resource's.
            let plain = TestIssuer.shared.token(scope: scope)
            #expect(try await environment.send("/mcp", headers: ["Authorization: Bearer \(plain)"]).status == 401)
            #expect(environment.upstream.requestCount == 2)
        }
    }

    @Test("an introspected token is accepted only when the introspection answer's aud names the resource")
    func anIntrospectedTokenMustBeIssuedForTheResource() async throws {
        let routes = """
              - name: tools
                match: { prefix: /mcp }
                issuers: [opaque]
                resource: https://api.test/mcp
            """
        try await ProxyEnvironment.with(
            introspectionHandler: { request in
                let exp = Int(Date().timeIntervalSince1970) + 300
                let audience =
                    request.bodyText.contains("for-this")
                    ? #","aud":["https://api.test/mcp","other"]"#
                    : request.bodyText.contains("for-other") ? #","aud":"https://other.test/mcp""# : ""
                return .json(#"{"active":true,"sub":"svc-7","exp":\#(exp)\#(audience)}"#)
            },
            routes: routes
        ) { environment in
            for (token, status) in [("opaque-for-this", 200), ("opaque-for-other", 401), ("opaque-without-aud", 401)] {
                let response = try await environment.send("/mcp", headers: ["Authorization: Bearer \(token)"])
                #expect(response.status == status, "\(token)")
            }
            #expect(environment.upstream.requestCount == 1)
        }
    }

    @Test("the metadata follows a reload")
    func theMetadataFollowsAReload() async throws {
        try await ProxyEnvironment.with(routes: Self.routes) { environment in
            var configuration = environment.proxy.runtime.snapshot.configuration
            var routes = configuration.routes.routes
            let index = try #require(routes.firstIndex { $0.name == "tools" })
            routes[index].scopes = ScopeRequirement(all: ["mcp:admin"])
            configuration.routes = RouteTable(routes: routes, defaultAction: configuration.routes.defaultAction)
            try await environment.proxy.runtime.apply(configuration)
            let document = try Self.document(
                try await environment.send("/.well-known/oauth-protected-resource/mcp").body
            )
            #expect(document["scopes_supported"] as? [String] == ["mcp:admin"])
        }
    }

    @Test(arguments: [
        ("http://api.test/mcp", "must use https"),
        ("https://api.test/mcp?x=1", "no query"),
        ("https://api.test/mcp#f", "no query and no fragment"),
        ("https://user@api.test/mcp", "no user information"),
        ("api.test/mcp", "absolute https URL"),
    ])
    func aResourceIdentifierIsAnHTTPSURLWithoutQueryOrFragment(identifier: String, message: String) throws {
        let yaml = """
            upstream: http://127.0.0.1:1
            issuers:
              - name: main
                issuer: https://idp.test
                jwks_uri: https://idp.test/jwks
                audiences: [api]
            routes:
              - match: { prefix: /mcp }
                resource: \(identifier)
            """
        #expect {
            try ConfigurationLoader.parse(yaml: yaml, file: "t.yaml", baseDirectory: "/tmp", environment: [:])
        } throws: { error in
            let text = "\(error)"
            return text.contains("t.yaml:9") && text.contains("routes[0].resource") && text.contains(message)
        }
        // A loopback host may use http.
        let loopback = ProtectedResource.make(identifier: "http://127.0.0.1:8080/mcp", name: nil, documentation: nil)
        #expect((try? loopback.get())?.metadataURL == "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp")
        let root = ProtectedResource.make(identifier: "https://api.test/", name: nil, documentation: nil)
        #expect((try? root.get())?.metadataPath == "/.well-known/oauth-protected-resource")
    }
}
