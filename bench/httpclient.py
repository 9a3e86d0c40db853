"""The one HTTP client of the tunnel benchmark, run as its own process (so that it can run inside a
compute node's network namespace): a download's throughput, and small requests' latencies, each
on a new connection. Prints one JSON object. Standard library only.

    python bench/httpclient.py URL [--token T] (--download | --requests N)
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from urllib.parse import urlsplit


def request_bytes(url: str, token: str) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {path} HTTP/1.0", f"Host: {parts.netloc}", "User-Agent: hdbench"]
    if token:
        lines.append(f"Authorization: token {token}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return parts.hostname or "127.0.0.1", parts.port or 80, head


def fetch(host: str, port: int, request: bytes, bufsize: int = 1 << 20) -> tuple[float, int, bytes]:
    """Seconds from connect() to the server closing, bytes received, and the first bytes."""
    started = time.perf_counter()
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as browsers do
        sock.sendall(request)
        head = b""
        total = 0
        while chunk := sock.recv(bufsize):
            if len(head) < 64:
                head += chunk[:64]
            total += len(chunk)
    return time.perf_counter() - started, total, head


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--token", default="")
    parser.add_argument("--download", action="store_true", help="one download: throughput")
    parser.add_argument("--requests", type=int, default=0, help="small requests: latencies")
    args = parser.parse_args()
    host, port, request = request_bytes(args.url, args.token)
    if args.download:
        seconds, size, head = fetch(host, port, request)
        result = {"seconds": seconds, "bytes": size, "status": head[:12].decode(errors="replace")}
    else:
        latencies = []
        status = ""
        for _ in range(args.requests):
            seconds, _, head = fetch(host, port, request, 65536)
            status = head[:12].decode(errors="replace")
            latencies.append(seconds)
        result = {"latencies": latencies, "status": status}
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
