#!/usr/bin/python3
"""slowloris.py -- normal-traffic latency on the gateway with and without N slow clients
(each sends a request head one byte every INTERVAL seconds and reconnects when the
gateway closes it). Starts its own `flint serve` (bin/flint or $FLINT_BIN), deploys the
integration test app, and runs wrk for DURATION seconds in each phase.

usage: bench/slowloris.py [N=2000] [INTERVAL=2] [DURATION=10]
"""
import os
import re
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from conftest import Flint, wait_for  # noqa: E402


def wrk(f, seconds):
    out = subprocess.run(["wrk", "-t2", "-c32", "-d%ds" % seconds, "--latency",
                          "http://%s/function/b/" % f.gateway], capture_output=True,
                         text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, lat.get("50"), lat.get("99"), int(errs.group(1)) if errs else 0


def slow_clients(addr, n, interval, stop, stats):
    sel = selectors.DefaultSelector()
    socks = []

    def connect():
        s = socket.create_connection(addr)
        s.setblocking(False)
        s.send(b"GET /function/b/ HTTP/1.1\r\nHost: x\r\n")
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)

    for _ in range(n):
        connect()
    while not stop.is_set():
        t0 = time.monotonic()
        for s in list(socks):
            try:
                s.send(b"X")
            except OSError:
                pass
        while time.monotonic() - t0 < interval:
            for key, _ in sel.select(timeout=0.1):
                s = key.fileobj
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if not data or data.startswith(b"HTTP/1.1 408"):
                    stats["closed"] += 1
                    sel.unregister(s)
                    socks.remove(s)
                    s.close()
                    if not stop.is_set():
                        connect()  # keep n slow connections open at all times
    for s in socks:
        s.close()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    interval = float(sys.argv[2]) if len(sys.argv) > 2 else 2
    duration = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    f = Flint(tempfile.mkdtemp(prefix="flint-slowloris-")).start()
    try:
        f.deploy_app("b", scale={"min": 1, "max": 1})
        wait_for(lambda: f.gw("/function/b/").status_code == 200, 30)
        wrk(f, 2)  # warm up
        base = wrk(f, duration)
        stop = threading.Event()
        stats = {"closed": 0}
        host, port = f.gateway.rsplit(":", 1)
        t = threading.Thread(target=slow_clients, args=((host, int(port)), n, interval, stop,
                                                         stats))
        t.start()
        time.sleep(3)  # let every slow connection open
        loaded = wrk(f, duration)
        stop.set()
        t.join()
        print("without slow clients: %.0f req/s, p50 %s, p99 %s, non-2xx %d" % base)
        print("with %d slow clients (1 byte / %gs): %.0f req/s, p50 %s, p99 %s, non-2xx %d"
              % ((n, interval) + loaded))
        print("slow connections closed by the gateway (408 or close): %d" % stats["closed"])
    finally:
        f.close()


if __name__ == "__main__":
    main()
