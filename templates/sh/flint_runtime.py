"""flint_runtime.py -- the function framework of flint's shell template.

A standard-library HTTP/1.1 server (one thread per connection, keep-alive) listening on
127.0.0.1:$PORT. Every request but GET /healthz runs ./handler.sh once, with the body on
stdin and the request in the environment; its stdout is the answer's body. Access lines
go to stdout, the script's stderr and failures to stderr. Nothing is written next to
the code (flint runs it from a read-only directory): the headers file is in $TMPDIR.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "handler.sh")
MAX_BODY = int(os.environ.get("FLINT_MAX_BODY", str(64 << 20)))


class BadRequest(Exception):
    pass


def script_argv():
    # An executable script with a #! line picks its own interpreter (#!/bin/bash);
    # otherwise sh runs it, as execvp(3) would.
    try:
        with open(SCRIPT, "rb") as f:
            shebang = f.read(2) == b"#!"
    except OSError:
        shebang = False
    return [SCRIPT] if shebang and os.access(SCRIPT, os.X_OK) else ["/bin/sh", SCRIPT]


def parse_headers_file(path, headers):
    """Reads the "Name: value" lines the script wrote; returns the status they set, or None."""
    status = None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        name, sep, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            continue
        if name.lower() == "status":
            m = re.match(r"\d{3}", value)
            if m:
                status = int(m.group(0))
        else:
            headers[name] = value
    return status


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: flint pools its connections to us
    server_version = "flint-sh"

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

    def send(self, status, body, headers):
        self.send_response(status)
        for k, v in headers.items():
            if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(k, v)
        if status in (204, 304):
            body = b""  # these carry no body, nor a Content-Length saying so
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def run_script(self, path, query, body):
        """Runs handler.sh; returns (status, body, headers)."""
        env = dict(os.environ)
        env.update(METHOD=self.command, REQUEST_PATH=path, QUERY=query)
        for k, v in self.headers.items():
            env["HEADER_" + re.sub(r"[^A-Za-z0-9]", "_", k).upper()] = v
        fd, hpath = tempfile.mkstemp(prefix="flint-headers-")
        os.close(fd)
        env["RESPONSE_HEADERS"] = hpath
        try:
            p = subprocess.run(script_argv(), input=body, capture_output=True, env=env,
                               cwd=HERE)
            headers = {}
            status = parse_headers_file(hpath, headers)
        finally:
            os.unlink(hpath)
        err = p.stderr.decode("utf-8", errors="replace")
        if err:
            sys.stderr.write(err if err.endswith("\n") else err + "\n")
            sys.stderr.flush()
        if p.returncode != 0:
            why = ("killed by signal %d" % -p.returncode if p.returncode < 0
                   else "exited with status %d" % p.returncode)
            last = err.strip().splitlines()[-1:] or [""]
            msg = "handler.sh %s%s" % (why, (": " + last[0]) if last[0] else "")
            sys.stderr.write("error: %s %s: %s\n" % (self.command, path, msg))
            sys.stderr.flush()
            return 500, json.dumps({"error": msg}).encode() + b"\n", {
                "Content-Type": "application/json"}
        out = p.stdout
        if not any(k.lower() == "content-type" for k in headers):
            try:
                json.loads(out)
                headers["Content-Type"] = "application/json"
            except ValueError:
                headers["Content-Type"] = "text/plain; charset=utf-8"
        return status or 200, out, headers

    def serve(self):
        t0 = time.monotonic()
        u = urlsplit(self.path)
        try:
            body = self.read_body()
        except BadRequest as e:
            self.close_connection = True
            self.send(400, json.dumps({"error": str(e)}).encode() + b"\n",
                      {"Content-Type": "application/json"})
            return
        if self.command == "GET" and u.path == "/healthz":
            self.send(200, b"ok\n", {"Content-Type": "text/plain"})
            return
        try:
            status, out, headers = self.run_script(u.path, u.query, body)
        except OSError as e:
            sys.stderr.write("error: %s %s: cannot run handler.sh: %s\n" % (
                self.command, u.path, e))
            sys.stderr.flush()
            status, headers = 500, {"Content-Type": "application/json"}
            out = json.dumps({"error": "cannot run handler.sh: %s" % e}).encode() + b"\n"
        self.send(status, out, headers)
        print("%s %s %d %dB %.1fms" % (self.command, self.path, status, len(out),
                                      (time.monotonic() - t0) * 1000), flush=True)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = serve

    def log_request(self, code="-", size="-"):
        pass  # serve() prints one line per request itself, with its duration

    def log_message(self, fmt, *args):
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
    main()
