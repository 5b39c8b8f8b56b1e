"""Sends COUNT requests to 127.0.0.1:PORT, each with the next token of TOKENS (one per line, or
a DPoP-bound token and its proof separated by a tab),
over CONNECTIONS keep-alive connections in parallel; exits non-zero unless every answer is 200.

    distinct.py PORT TOKENS COUNT CONNECTIONS
"""
import socket
import sys
import threading


def run(port, tokens, indexes, failures):
    sock = socket.create_connection(("127.0.0.1", port))
    buffer = b""
    for index in indexes:
        token, _, proof = tokens[index].partition("\t")
        # A line "token<TAB>proof" is a DPoP-bound token and its proof (RFC 9449).
        authorization = f"DPoP {token}\r\nDPoP: {proof}" if proof else f"Bearer {token}"
        request = (
            f"GET /orders/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {authorization}\r\n\r\n"
        ).encode()
        sock.sendall(request)
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                failures.append("closed")
                return
            buffer += chunk
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        if not lines[0].startswith(b"HTTP/1.1 200"):
            failures.append(lines[0].decode(errors="replace"))
            return
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(buffer) < length:
            buffer += sock.recv(65536)
        buffer = buffer[length:]
    sock.close()


def main(port, path, count, connections):
    tokens = [line.strip() for line in open(path) if line.strip()]
    if len(tokens) < count:
        sys.exit(f"{len(tokens)} tokens for {count} requests")
    failures = []
    threads = [
        threading.Thread(target=run, args=(port, tokens, range(n, count, connections), failures))
        for n in range(connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        sys.exit(f"failed: {failures[:3]}")
    print(f"{count} succeeded")


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
