"""busyapp.py -- answers 503 (with X-Flint-Overloaded: 1) to /overloaded, 200 otherwise."""
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path.startswith("/overloaded"):
            body, code = b"too busy\n", 503
        elif self.path.startswith("/sleep"):
            time.sleep(1.0)
            body, code = b"slept\n", 200
        else:
            body, code = b"ok\n", 200
        self.send_response(code)
        if code == 503:
            self.send_header("X-Flint-Overloaded", "1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
