"""testapp.py -- the upstream the integration tests run as a function (standard library only).

Listens on 127.0.0.1:$PORT, HTTP/1.1 with keep-alive, one thread per connection.

  any /echo...       JSON: method, path, query, headers (lower-case names), body length and sha256
  GET /slow?s=N      sleeps N seconds, then "slept N\n"
  GET /work?s=N      like /slow, but counts requests in flight; answers "worked PID\n"
  GET /stats         JSON {"inflight": n, "max_inflight": n, "pid": pid}
  GET /die           the process exits at once, without answering
  POST /upload       reads the body piece by piece (Content-Length or chunked), answers
                     JSON {"bytes": n, "sha256": hex} without ever holding it whole
  GET /download?size=N&chunk=K
                     a chunked response of N bytes of pattern() in chunks of K bytes
  GET /log?msg=TEXT  writes "out: TEXT" to stdout and "err: TEXT" to stderr, answers "logged\n"
  anything else      200 "testapp\n"
"""
import hashlib
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PATTERN = bytes(range(256)) * 256  # 64 KiB; download bodies repeat it

lock = threading.Lock()
inflight = 0
max_inflight = 0


def pattern(size):
    """The first size bytes of the download body (tests compute the same bytes)."""
    reps, rest = divmod(size, len(PATTERN))
    return PATTERN * reps + PATTERN[:rest]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass  # request lines would flood the function's log

    def send(self, status, body, ctype="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, obj):
        self.send(200, (json.dumps(obj, sort_keys=True) + "\n").encode(), "application/json")

    def body_pieces(self):
        """Yields the request body in pieces, decoding chunked framing."""
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise ConnectionError("body ended inside chunk framing")
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                left = size
                while left:
                    piece = self.rfile.read(min(left, 1 << 16))
                    if not piece:
                        raise ConnectionError("body ended inside a chunk")
                    left -= len(piece)
                    yield piece
                self.rfile.readline(16)  # the CRLF after the chunk
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left:
                piece = self.rfile.read(min(left, 1 << 16))
                if not piece:
                    raise ConnectionError("body ended early")
                left -= len(piece)
                yield piece

    def digest_body(self):
        h = hashlib.sha256()
        n = 0
        for piece in self.body_pieces():
            h.update(piece)
            n += len(piece)
        return n, h.hexdigest()

    def handle_any(self):
        global inflight, max_inflight
        url = urlsplit(self.path)
        q = parse_qs(url.query)
        path = url.path
        if path.startswith("/echo"):
            n, digest = self.digest_body()
            headers = {}
            for k, v in self.headers.items():
                k = k.lower()
                headers[k] = headers[k] + ", " + v if k in headers else v
            self.send_json({"method": self.command, "path": path, "query": url.query,
                            "raw_target": self.path, "headers": headers,
                            "body_length": n, "body_sha256": digest})
        elif path == "/slow":
            self.digest_body()
            s = float(q.get("s", ["1"])[0])
            time.sleep(s)
            self.send(200, b"slept %g\n" % s)
        elif path == "/work":
            self.digest_body()
            with lock:
                inflight += 1
                max_inflight = max(max_inflight, inflight)
            try:
                time.sleep(float(q.get("s", ["0.2"])[0]))
            finally:
                with lock:
                    inflight -= 1
            self.send(200, b"worked %d\n" % os.getpid())
        elif path == "/stats":
            with lock:
                self.send_json({"inflight": inflight, "max_inflight": max_inflight,
                                "pid": os.getpid()})
        elif path == "/die":
            sys.stderr.write("testapp: /die asked, exiting\n")
            sys.stderr.flush()
            os._exit(3)
        elif path == "/upload":
            n, digest = self.digest_body()
            self.send_json({"bytes": n, "sha256": digest})
        elif path == "/download":
            self.digest_body()
            size = int(q.get("size", ["0"])[0])
            chunk = int(q.get("chunk", ["65536"])[0])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            body = pattern(min(size, len(PATTERN) * 2))
            sent = 0
            while sent < size:
                n = min(chunk, size - sent)
                off = sent % len(PATTERN)
                piece = body[off:off + n] if off + n <= len(body) else pattern(sent + n)[sent:]
                self.wfile.write(b"%x\r\n" % n + piece + b"\r\n")
                sent += n
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/log":
            msg = q.get("msg", [""])[0]
            print("out: " + msg, flush=True)
            sys.stderr.write("err: " + msg + "\n")
            sys.stderr.flush()
            self.digest_body()
            self.send(200, b"logged\n")
        else:
            self.digest_body()
            self.send(200, b"testapp\n")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def main():
    port = int(os.environ.get("PORT", "8080"))
    srv = Server(("127.0.0.1", port), Handler)
    print("testapp listening on 127.0.0.1:%d pid %d" % (port, os.getpid()), flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
