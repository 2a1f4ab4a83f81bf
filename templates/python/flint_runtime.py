"""flint_runtime.py -- the function framework of flint's Python template.

A standard-library HTTP/1.1 server (one thread per connection, keep-alive) listening on
127.0.0.1:$PORT. Every request but GET /healthz goes to handle(req) in handler.py; what
it returns becomes the answer. Access lines go to stdout, handler errors to stderr.
Nothing is written next to the code: flint runs it from a read-only directory.
"""
import json
import os
import sys
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# handler.py may `from flint_runtime import Response`: let that name this very module
# rather than load a second copy of it (whose Response class would be another one).
sys.modules.setdefault("flint_runtime", sys.modules[__name__])

MAX_BODY = int(os.environ.get("FLINT_MAX_BODY", str(64 << 20)))


class Request:
    """One request, as the handler sees it."""

    def __init__(self, method, path, query, headers, body):
        self.method = method  # "GET", "POST", ...
        self.path = path  # "/items/1", without the query
        self.query_string = query  # "a=1&b=2", raw
        self.query_all = parse_qs(query, keep_blank_values=True)  # {"a": ["1"]}
        self.query = {k: v[-1] for k, v in self.query_all.items()}  # {"a": "1"}
        self.headers = headers  # case-insensitive: req.headers.get("content-type")
        self.body = body  # bytes, b"" when there is none

    @property
    def text(self):
        return self.body.decode("utf-8", errors="replace")

    def json(self):
        """The body parsed as JSON (None when empty); raises ValueError when it is not JSON."""
        if not self.body:
            return None
        return json.loads(self.body)


class Response:
    """An answer with a status and headers: Response(201, {"id": 7}, {"Location": "/7"})."""

    def __init__(self, status=200, body=b"", headers=None):
        self.status = int(status)
        self.body = body
        self.headers = dict(headers or {})


class BadRequest(Exception):
    pass


def to_response(result):
    """Turns what handle() returned into a Response with bytes for its body."""
    if isinstance(result, Response):
        resp = result
    elif isinstance(result, tuple):
        if len(result) not in (2, 3):
            raise TypeError("handle() returned a tuple of %d items; expected (status, body) "
                            "or (status, body, headers)" % len(result))
        resp = Response(*result)
    elif result is None:
        return Response(204, b"")
    else:
        resp = Response(200, result)
    body = resp.body
    ctype = None
    if isinstance(body, (dict, list)):
        body, ctype = json.dumps(body).encode() + b"\n", "application/json"
    elif isinstance(body, str):
        body, ctype = body.encode(), "text/plain; charset=utf-8"
    elif isinstance(body, (bytes, bytearray)):
        body, ctype = bytes(body), "application/octet-stream"
    elif body is None:
        body = b""
    else:
        raise TypeError("handle() returned a body of type %s; expected dict, list, str or bytes"
                        % type(body).__name__)
    if ctype and not any(k.lower() == "content-type" for k in resp.headers):
        resp.headers["Content-Type"] = ctype
    resp.body = body
    return resp


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: flint pools its connections to us
    server_version = "flint-python"

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts, total = [], 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    n = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise BadRequest("bad chunk size line %r" % line[:40])
                if n == 0:
                    while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                total += n
                if total > MAX_BODY:
                    raise BadRequest("body larger than %d bytes" % MAX_BODY)
                parts.append(self.rfile.read(n))
                self.rfile.readline(8)
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise BadRequest("bad Content-Length")
        if n < 0 or n > MAX_BODY:
            raise BadRequest("bad Content-Length %d" % n)
        return self.rfile.read(n) if n else b""

    def send(self, resp):
        self.send_response(resp.status)
        for k, v in resp.headers.items():
            if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(k, str(v))
        if resp.status in (204, 304):
            resp.body = b""  # these carry no body, nor a Content-Length saying so
        else:
            self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD" and resp.body:
            self.wfile.write(resp.body)

    def serve(self):
        t0 = time.monotonic()
        u = urlsplit(self.path)
        try:
            body = self.read_body()
        except BadRequest as e:
            self.close_connection = True
            self.send(Response(400, json.dumps({"error": str(e)}).encode() + b"\n",
                               {"Content-Type": "application/json"}))
            return
        if self.command == "GET" and u.path == "/healthz":
            self.send(Response(200, b"ok\n", {"Content-Type": "text/plain"}))
            return
        req = Request(self.command, u.path, u.query, self.headers, body)
        try:
            resp = to_response(handler.handle(req))
        except Exception as e:
            sys.stderr.write("error: %s %s: %s: %s\n%s" % (
                self.command, u.path, type(e).__name__, e, traceback.format_exc()))
            sys.stderr.flush()
            msg = "%s: %s" % (type(e).__name__, e)
            resp = Response(500, json.dumps({"error": msg}).encode() + b"\n",
                            {"Content-Type": "application/json"})
        self.send(resp)
        print("%s %s %d %dB %.1fms" % (self.command, self.path, resp.status, len(resp.body),
                                      (time.monotonic() - t0) * 1000), flush=True)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = serve

    def log_request(self, code="-", size="-"):
        pass  # serve() prints one line per request itself, with its duration

    def log_message(self, fmt, *args):
        # The stdlib's own lines (malformed requests) go to stderr, ours to stdout.
        sys.stderr.write("%s\n" % (fmt % args))
        sys.stderr.flush()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


def main():
    port = int(os.environ.get("PORT", "8080"))
    host = os.environ.get("HOST", "127.0.0.1")
    srv = Server((host, port), Handler)
    print("listening on %s:%d (pid %d)" % (host, port, os.getpid()), flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import handler  # noqa: E402 -- after the module alias above is in place
    main()
