"""An MCP server from the official MCP Python SDK (streamable HTTP), for the gate to stand in
front of. It records the HTTP headers of every tool call it serves, one JSON line each, so the
test can show what reached it.

Usage: mcp_server.py PORT HEADER_LOG
"""
import json
import sys

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings

port, header_log = int(sys.argv[1]), sys.argv[2]
server = MCPServer("tools-behind-tollgate")


def record(ctx: Context, tool: str) -> dict:
    headers = {key.lower(): value for key, value in (ctx.headers or {}).items()}
    with open(header_log, "a") as out:
        out.write(json.dumps({"tool": tool, "protocol": ctx.protocol_version, "headers": headers}) + "\n")
    return headers


@server.tool()
async def echo(text: str, ctx: Context) -> str:
    """Says the text back."""
    record(ctx, "echo")
    return text


@server.tool()
async def whoami(ctx: Context) -> str:
    """The subject the gate says called."""
    return record(ctx, "whoami").get("x-claims-sub", "")


@server.tool()
async def delete_all(ctx: Context) -> str:
    """A tool only an administrator may call."""
    record(ctx, "delete_all")
    return "deleted"


server.run(
    "streamable-http",
    host="127.0.0.1",
    port=port,
    streamable_http_path="/mcp",
    stateless_http=False,
    json_response=False,
    # The gate forwards Host as the client sent it (its own port); the SDK's DNS-rebinding check
    # would refuse another port.
    transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
)
