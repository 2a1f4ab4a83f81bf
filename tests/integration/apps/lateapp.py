"""lateapp.py -- counts what reaches it: GET /stats answers {"conns": connections accepted
so far (this one included), "healthz": GET /healthz answered}. With LISTEN_DELAY_MS set it
binds its port at once but listens only that much later."""
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COUNT = {"conns": 0, "healthz": 0}
LOCK = threading.Lock()


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/healthz":
            with LOCK:
                COUNT["healthz"] += 1
            body = b"ok\n"
        else:
            with LOCK:
                body = json.dumps(COUNT).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


class S(ThreadingHTTPServer):
    daemon_threads = True

    def get_request(self):
        r = super().get_request()
        with LOCK:
            COUNT["conns"] += 1
        return r


s = S(("127.0.0.1", int(os.environ["PORT"])), H, bind_and_activate=False)
s.server_bind()
time.sleep(int(os.environ.get("LISTEN_DELAY_MS", "0")) / 1000)
s.server_activate()
s.serve_forever()
