"""eventapp.py -- a function for trigger tests (standard library only).

Listens on 127.0.0.1:$PORT. Every POST appends one JSON line to $STATE/events.jsonl:
{"t": time, "path", "trigger", "request_id", "attempt", "content_type", "body"}.

  POST with a body containing "slow"   waits 0.3 s first
  POST with a body containing "fail"   500 "failing on purpose"
  any other POST                       200 "got BODY" (the body echoed after "got ")
"""
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATE = os.environ["STATE"]
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def answer(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        rec = {"t": time.time(), "path": self.path,
               "trigger": self.headers.get("X-Flint-Trigger"),
               "request_id": self.headers.get("X-Flint-Request-Id"),
               "attempt": self.headers.get("X-Flint-Attempt"),
               "content_type": self.headers.get("Content-Type"),
               "body": body.decode(errors="replace")}
        with lock, open(os.path.join(STATE, "events.jsonl"), "a") as f:
            f.write(json.dumps(rec) + "\n")
        if b"slow" in body:
            time.sleep(0.3)
        if b"fail" in body:
            return self.answer(500, b"failing on purpose")
        return self.answer(200, b"got " + body)

    do_PUT = do_POST


class Server(ThreadingHTTPServer):
    daemon_threads = True


if __name__ == "__main__":
    Server(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
