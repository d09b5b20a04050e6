#!/usr/bin/env python3
"""The client of bench.py's idle profile:
    python3 bench/idle_client.py PORT N HOLD
opens N connections to 127.0.0.1:PORT, sends one GET on each and reads its
whole answer, prints one JSON line (answered, failed, first_error, open_s),
then holds every connection open until stdin closes or HOLD seconds pass.
Only standard-library Python."""

import json
import re
import resource
import select
import socket
import sys
import time


def idle_client(port, n, hold):
    """Opens n connections, sends one GET on each and reads its whole answer,
    prints how many were answered, then holds them all open until stdin
    closes or hold seconds pass."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    req = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
    socks, ok, failed, first = [], 0, 0, ""
    t0 = time.time()
    for _ in range(n):
        try:
            sk = socket.create_connection(("127.0.0.1", port), timeout=10)
            sk.sendall(req)
            socks.append(sk)
        except OSError as e:
            failed += 1
            first = first or str(e)
    for sk in socks:
        try:
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = sk.recv(65536)
                if not chunk:
                    raise OSError("closed before the answer")
                buf += chunk
            head, _, body = buf.partition(b"\r\n\r\n")
            m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            want = int(m.group(1)) if m else 0
            while len(body) < want:
                chunk = sk.recv(65536)
                if not chunk:
                    raise OSError("closed in the body")
                body += chunk
            if not head.startswith(b"HTTP/1.1 2"):
                raise OSError(head.split(b"\r\n")[0].decode(errors="replace"))
            ok += 1
        except OSError as e:
            failed += 1
            first = first or str(e)
    print(json.dumps(dict(answered=ok, failed=failed, first_error=first, open_s=time.time() - t0)), flush=True)
    select.select([sys.stdin], [], [], hold)
    for sk in socks:
        sk.close()


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: idle_client.py PORT N HOLD")
    idle_client(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
