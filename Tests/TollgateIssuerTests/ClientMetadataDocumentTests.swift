import Foundation
import HTTPTypes
import NIOCore
import Testing
import TollgateCore
import TollgateTestSupport

@testable import TollgateIssuer

/// Client ID Metadata Documents: a client known by the https URL of its metadata, fetched over
/// real HTTP from a test server. The URL is the attacker's to choose, so most of this is what is
/// refused: another client's id in the document, a secret, a redirect, a large document, a
/// private or loopback address, a URL with a query or dot segments.
@Suite struct ClientMetadataDocumentTests {
    typealias Flow = AuthorizationCodeFlowTests

    static func issuer(allowLoopback: Bool = true) async throws -> OAuthIssuer {
        var options = IssuerOptions(issuer: "https://idp.test")
        options.apis = [APIDefinition(audience: "https://tools.test/mcp", scopes: ["mcp:tools"])]
        options.clientMetadataDocuments.enabled = true
        options.clientMetadataDocuments.allowLoopbackHTTP = allowLoopback
        // Generous: the test process's threads can be busy for seconds while many suites start.
        options.clientMetadataDocuments.timeout = 60
        let store = MemoryIssuerStore()
        try await store.saveUser(
            IssuerUser(username: "ada", passwordHash: try PasswordHash.make(Flow.password, rounds: 1 << 10))
        )
        return try await OAuthIssuer.start(options: options, store: store)
    }

    static func document(_ url: String, _ changes: [String: Any?] = [:]) -> [UInt8] {
        var document: [String: Any] = [
            "client_id": url, "client_name": "Tools app", "redirect_uris": ["http://127.0.0.1:9/callback"],
            "token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"],
        ]
        for (key, value) in changes { document[key] = value }
        return Array(try! JSONSerialization.data(withJSONObject: document))
    }

    /// The URL a request was sent to: the document's own id.
    static func url(of request: TestHTTPServer.Request) -> String {
        "http://" + (request.header("Host") ?? "") + request.uri
    }

    static func authorize(_ issuer: OAuthIssuer, client: String) async -> (IssuerResponse, String) {
        let response = await Flow.get(
            issuer,
            Flow.authorizePath(client: client, redirect: "http://127.0.0.1:9/callback", scope: "mcp:tools")
        )
        return (response, String(decoding: response.body, as: UTF8.self))
    }

    @Test func aDocumentMakesAClientThatIsAskedForConsentAndIsCached() async throws {
        let issuer = try await Self.issuer()
        let discovery = try RegistrationAndConsentTests.json(
            await Flow.get(issuer, "/.well-known/oauth-authorization-server")
        )
        #expect(discovery["client_id_metadata_document_supported"] as? Bool == true)
        let openid = try RegistrationAndConsentTests.json(await Flow.get(issuer, "/.well-known/openid-configuration"))
        #expect(openid["client_id_metadata_document_supported"] as? Bool == true)

        try await TestHTTPServer.serving({ request in
            .init(
                headers: [("Content-Type", "application/json"), ("Cache-Control", "max-age=600")],
                body: Self.document(Self.url(of: request))
            )
        }) { server in
            let client = server.url("/clients/tools.json")
            let browser = Flow.Browser()
            let login = await Flow.get(
                issuer,
                Flow.authorizePath(client: client, redirect: "http://127.0.0.1:9/callback", scope: "mcp:tools"),
                browser: browser
            )
            #expect(login.head.status == .ok)
            let consent = await Flow.post(
                issuer,
                "/oauth2/authorize/login",
                [
                    ("request", try #require(Flow.hidden(login, "request"))),
                    ("csrf", try #require(Flow.hidden(login, "csrf"))), ("username", "ada"),
                    ("password", Flow.password),
                ],
                browser: browser
            )
            let page = String(decoding: consent.body, as: UTF8.self)
            #expect(page.contains("Allow access?"), "a client by document is third-party")
            #expect(page.contains("<b>\(client)</b> asks to"), "the page names the client by its document's URL")
            #expect(server.requestCount == 1)
            #expect(server.requests.first?.header("Accept") == "application/json")
            // Cached as the answer said: a second authorization fetches nothing.
            _ = await Self.authorize(issuer, client: client)
            #expect(server.requestCount == 1)
            // A redirect URI the document does not list is refused.
            let other = await Flow.get(
                issuer,
                Flow.authorizePath(client: client, redirect: "http://127.0.0.1:9/other", scope: "mcp:tools")
            )
            #expect(String(decoding: other.body, as: UTF8.self).contains("not registered"))
        }
    }

    @Test(arguments: [
        ("another client's id", 200, #"{"client_id": "https://other.test/client.json"}"#, 0),
        ("a secret", 200, #"{"client_secret": "s"}"#, 0),
        ("client_secret_basic", 200, #"{"token_endpoint_auth_method": "client_secret_basic"}"#, 0),
        ("no redirect URIs", 200, #"{"redirect_uris": []}"#, 0),
        ("an unsafe redirect URI", 200, #"{"redirect_uris": ["http://evil.test/cb"]}"#, 0),
        ("client_credentials", 200, #"{"grant_types": ["client_credentials"]}"#, 0),
        ("a redirect", 302, "{}", 0),
        ("an error status", 404, "{}", 0),
        ("a document over 5 KiB", 200, "{}", 6000),
        ("a flag that is not a boolean", 200, #"{"dpop_bound_access_tokens": "yes"}"#, 0),
    ])
    func aDocumentThatCannotDescribeAClientIsRefused(
        _ name: String,
        status: Int,
        changes: String,
        padding: Int
    ) async throws {
        let issuer = try await Self.issuer()
        try await TestHTTPServer.serving({ request in
            var changed: [String: Any?] = [:]
            for (key, value) in try! JSONSerialization.jsonObject(with: Data(changes.utf8)) as! [String: Any] {
                changed[key] = value
            }
            if padding > 0 { changed["client_name"] = String(repeating: "x", count: padding) }
            return .init(
                status: status,
                headers: [("Content-Type", "application/json"), ("Location", "https://other.test/client.json")],
                body: Self.document(Self.url(of: request), changed)
            )
        }) { server in
            let (response, page) = await Self.authorize(issuer, client: server.url("/client.json"))
            #expect(page.contains("The application is not known."), "\(name)")
            #expect(response.head.headerFields[.location] == nil, "\(name): never redirected")
        }
    }

    @Test func aDocumentAskingForSenderConstrainedTokensGetsThem() throws {
        let url = "https://app.test/client.json"
        let document = Array(
            #"""
            {"client_id": "https://app.test/client.json", "redirect_uris": ["https://app.test/cb"],
             "dpop_bound_access_tokens": true, "tls_client_certificate_bound_access_tokens": true}
            """#.utf8
        )
        let client = try ClientMetadataDocuments.client(from: document, url: url, certificatesReachIssuer: true)
        #expect(client.requiresDPoP == true)
        #expect(client.certificateBoundAccessTokens == true)
        #expect(throws: ClientMetadataDocuments.Refusal.self, "no certificate reaches the issuer") {
            try ClientMetadataDocuments.client(from: document, url: url, certificatesReachIssuer: false)
        }
        let plain = try ClientMetadataDocuments.client(
            from: Array(#"{"client_id": "https://app.test/c.json", "redirect_uris": ["https://app.test/cb"]}"#.utf8),
            url: "https://app.test/c.json",
            certificatesReachIssuer: true
        )
        #expect(plain.requiresDPoP == nil && plain.certificateBoundAccessTokens == nil)
    }

    @Test func aHostThatIsLoopbackOrPrivateIsNotFetchedUnlessAllowed() async throws {
        let issuer = try await Self.issuer(allowLoopback: false)
        try await TestHTTPServer.serving({ _ in .init(body: []) }) { server in
            // https to a name that resolves to loopback: refused before any connection.
            let (_, page) = await Self.authorize(issuer, client: "https://localhost/client.json")
            #expect(page.contains("The application is not known."))
            let (_, plain) = await Self.authorize(issuer, client: server.url("/client.json"))
            #expect(plain.contains("The application is not known."))
            #expect(server.requestCount == 0)
        }
    }

    @Test(arguments: [
        ("http://tools.test/client.json", "must be https"),
        ("https://tools.test", "no path"),
        ("https://tools.test/", "empty or has dot segments"),
        ("https://tools.test/a/../client.json", "dot segments"),
        ("https://tools.test/client.json?x=1", "query"),
        ("https://tools.test/client.json#f", "fragment"),
        ("https://user@tools.test/client.json", "user information"),
        ("https://tools.test:99999/client.json", "port"),
        ("https://tools.test:8443/client.json", "port must be 443"),
    ])
    func aClientIDURLIsHttpsWithAPathAndNothingElse(url: String, reason: String) {
        var options = ClientMetadataDocumentOptions()
        options.enabled = true
        options.allowLoopbackHTTP = true
        let documents = ClientMetadataDocuments(options: options, certificatesReachIssuer: false)
        #expect(throws: ClientMetadataDocuments.Refusal.self) { try documents.checkedURL(url) }
        do {
            _ = try documents.checkedURL(url)
        } catch {
            #expect(error.reason.contains(reason), "\(url): \(error.reason)")
        }
    }

    @Test(arguments: [
        ("10.1.2.3", "private"), ("172.20.0.1", "private"), ("192.168.1.1", "private"),
        ("169.254.169.254", "private"), ("100.64.0.1", "private"), ("127.0.0.1", "loopback"),
        ("0.0.0.0", "reserved"), ("224.0.0.1", "multicast"), ("::1", "loopback"), ("fe80::1", "private"),
        ("fd00::1", "private"), ("::ffff:10.0.0.1", "private"), ("::", "unspecified"), ("ff02::1", "multicast"),
        ("::10.0.0.1", "private"), ("fec0::1", "private"), ("64:ff9b::a00:1", "translated"),
        ("64:ff9b:1::1", "translated"), ("2002:a00:1::1", "translated"),
        ("8.8.8.8", nil), ("2001:4860:4860::8888", nil), ("172.32.0.1", nil),
    ])
    func onlyPublicAddressesAreFetched(address: String, problem: String?) throws {
        let socket = try SocketAddress(ipAddress: address, port: 443)
        let found = ClientMetadataDocuments.addressProblem(socket, allowLoopback: false, allowPrivate: false)
        if let problem {
            #expect(found?.contains(problem) == true, "\(address): \(found ?? "nil")")
        } else {
            #expect(found == nil, "\(address)")
        }
    }
}
