"""sickapp.py -- healthy until told otherwise: /healthz answers 200 until /sicken (then 500) or
/freeze (then it never answers); /id names the process (a random token: in a sandbox every command is pid 2)."""
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE = {"health": "ok"}
NEVER = threading.Event()
TOKEN = os.urandom(8).hex().encode()


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        code, body = 200, b"ok\n"
        if self.path == "/healthz":
            if MODE["health"] == "frozen":
                NEVER.wait()
            if MODE["health"] == "sick":
                code, body = 500, b"sick\n"
        elif self.path == "/sicken":
            MODE["health"] = "sick"
        elif self.path == "/freeze":
            MODE["health"] = "frozen"
        elif self.path == "/id":
            body = TOKEN + b"\n"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
