"""secretapp.py -- a test function that shows what it can see of its secrets:
GET /read?p=PATH (the file's bytes), /stat?p=PATH ("MODE UID"), /environ (its own
/proc/self/environ), /whoami (its uid); it prints a line to stdout per request."""
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class H(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass

    def send(self, status, body):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        u = urlparse(self.path)
        q = parse_qs(u.query)
        p = q.get("p", [""])[0]
        print("request %s" % u.path, flush=True)
        try:
            if u.path == "/read":
                with open(p, "rb") as f:
                    return self.send(200, f.read())
            if u.path == "/stat":
                st = os.stat(p)
                return self.send(200, ("%o %d" % (st.st_mode & 0o7777, st.st_uid)).encode())
            if u.path == "/write":
                with open(p, "wb") as f:
                    f.write(b"x")
                return self.send(200, b"written")
            if u.path == "/environ":
                with open("/proc/self/environ", "rb") as f:
                    return self.send(200, f.read())
            if u.path == "/whoami":
                return self.send(200, str(os.getuid()).encode())
        except OSError as e:
            return self.send(403, ("%s" % e).encode())
        self.send(404, b"no such path")


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
