import Foundation
import NIOHTTP1
import Testing
import TollgateCore
import TollgateTestSupport

@testable import TollgateProxy

/// A route in front of an MCP server (streamable HTTP): the JSON-RPC body read before the gate
/// decides, per-method and per-tool rules, `Mcp-Method`/`Mcp-Name` checked against the body,
/// hostile bodies refused with nothing reaching the server, and `tools/list` answers cut to what
/// the token may call. Over the real listener, with a stub MCP server behind it.
@Suite("MCP gate")
struct MCPGateTests {
    static let routes = """
          - name: mcp
            match: { prefix: /mcp }
            issuers: [main]
            resource: https://api.test/mcp
            require: { scopes: { all: ["mcp:tools"] } }
            mcp:
              max_body_bytes: 2048
              max_tools_list_bytes: 4096
              tools:
                delete_all: { scopes: { all: ["mcp:admin"] } }
                forbidden: deny
              methods:
                "resources/read": { scopes: { all: ["files:read"] } }
        """

    static func token(_ scope: String) -> String {
        TestIssuer.shared.token(scope: scope, ["aud": [TestIssuer.audience, "https://api.test/mcp"]])
    }

    /// The tools the stub server lists, written as a server might: spacing, an escaped name, a
    /// large number kept as written.
    static let toolList =
        #"{"jsonrpc":"2.0","id":7,"result":{"tools":[ {"name":"echo","inputSchema":{"type":"object","maximum":9007199254740993}}, {"name":"delete\u005fall","description":"drops everything"},{"name":"forbidden"} ,{"name":"search"}],"nextCursor":"c1"}}"#

    /// The stub MCP server: a tool list as JSON at /mcp, as server-sent events at /mcp/events
    /// (a notification first, the answer's data over two lines, CRLF line ends), broken answers at
    /// /mcp/broken and /mcp/broken-events; any other request answered with a result naming what
    /// it saw.
    static let server: TestHTTPServer.Handler = { request in
        let body = request.bodyText
        if body.contains("tools/list") {
            switch request.uri {
            case "/mcp/events":
                let split = toolList.replacingOccurrences(of: #""nextCursor""#, with: "\n\"nextCursor\"")
                let data = split.split(separator: "\n").map { "data: \($0)\r\n" }.joined()
                // A byte order mark, then a priming event (an id and empty data, MCP 2025-11-25).
                let stream =
                    "\u{FEFF}id: p0\r\ndata:\r\n\r\n"
                    + "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\r\n\r\n"
                    + "id: e2\r\nevent: message\r\n" + data + "\r\n"
                return .init(headers: [("Content-Type", "text/event-stream")], body: Array(stream.utf8))
            case "/mcp/both":
                return .json(
                    #"{"jsonrpc":"2.0","id":7,"error":{"code":1,"message":"x"},"result":{"tools":[{"name":"delete_all"}]}}"#
                )
            case "/mcp/created":
                // Another success status: it could carry the list just as well.
                return .json(toolList, status: 201)
            case "/mcp/broken":
                // A duplicate member: a lenient client might read either tool list.
                return .json(#"{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"delete_all"}],"tools":[]}}"#)
            case "/mcp/broken-events":
                let stream =
                    "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n"
                    + "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"tools\":[{\"name\":\"delete_all\"},{\"title\":\"x\"}]}}\n\n"
                return .init(headers: [("Content-Type", "text/event-stream")], body: Array(stream.utf8))
            default:
                return .json(toolList)
            }
        }
        if request.method == "GET", request.uri == "/mcp/stream" {
            // The event stream, resumed after Last-Event-ID: an earlier tools/list answer again.
            let stream = "id: 9\ndata: \(toolList)\n\n"
            return .init(headers: [("Content-Type", "text/event-stream")], body: Array(stream.utf8))
        }
        let sawToken = request.header("Authorization") != nil
        return .json(
            #"{"jsonrpc":"2.0","id":1,"result":{"sawToken":\#(sawToken),"subject":"\#(request.header("X-Auth-Subject") ?? "")"}}"#
        )
    }

    static func call(_ tool: String, id: Int = 1) -> String {
        #"{"jsonrpc":"2.0","id":\#(id),"method":"tools/call","params":{"name":"\#(tool)","arguments":{}}}"#
    }

    static func post(
        _ environment: ProxyEnvironment,
        _ body: String,
        token: String?,
        headers: [String] = [],
        path: String = "/mcp"
    ) async throws -> RawHTTPClient.Response {
        var lines = headers + ["Content-Type: application/json", "Accept: application/json, text/event-stream"]
        if let token { lines.append("Authorization: Bearer \(token)") }
        return try await environment.send(path, method: "POST", headers: lines, body: body)
    }

    static func rpcError(_ response: RawHTTPClient.Response) throws -> (id: Any?, code: Int) {
        let object = try #require(JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any])
        #expect(object["jsonrpc"] as? String == "2.0")
        let error = try #require(object["error"] as? [String: Any])
        return (object["id"].flatMap { $0 is NSNull ? nil : $0 }, try #require(error["code"] as? Int))
    }

    static func toolNames(_ json: String) throws -> [String] {
        let object = try #require(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let result = try #require(object["result"] as? [String: Any])
        return try #require(result["tools"] as? [[String: Any]]).compactMap { $0["name"] as? String }
    }

    @Test("a tool's rule is decided from the body, for clients with and without Mcp-Method and Mcp-Name")
    func perToolRulesAreDecidedFromTheBody() async throws {
        try await ProxyEnvironment.with(upstreamHandler: Self.server, routes: Self.routes) { environment in
            let basic = Self.token("mcp:tools")
            // A 2025-11-25 client: the body alone.
            let echo = try await Self.post(environment, Self.call("echo"), token: basic)
            #expect(echo.status == 200, "\(echo.body)")
            #expect(echo.body.contains(#""sawToken":false"#), "the token does not reach the server")
            #expect(echo.body.contains(#""subject":"user-42""#), "the claims do")
            let forwarded = try #require(environment.upstream.requests.last)
            #expect(forwarded.bodyText == Self.call("echo"), "the body goes on unchanged")

            let refused = try await Self.post(environment, Self.call("delete_all"), token: basic)
            #expect(refused.status == 403)
            #expect(
                refused.header("WWW-Authenticate")
                    == "Bearer realm=\"orders\", resource_metadata=\"https://api.test/.well-known/oauth-protected-resource/mcp\", "
                    + "error=\"insufficient_scope\", scope=\"mcp:tools mcp:admin\""
            )
            // A 2026-07-28 client: the headers agree with the body, and the body still decides.
            let modern = ["Mcp-Method: tools/call", "Mcp-Name: delete_all", "MCP-Protocol-Version: 2026-07-28"]
            #expect(
                try await Self.post(environment, Self.call("delete_all"), token: basic, headers: modern).status == 403
            )
            let admin = Self.token("mcp:tools mcp:admin")
            #expect(
                try await Self.post(environment, Self.call("delete_all"), token: admin, headers: modern).status == 200
            )
            // `deny` refuses the tool to every token; a method's rule applies to all its requests.
            let denied = try await Self.post(environment, Self.call("forbidden"), token: admin)
            #expect(denied.status == 403)
            #expect(denied.header("WWW-Authenticate") == nil)
            let read = #"{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"file:///a"}}"#
            #expect(try await Self.post(environment, read, token: admin).status == 403)
            #expect(try await Self.post(environment, read, token: Self.token("mcp:tools files:read")).status == 200)
            // Methods without rules, notifications and the client's answers need the route's scope.
            for body in [
                #"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#,
                #"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
                #"{"jsonrpc":"2.0","id":"s-1","result":{}}"#,
            ] {
                #expect(try await Self.post(environment, body, token: basic).status == 200, "\(body)")
            }
            // GET (the event stream) and DELETE (the session's end) need the route's requirement only.
            #expect(try await environment.send("/mcp", headers: ["Authorization: Bearer \(basic)"]).status == 200)
            #expect(
                try await environment.send("/mcp", method: "DELETE", headers: ["Authorization: Bearer \(basic)"]).status
                    == 200
            )
            #expect(try await environment.send("/mcp").status == 401)
            // Tool arguments nest deeper than a token's claims may.
            let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
            let nested =
                #"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"a":\#(deep)}}}"#
            #expect(try await Self.post(environment, nested, token: basic).status == 200)
            // A forward-auth check cannot read the body the rules need: refused.
            let checked = try await environment.send(
                "/_tollgate/auth",
                headers: ["Authorization: Bearer \(admin)", "X-Forwarded-Method: POST", "X-Forwarded-Uri: /mcp"]
            )
            #expect(checked.status == 403)
            #expect(environment.upstream.requestCount == 9)
        }
    }

    @Test("hostile bodies and headers are refused with a JSON-RPC error, and nothing reaches the server")
    func hostileRequestsAreRefused() async throws {
        let delete = Self.call("delete_all", id: 5)
        let cases: [(name: String, body: String, headers: [String], status: Int, code: Int?, id: Int?)] = [
            (
                "Mcp-Name disagreeing with the body", delete, ["Mcp-Method: tools/call", "Mcp-Name: echo"], 400, -32020,
                5
            ),
            ("Mcp-Method disagreeing with the body", delete, ["Mcp-Method: tools/list"], 400, -32020, 5),
            ("Mcp-Name without Mcp-Method", delete, ["Mcp-Name: delete_all"], 400, -32020, 5),
            ("Mcp-Name missing for a named method", delete, ["Mcp-Method: tools/call"], 400, -32020, 5),
            (
                "Mcp-Name twice", delete, ["Mcp-Method: tools/call", "Mcp-Name: delete_all", "Mcp-Name: delete_all"],
                400,
                -32020, 5
            ),
            (
                "a malformed base64 Mcp-Name", delete,
                ["Mcp-Method: tools/call", "Mcp-Name: =?base64?ZGVsZXRlX2FsbA?="], 400,
                -32020, 5
            ),
            ("a batch", "[\(Self.call("echo"))]", [], 400, -32600, nil),
            ("invalid JSON", #"{"jsonrpc":"2.0","id":1,"method":"tools/call","#, [], 400, -32700, nil),
            (
                "a tools/call without params.name", #"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{}}"#, [],
                400,
                -32602, 2
            ),
            (
                "a duplicated method member",
                #"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"delete_all"}}"#,
                [],
                400, -32700, nil
            ),
            ("a null id", #"{"jsonrpc":"2.0","id":null,"method":"tools/list"}"#, [], 400, -32600, nil),
            ("another JSON-RPC version", #"{"jsonrpc":"1.0","id":1,"method":"tools/list"}"#, [], 400, -32600, 1),
            (
                "params that are not an object", #"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["x"]}"#, [],
                400,
                -32602, 1
            ),
            ("an empty body", "", [], 400, -32700, nil),
            (
                "a duplicated name inside params",
                #"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"delete_all"}}"#, [],
                400,
                -32700, nil
            ),
            ("a coded body", delete, ["Content-Encoding: gzip"], 400, -32600, nil),
            ("a body over the bound", Self.call(String(repeating: "x", count: 3000)), [], 413, nil, nil),
        ]
        try await ProxyEnvironment.with(upstreamHandler: Self.server, routes: Self.routes) { environment in
            let admin = Self.token("mcp:tools mcp:admin")
            for test in cases {
                let response = try await Self.post(environment, test.body, token: admin, headers: test.headers)
                #expect(response.status == test.status, "\(test.name): \(response.body)")
                if let code = test.code {
                    let error = try Self.rpcError(response)
                    #expect(error.code == code, "\(test.name)")
                    #expect((error.id as? Int) == test.id, "\(test.name)")
                }
            }
            // A body on another method is a JSON-RPC message a server could read: held to the
            // same rules.
            let basic = Self.token("mcp:tools")
            for method in ["GET", "PUT", "DELETE"] {
                let response = try await environment.send(
                    "/mcp",
                    method: method,
                    headers: ["Authorization: Bearer \(basic)", "Content-Type: application/json"],
                    body: delete
                )
                #expect(response.status == 403, "\(method)")
            }
            #expect(environment.upstream.requestCount == 0)
            // The base64 form MCP uses for names that are not plain ASCII is read as the name.
            let encoded = ["Mcp-Method: tools/call", "Mcp-Name: =?base64?ZGVsZXRlX2FsbA==?="]
            #expect(try await Self.post(environment, delete, token: admin, headers: encoded).status == 200)
        }
    }

    @Test("a tools/list answer lists only the tools the token may call, the rest of it byte for byte")
    func theToolListIsFiltered() async throws {
        try await ProxyEnvironment.with(upstreamHandler: Self.server, routes: Self.routes) { environment in
            let list = #"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#
            let basic = try await Self.post(environment, list, token: Self.token("mcp:tools"))
            #expect(basic.status == 200)
            #expect(try Self.toolNames(basic.body) == ["echo", "search"])
            #expect(
                basic.body
                    == #"{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object","maximum":9007199254740993}},{"name":"search"}],"nextCursor":"c1"}}"#
            )
            #expect(basic.header("Content-Length") == String(basic.body.utf8.count))
            // The admin may call delete_all; nobody may call the denied tool.
            let admin = try await Self.post(environment, list, token: Self.token("mcp:tools mcp:admin"))
            #expect(
                admin.body
                    == #"{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object","maximum":9007199254740993}},{"name":"delete\u005fall","description":"drops everything"},{"name":"search"}],"nextCursor":"c1"}}"#
            )
            #expect(try Self.toolNames(admin.body) == ["echo", "delete_all", "search"])
            // The server's answer is read uncompressed.
            #expect(environment.upstream.requests.last?.header("Accept-Encoding") == nil)
        }
    }

    @Test("server-sent events: the event carrying the tool list is filtered, the others relayed as they are")
    func theToolListIsFilteredInEvents() async throws {
        try await ProxyEnvironment.with(upstreamHandler: Self.server, routes: Self.routes) { environment in
            let list = #"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#
            let response = try await Self.post(environment, list, token: Self.token("mcp:tools"), path: "/mcp/events")
            #expect(response.status == 200)
            #expect(response.header("Content-Type") == "text/event-stream")
            let events = response.body.replacingOccurrences(of: "\r\n", with: "\n").components(separatedBy: "\n\n")
            #expect(events[0] == "id: p0\ndata:", "the priming event as it was, less the byte order mark")
            #expect(events[1] == "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}")
            #expect(events[2].hasPrefix("id: e2\nevent: message\ndata: "), "\(events[2])")
            let data = events[2].split(separator: "\n").filter { $0.hasPrefix("data: ") }.map { $0.dropFirst(6) }
                .joined(separator: "\n")
            #expect(try Self.toolNames(data) == ["echo", "search"])
            #expect(!response.body.contains("delete"))
            // The GET stream, resumed: a tools/list answer replayed there is filtered too.
            let resumed = try await environment.send(
                "/mcp/stream",
                headers: ["Authorization: Bearer \(Self.token("mcp:tools"))", "Last-Event-ID: 3"]
            )
            #expect(resumed.status == 200)
            #expect(resumed.body.contains("\"echo\"") && !resumed.body.contains("delete"), "\(resumed.body)")
        }
    }

    @Test("a tool list that cannot be read strictly is never relayed: a JSON-RPC error instead")
    func anUnreadableToolListFailsClosed() async throws {
        try await ProxyEnvironment.with(upstreamHandler: Self.server, routes: Self.routes) { environment in
            let list = #"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#
            let token = Self.token("mcp:tools")
            let json = try await Self.post(environment, list, token: token, path: "/mcp/broken")
            #expect(json.status == 502)
            let error = try Self.rpcError(json)
            #expect(error.code == -32603 && error.id as? Int == 7)
            #expect(!json.body.contains("delete"))
            let events = try await Self.post(environment, list, token: token, path: "/mcp/broken-events")
            #expect(events.status == 200, "the events had started")
            #expect(events.body.contains("notifications/progress"))
            #expect(!events.body.contains("delete"))
            #expect(events.body.contains(#"data: {"jsonrpc":"2.0","id":7,"error":{"code":-32603,"#))
            let both = try await Self.post(environment, list, token: token, path: "/mcp/both")
            #expect(both.status == 502, "a result and an error together: not relayed")
            #expect(!both.body.contains("delete"))
            // Another success status is filtered like a 200, never passed as it is.
            let created = try await Self.post(environment, list, token: token, path: "/mcp/created")
            #expect(created.status == 201)
            #expect(try Self.toolNames(created.body) == ["echo", "search"])
        }
    }

    @Test("over HTTP/2 the same: the body decides, the tool list is filtered")
    func theRulesHoldOverHTTP2() async throws {
        try await ProxyEnvironment.with(upstreamHandler: Self.server, routes: Self.routes) { environment in
            let headers = [
                ("authorization", "Bearer \(Self.token("mcp:tools"))"), ("content-type", "application/json"),
            ]
            let (refused, challenge, _) = try await HTTP2Tests.h2cRequest(
                port: environment.proxy.port,
                path: "/mcp",
                method: .POST,
                headers: headers,
                body: Self.call("delete_all")
            )
            #expect(refused == 403)
            #expect(challenge.first(name: "www-authenticate")?.contains("scope=\"mcp:tools mcp:admin\"") == true)
            let (listed, _, body) = try await HTTP2Tests.h2cRequest(
                port: environment.proxy.port,
                path: "/mcp/events",
                method: .POST,
                headers: headers,
                body: #"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#
            )
            #expect(listed == 200)
            #expect(body.contains("\"echo\"") && !body.contains("delete"))
            #expect(environment.upstream.requestCount == 1)
        }
    }

    @Test("the resource's metadata lists the scopes of the MCP rules too")
    func theMetadataListsTheRulesScopes() async throws {
        try await ProxyEnvironment.with(upstreamHandler: Self.server, routes: Self.routes) { environment in
            let body = try await environment.send("/.well-known/oauth-protected-resource/mcp").body
            let document = try #require(JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
            #expect(document["scopes_supported"] as? [String] == ["mcp:tools", "files:read", "mcp:admin"])
        }
    }

    @Test(arguments: [
        ("    mcp: { tool: {} }", "routes[0].mcp.tool", "unknown field"),
        ("    mcp: { tools: { x: allow } }", "routes[0].mcp.tools.x", "expected 'deny'"),
        ("    mcp: { tools: { x: { scopes: { all: [] } } } }", "routes[0].mcp.tools.x.scopes", "not empty"),
        ("    mcp: { max_body_bytes: 0 }", "routes[0].mcp.max_body_bytes", "positive"),
        ("    auth: none\n    mcp: {}", "routes[0].mcp", "needs a token"),
        ("    upgrades: [websocket]\n    mcp: {}", "routes[0].upgrades", "no protocol switch"),
    ])
    func mcpConfigurationErrorsNameTheField(member: String, field: String, message: String) {
        ConfigurationErrors.expectRefused(
            ConfigurationErrors.oneRoute(prefix: "/mcp", member),
            file: "mcp.yaml",
            field: field,
            message: message
        )
    }

    @Test("the policy: every applicable rule, a default for unnamed tools, scopes for the challenge")
    func thePolicyCombinesItsRules() {
        let policy = MCPPolicy(
            methods: ["tools/call": .require(scopes: ScopeRequirement(all: ["call"]), conditions: [])],
            tools: ["a": .require(scopes: ScopeRequirement(any: ["x", "y"]), conditions: [])],
            defaultRule: .deny
        )
        #expect(policy.rules(method: "tools/call", name: "a").count == 2)
        #expect(policy.rules(method: "tools/call", name: "b") == [policy.methods["tools/call"]!, .deny])
        #expect(policy.rules(method: "tools/list", name: nil).isEmpty)
        #expect(policy.scopes(method: "tools/call", name: "a") == ["call", "x", "y"])
        #expect(policy.allScopes == ["call", "x", "y"])
    }
}
