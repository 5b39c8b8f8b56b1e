"""The official MCP Python SDK's own OAuth client and streamable-HTTP client against an MCP
server behind `tollgate serve`, whose in-process issuer is the authorization server.

Usage: mcp_sdk_flow.py MCP_URL MODE REGISTRATION USER PASSWORD M2M_ID M2M_SECRET HEADER_LOG
  MODE          legacy (protocol 2025-11-25, no Mcp-Method/Mcp-Name) or auto (2026-07-28)
  REGISTRATION  dcr (dynamic registration) or cimd (a client ID metadata document served here)
The client starts with no token and finds everything from the gate's 401. Sign-in and consent
are answered here as a person would, through the issuer's HTML forms. Prints one line per check
and exits non-zero on the first failure.
"""
import asyncio
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata

url, mode, registration, user, password, m2m_id, m2m_secret, header_log = sys.argv[1:9]
origin = url.split("/mcp")[0]
redirect_uri = "http://127.0.0.1:9/callback"


def check(condition, label):
    if not condition:
        print("FAILED:", label, flush=True)
        sys.exit(1)
    print("ok:", label, flush=True)


class Memory(TokenStorage):
    def __init__(self, client_info=None):
        self.tokens = None
        self.client_info = client_info

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info):
        self.client_info = client_info


# The client ID metadata document, served by this script on loopback (the issuer is configured
# to fetch loopback http documents; the SDK itself only takes https URLs, so the client's
# information is given to it as already known).
document_requests = []


class DocumentHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        document_requests.append(self.path)
        body = json.dumps({
            "client_id": document_url,
            "client_name": "MCP SDK end to end",
            "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "max-age=600")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


document_server = ThreadingHTTPServer(("127.0.0.1", 0), DocumentHandler)
document_url = f"http://127.0.0.1:{document_server.server_address[1]}/clients/mcp-e2e.json"
threading.Thread(target=document_server.serve_forever, daemon=True).start()

authorizations = []
browser = httpx2.AsyncClient(follow_redirects=False, timeout=30)
result = None


def hidden_fields(html):
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


def form_action(html):
    return re.search(r'<form method="post" action="([^"]+)"', html).group(1).replace("&amp;", "&")


async def redirect_handler(authorization_url: str) -> None:
    """A person at the browser: signs in when asked, allows on the consent page."""
    global result
    authorizations.append(parse_qs(urlparse(authorization_url).query))
    page = await browser.get(authorization_url)
    for _ in range(6):
        if page.status_code in (302, 303):
            location = page.headers["location"]
            if location.startswith(redirect_uri):
                query = parse_qs(urlparse(location).query)
                check("code" in query, "the authorization answer carries a code")
                result = AuthorizationCodeResult(
                    code=query["code"][0], state=query["state"][0], iss=query.get("iss", [None])[0]
                )
                return
            page = await browser.get(location if location.startswith("http") else origin + location)
            continue
        check(page.status_code == 200 and "<form" in page.text, f"the issuer shows a form ({page.status_code})")
        fields = hidden_fields(page.text)
        if 'name="password"' in page.text:
            fields.update(username=user, password=password)
        else:
            fields["decision"] = "allow"
        page = await browser.post(origin + form_action(page.text), data=fields)
    check(False, "the authorization ends with a redirect to the client")


async def callback_handler() -> AuthorizationCodeResult:
    return result


async def main():
    async with httpx2.AsyncClient(timeout=30) as plain:
        first = await plain.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                                 headers={"Accept": "application/json, text/event-stream"})
        challenge = first.headers.get("www-authenticate", "")
        check(first.status_code == 401, "without a token: 401")
        check(f'resource_metadata="{origin}/.well-known/oauth-protected-resource/mcp"' in challenge,
              "the challenge names the resource's metadata")
        check('scope="mcp:tools"' in challenge, "the challenge names the scope the route needs")
        # A token the issuer minted for another resource (another API's audience).
        other = (await plain.post(origin + "/oauth2/token", data={
            "grant_type": "client_credentials", "scope": "@team/orders.read"}, auth=(m2m_id, m2m_secret))).json()
        refused = await plain.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                                   headers={"Authorization": "Bearer " + other["access_token"],
                                            "Accept": "application/json, text/event-stream"})
        check(refused.status_code == 401 and 'error="invalid_token"' in refused.headers.get("www-authenticate", ""),
              "a token issued for another resource is refused")

        metadata = (await plain.get(origin + "/.well-known/oauth-authorization-server")).json()
        check(metadata.get("code_challenge_methods_supported") == ["S256"]
              and metadata.get("authorization_response_iss_parameter_supported") is True
              and metadata.get("client_id_metadata_document_supported") is True,
              "the issuer's metadata: S256, iss in the answer, client ID metadata documents")
        scopes = metadata.get("scopes_supported", [])
        check(len(scopes) == len(set(scopes)), "scopes_supported lists each scope once")

    known = None
    if registration == "cimd":
        known = OAuthClientInformationFull(client_id=document_url, redirect_uris=[redirect_uri],
                                           token_endpoint_auth_method="none")
    storage = Memory(known)
    provider = OAuthClientProvider(
        url,
        OAuthClientMetadata(client_name="MCP SDK end to end", redirect_uris=[redirect_uri],
                            token_endpoint_auth_method="none"),
        storage, redirect_handler, callback_handler)
    async with httpx2.AsyncClient(auth=provider, timeout=httpx2.Timeout(30, read=120)) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            expected = "2026-07-28" if mode == "auto" else "2025-11-25"
            check(client.protocol_version == expected, f"protocol {client.protocol_version}")
            check(len(authorizations) == 1, "one authorization, found from the 401 alone")
            check(authorizations[0].get("resource") == [url], "the resource is asked for (RFC 8707)")
            check(authorizations[0].get("code_challenge_method") == ["S256"], "PKCE S256")
            if registration == "cimd":
                check(authorizations[0].get("client_id") == [document_url], "the client is its metadata URL")
                check(len(document_requests) >= 1, "the issuer fetched the client's metadata document")
            else:
                check(storage.client_info is not None and storage.client_info.client_id != document_url,
                      "the client registered dynamically")
            names = sorted(tool.name for tool in (await client.list_tools()).tools)
            check(names == ["echo", "whoami"], f"tools/list offers only the tools the token may call: {names}")
            echoed = await client.call_tool("echo", {"text": "hello through the gate"})
            check(echoed.content[0].text == "hello through the gate", "a tool call goes through")
            subject = await client.call_tool("whoami", {})
            check(subject.content[0].text != "", "the server learns the caller from the claim headers")

            deleted = await client.call_tool("delete_all", {})
            check(len(authorizations) == 2, "a tool that needs more: 403, and the SDK re-authorises")
            stepped = set(authorizations[1]["scope"][0].split())
            check({"mcp:tools", "mcp:admin"} <= stepped, f"with the union of the scopes: {stepped}")
            check(deleted.content[0].text == "deleted", "the step-up's token calls the tool")
            names = sorted(tool.name for tool in (await client.list_tools()).tools)
            check(names == ["delete_all", "echo", "whoami"], f"the new token is offered the tool too: {names}")

    records = [json.loads(line) for line in open(header_log)]
    check(len(records) >= 3, "the server recorded its calls")
    check(all("authorization" not in record["headers"] for record in records),
          "the server never sees the client's token")
    check(all(record["headers"].get("x-claims-sub") for record in records), "it sees the claims as headers")
    delete = [record for record in records if record["tool"] == "delete_all"][-1]
    if mode == "auto":
        check(delete["headers"].get("mcp-method") == "tools/call" and delete["headers"].get("mcp-name") == "delete_all",
              "a 2026-07-28 client's Mcp-Method and Mcp-Name reach the server")
    else:
        check("mcp-method" not in delete["headers"], "a 2025-11-25 client sends no Mcp-Method")
    print(f"mcp sdk ({mode}, {registration}): all checks passed", flush=True)


asyncio.run(main())
