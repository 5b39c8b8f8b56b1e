"""A real gRPC peer (grpcio from PyPI) for the proxy's HTTP/2 pass-through test.

    grpc_echo.py serve            prints the port, then serves /tollgate.test.Echo/Say over h2c
    grpc_echo.py call PORT TOKEN  calls Say through PORT; prints "OK <reply> <subject>" or "ERR <code>"

Say answers the request bytes and puts the `x-auth-subject` header it received into its trailing
metadata, so the caller sees both the body and the trailers that crossed the proxy.
"""
import sys
from concurrent import futures

import grpc


def serve():
    def say(request, context):
        metadata = dict(context.invocation_metadata())
        context.set_trailing_metadata((("x-seen-subject", metadata.get("x-auth-subject", "")),))
        return request

    handler = grpc.method_handlers_generic_handler(
        "tollgate.test.Echo", {"Say": grpc.unary_unary_rpc_method_handler(say)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


def call(port, token):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        say = channel.unary_unary("/tollgate.test.Echo/Say")
        metadata = (("authorization", "Bearer " + token),) if token != "-" else ()
        try:
            reply, info = say.with_call(b"ping through the gate", metadata=metadata, timeout=10)
        except grpc.RpcError as error:
            print("ERR", error.code().name, flush=True)
            return
        trailing = dict(info.trailing_metadata())
        print("OK", reply.decode(), "|", trailing.get("x-seen-subject", ""), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve()
    else:
        call(sys.argv[2], sys.argv[3])
