import Foundation
import Testing
import TollgateCore
import TollgateTestSupport

@testable import TollgateProxy

@Suite("Forward-auth", .serialized)
struct ForwardAuthTests {
    @Test("a trusted gateway names the original request; the answer is 200 with claim headers or the proxy's 401/403")
    func forwardAuthInProcess() async throws {
        try await ProxyEnvironment.with { environment in
            let token = TestIssuer.shared.token()
            let allowed = try await environment.send(
                "/_tollgate/auth",
                headers: [
                    "Authorization: Bearer \(token)", "X-Forwarded-Method: GET", "X-Forwarded-Uri: /orders/7?x=1",
                ]
            )
            #expect(allowed.status == 200)
            #expect(allowed.header("X-Auth-Subject") == "user-42")
            let original = try await environment.send(
                "/_tollgate/auth",
                headers: ["Authorization: Bearer \(token)", "X-Original-URI: /admin/users"]
            )
            #expect(original.status == 403)
            #expect(original.header("WWW-Authenticate")?.contains("insufficient_scope") == true)
            let missing = try await environment.send("/_tollgate/auth", headers: ["X-Forwarded-Uri: /orders/7"])
            #expect(missing.status == 401)
            // Envoy ext_authz: the original path after the auth path, the original method.
            let envoy = try await environment.send(
                "/_tollgate/auth/orders/7?x=1",
                headers: ["Authorization: Bearer \(token)"]
            )
            #expect(envoy.status == 200)
            #expect(envoy.header("X-Auth-Scope") == "@team/orders.read openid")
            let envoyDenied = try await environment.send(
                "/_tollgate/auth/admin/x",
                method: "DELETE",
                headers: ["Authorization: Bearer \(token)"]
            )
            #expect(envoyDenied.status == 403)
            #expect(environment.upstream.requestCount == 0)
        }
    }

    @Test("an untrusted caller cannot name the original request")
    func untrustedCaller() async throws {
        try await ProxyEnvironment.with(trustedProxies: ["10.0.0.0/8"]) { environment in
            let response = try await environment.send(
                "/_tollgate/auth",
                headers: ["Authorization: Bearer \(TestIssuer.shared.token())", "X-Forwarded-Uri: /orders/7"]
            )
            #expect(response.status == 403)
            #expect(environment.upstream.requestCount == 0)
        }
    }

    @Test("Debian's nginx with auth_request in front of a real upstream: allowed, 401 and 403")
    func nginxAuthRequest() async throws {
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"].first { FileManager.default.isExecutableFile(atPath: $0) }
        let binary = try #require(nginx, "nginx is installed by scripts/test.sh")
        try await ProxyEnvironment.with { environment in
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("nginx-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let port = try Ports.free()
            let configuration = """
                worker_processes 1;
                daemon off;
                pid \(directory.path)/nginx.pid;
                error_log \(directory.path)/error.log;
                events { worker_connections 64; }
                http {
                  access_log off;
                  client_body_temp_path \(directory.path)/body;
                  proxy_temp_path \(directory.path)/proxy;
                  fastcgi_temp_path \(directory.path)/fastcgi;
                  uwsgi_temp_path \(directory.path)/uwsgi;
                  scgi_temp_path \(directory.path)/scgi;
                  server {
                    listen 127.0.0.1:\(port);
                    location = /_auth {
                      internal;
                      proxy_pass http://127.0.0.1:\(environment.proxy.port)/_tollgate/auth;
                      proxy_pass_request_body off;
                      proxy_set_header Content-Length "";
                      proxy_set_header X-Original-URI $request_uri;
                      proxy_set_header X-Forwarded-Method $request_method;
                    }
                    location / {
                      auth_request /_auth;
                      auth_request_set $auth_subject $upstream_http_x_auth_subject;
                      proxy_set_header X-Auth-Subject $auth_subject;
                      proxy_pass http://127.0.0.1:\(environment.upstream.port);
                    }
                  }
                }
                """
            let file = directory.appendingPathComponent("nginx.conf")
            try configuration.write(to: file, atomically: true, encoding: .utf8)
            let process = try ExternalProcess(binary, ["-c", file.path, "-p", directory.path])
            defer { process.stop() }
            try await Ports.waitUntilListening(port)
            let token = TestIssuer.shared.token()
            let allowed = try await RawHTTPClient.send(
                port: port,
                lines: ["GET /orders/9 HTTP/1.1", "Host: shop.test", "Authorization: Bearer \(token)"]
            )
            #expect(allowed.status == 200, "\(allowed.body)")
            #expect(environment.upstream.requests.last?.header("X-Auth-Subject") == "user-42")
            #expect(environment.upstream.requests.last?.uri == "/orders/9")
            let unauthenticated = try await RawHTTPClient.send(
                port: port,
                lines: ["GET /orders/9 HTTP/1.1", "Host: shop.test"]
            )
            #expect(unauthenticated.status == 401)
            #expect(unauthenticated.header("WWW-Authenticate") == #"Bearer realm="orders""#)
            let forbidden = try await RawHTTPClient.send(
                port: port,
                lines: ["GET /admin/users HTTP/1.1", "Host: shop.test", "Authorization: Bearer \(token)"]
            )
            #expect(forbidden.status == 403)
            #expect(environment.upstream.requestCount == 1)
        }
    }
}
