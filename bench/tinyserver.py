#!/usr/bin/env python3
"""A trivially small stand-in for jupyterhub-singleuser: answers 200 to every GET and HEAD on the
address of $JUPYTERHUB_SERVICE_URL. For benchmarks where only the spawner's cost matters.

Python's standard library only: it runs from any interpreter on the compute nodes.
"""

import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        body = b"tiny bench server\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> int:
    url = urlsplit(os.environ.get("JUPYTERHUB_SERVICE_URL", ""))
    if not url.port:
        print("tinyserver: JUPYTERHUB_SERVICE_URL names no port", file=sys.stderr)
        return 2
    server = ThreadingHTTPServer(("0.0.0.0", url.port), Answer)
    print(f"tinyserver: listening on port {url.port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
