"""coldstart.py -- cold starts, spawn rate, density and a cold burst against a running flint.

Run by bench/coldstart.sh, which starts `flint serve` and passes everything through the
environment: CS_GW, CS_ADMIN (host:port), CS_TOKEN, CS_FLINT_PID, CS_DIR (a directory
holding the built ./hello), CS_OUT (where results.md goes), CS_FLOOR_CMD (the floor
harness's command line for one sample, which it prints in microseconds), and the sizes
CS_COLD (functions for the cold-start test), CS_SPAWN (instances for the spawn rate),
CS_DENSITY (idle instances) and CS_BURST (concurrent requests). CS_GW2, CS_ADMIN2,
CS_TOKEN2 and CS_FLINT_PID2 name a second daemon run with `--warm-pool 0`, for the cold
starts without sandboxes built ahead of need, side by side; CS_GW3, CS_ADMIN3, CS_TOKEN3,
CS_FLINT_PID3 and CS_B_NAME, when set, a third daemon of another build to compare.
"""
import json
import os
import shlex
import socket
import subprocess
import sys
import threading
import time

import requests

GW = os.environ["CS_GW"]
ADMIN = "http://" + os.environ["CS_ADMIN"]
TOKEN = os.environ["CS_TOKEN"]
FLINT_PID = int(os.environ["CS_FLINT_PID"])
DIR = os.environ["CS_DIR"]
OUT = os.environ["CS_OUT"]
COLD = int(os.environ.get("CS_COLD", "100"))
SPAWN = int(os.environ.get("CS_SPAWN", "100"))
DENSITY = int(os.environ.get("CS_DENSITY", "1000"))
BURST = int(os.environ.get("CS_BURST", "200"))
PY_COLD = int(os.environ.get("CS_PY", "20"))
MANY = int(os.environ.get("CS_MANY", "2000"))
PY_DIR = os.environ.get("CS_PY_DIR", "")

S = requests.Session()
S.headers["Authorization"] = "Bearer " + TOKEN
ROWS = []


class Daemon:
    def __init__(self, gw, admin, token, pid):
        self.gw, self.admin, self.pid = gw, "http://" + admin, pid
        self.s = requests.Session()
        self.s.headers["Authorization"] = "Bearer " + token


D1 = Daemon(GW, os.environ["CS_ADMIN"], TOKEN, FLINT_PID)
D2 = Daemon(os.environ["CS_GW2"], os.environ["CS_ADMIN2"], os.environ["CS_TOKEN2"],
            int(os.environ["CS_FLINT_PID2"])) if os.environ.get("CS_GW2") else None
D3 = Daemon(os.environ["CS_GW3"], os.environ["CS_ADMIN3"], os.environ["CS_TOKEN3"],
            int(os.environ["CS_FLINT_PID3"])) if os.environ.get("CS_GW3") else None
FLOOR_CMD = shlex.split(os.environ["CS_FLOOR_CMD"])


def log(*a):
    print("coldstart:", *a, file=sys.stderr, flush=True)


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, (len(v) * p) // 100)]


def deploy(name, sandbox, d=D1, **scale):
    spec = {"command": ["./hello"], "workdir": DIR, "sandbox": sandbox,
            "scale": dict({"min": 0, "max": 1, "idle_timeout": "10m"}, **scale),
            "health": {"startup_timeout": "60s"}, "queue": {"timeout": "60s"}}
    r = d.s.put(d.admin + "/v1/functions/" + name, data=json.dumps(spec))
    if r.status_code not in (200, 201):
        sys.exit("coldstart: deploying %s failed: %s %s" % (name, r.status_code, r.text))


def remove(name, d=D1):
    d.s.delete(d.admin + "/v1/functions/" + name)


def instances(name, d=D1):
    return d.s.get(d.admin + "/v1/functions/" + name + "/instances").json()["instances"]


def wait_no_instances(timeout=120, d=D1):
    """Waits until every instance of removed functions is gone (the spawner has no children
    left but its warm sandboxes), so phases do not overlap."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not d.s.get(d.admin + "/v1/functions").json()["functions"] and \
                not [c for c in children(spawner_pid(d.pid)) if comm(c) != "flint-warm"]:
            return
        time.sleep(0.05)
    log("instances still running after %d s" % timeout)


def children(pid):
    out = []
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                out += f.read().split()
    except OSError:
        pass
    return out


def ttfb(path, host="x", gw=GW):
    """Time to the first byte of the answer to GET path on the gateway, in ms, and the head."""
    h, p = gw.rsplit(":", 1)
    t0 = time.perf_counter()
    s = socket.create_connection((h, int(p)))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, host)).encode())
    first = s.recv(65536)
    t1 = time.perf_counter()
    data = first
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    return (t1 - t0) * 1000, data.decode("latin-1")


def floor_sample():
    """One run of the floor harness (fork+exec+connect-poll+first byte), in ms."""
    r = subprocess.run(FLOOR_CMD, capture_output=True, text=True)
    if r.returncode != 0 or not r.stdout.split():
        sys.exit("coldstart: the floor harness failed: %s" % r.stderr.strip())
    return float(r.stdout.split()[0]) / 1000


def cold_starts(runs):
    """For each of COLD function indexes, in turn: a floor sample, then the first request
    to a fresh function of each run (sandbox, daemon): the TTFB of each, flint's own
    spawn-to-ready figures, and how many instances came from a warm sandbox. Taking them
    in turn keeps the machine's drifting load out of the comparison."""
    # Index 0 is a primer, not counted: the very first start of a kind pays for what the
    # page cache and the daemon have not seen yet (the binary, the first sandbox).
    names = [["hc-%d-%d" % (k, i) for i in range(COLD + 1)] for k in range(len(runs))]
    for k, (sandbox, d) in enumerate(runs):
        for n in names[k]:
            deploy(n, sandbox, d)
    time.sleep(0.5)  # let deploys settle: nothing must be running yet
    floor = []
    out = [([], [], 0) for _ in runs]
    for i in range(COLD + 1):
        f = floor_sample()
        if i:
            floor.append(f)
        for k, (sandbox, d) in enumerate(runs):
            n = names[k][i]
            ms, resp = ttfb("/function/%s/" % n, gw=d.gw)
            if " 200 " not in resp.split("\r\n", 1)[0] or "hello from C" not in resp:
                sys.exit("coldstart: %s answered %r" % (n, resp[:200]))
            if "cold;dur=" not in resp:
                sys.exit("coldstart: %s was not a cold start (no Server-Timing: cold)" % n)
            if i:
                out[k][0].append(ms)
            time.sleep(0.01)  # one start at a time, as a function's first request comes
    res = []
    for k, (sandbox, d) in enumerate(runs):
        v, server, warm = out[k]
        for n in names[k][1:]:
            for i in instances(n, d):
                if i.get("cold_start_ms") is not None:
                    server.append(i["cold_start_ms"])
                warm += bool(i.get("warm"))
        res.append((v, server, warm))
    for k, (sandbox, d) in enumerate(runs):
        for n in names[k]:
            remove(n, d)
    for d in {id(d): d for _, d in runs}.values():
        wait_no_instances(d=d)
    return floor, res


def py_cold_starts(d):
    """TTFB of the first request to each of PY_COLD fresh functions of the Python template
    (CS_PY_DIR, made by `flint new -l python`), after one primer start (the pool keeps
    Python zygotes once it has seen one), and how many came from a zygote."""
    spec = {"command": ["python3", "flint_runtime.py"], "workdir": PY_DIR,
            "scale": {"min": 0, "max": 1, "idle_timeout": "10m"},
            "health": {"path": "/healthz", "startup_timeout": "60s"},
            "queue": {"timeout": "60s"}}
    names = ["py-%d" % i for i in range(PY_COLD + 1)]
    for n in names:
        r = d.s.put(d.admin + "/v1/functions/" + n, data=json.dumps(spec))
        if r.status_code not in (200, 201):
            sys.exit("coldstart: deploying %s failed: %s" % (n, r.text))
    v, zyg = [], 0
    for i, n in enumerate(names):
        time.sleep(0.5)  # room for the pool to make a zygote, as between real deploys
        ms, resp = ttfb("/function/%s/" % n, gw=d.gw)
        if " 200 " not in resp.split("\r\n", 1)[0]:
            sys.exit("coldstart: %s answered %r" % (n, resp[:200]))
        if i > 0:
            v.append(ms)
    for n in names[1:]:
        zyg += sum(1 for i in instances(n, d) if i.get("zygote"))
    for n in names:
        remove(n, d)
    wait_no_instances(d=d)
    return v, zyg


def spawn_rate(sandbox):
    name = "sr-" + ("sb" if sandbox else "ns")
    deploy(name, sandbox, max=SPAWN)
    time.sleep(0.3)
    t0 = time.perf_counter()
    r = S.post(ADMIN + "/v1/functions/%s/scale" % name, data=json.dumps({"min": SPAWN}))
    if r.status_code != 200:
        sys.exit("coldstart: scale failed: %s" % r.text)
    while True:
        ins = instances(name)
        if sum(1 for i in ins if i["state"] == "ready") >= SPAWN:
            break
        time.sleep(0.005)
    wall = time.perf_counter() - t0
    first = min(i["started_ms"] for i in ins)
    last = max(i["ready_ms"] for i in ins)
    remove(name)
    wait_no_instances()
    return SPAWN / wall, SPAWN / max((last - first) / 1000, 1e-3), wall


def smaps(pid):
    """PSS and private (clean + dirty) memory of pid in KiB, from smaps_rollup."""
    pss = priv = 0
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                k = line.split()
                if k[0] == "Pss:":
                    pss = int(k[1])
                elif k[0] in ("Private_Clean:", "Private_Dirty:"):
                    priv += int(k[1])
    except (OSError, IndexError):
        pass
    return pss, priv


def flint_memory():
    """(serve PSS, serve private, PSS of serve + spawner + every sandbox init) in KiB. The
    inits are forked from the spawner, which is forked from flint serve, and share pages
    with both: PSS splits those pages between them, so only the sum is flint's whole
    memory. Instances' own processes (exec'd) are not counted."""
    sp = spawner_pid()
    pss, priv = smaps(FLINT_PID)
    total = pss + smaps(sp)[0]
    for c in children(sp):
        # Instances' inits, and the warm pool's (flint's memory too).
        if comm(c) in ("flint-init", "flint-warm"):
            total += smaps(int(c))[0]
    return pss, priv, total


def comm(pid):
    try:
        with open("/proc/%s/comm" % pid) as g:
            return g.read().strip()
    except OSError:
        return ""


def spawner_pid(flint_pid=FLINT_PID):
    for c in children(flint_pid):
        if comm(c) == "flint-spawner":
            return int(c)
    return 0


def density():
    name = "dn"
    deploy(name, True, max=DENSITY)
    time.sleep(0.5)
    base = flint_memory()
    t0 = time.perf_counter()
    S.post(ADMIN + "/v1/functions/%s/scale" % name, data=json.dumps({"min": DENSITY}))
    ready, last_change, prev = 0, time.monotonic(), -1
    while True:
        ins = instances(name)
        ready = sum(1 for i in ins if i["state"] == "ready")
        if ready != prev:
            prev, last_change = ready, time.monotonic()
        if ready >= DENSITY or time.monotonic() - last_change > 20:
            break
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    time.sleep(2)  # idle: let whatever the starts allocated settle
    ins = instances(name)
    ready = sum(1 for i in ins if i["state"] == "ready")
    full = flint_memory()
    nfd = len(os.listdir("/proc/%d/fd" % FLINT_PID))
    why = ""
    if ready < DENSITY:
        d = S.get(ADMIN + "/v1/functions/" + name).json()
        why = (d.get("reason") or "") + " | " + "; ".join(e["what"] for e in d.get("events", [])[-3:])
    remove(name)
    wait_no_instances(300)
    return ready, wall, base, full, nfd, why


def many():
    """TTFB of 30 cold starts (sandboxed, warm pool) with MANY other functions deployed
    and at rest (never started, settled past the autoscaler's 6 s window): what a start
    costs that grows with the number of functions. Index 0 is a primer."""
    for i in range(MANY):
        deploy("idle-%d" % i, True)
    names = ["mn-%d" % i for i in range(31)]
    for n in names:
        deploy(n, True)
    time.sleep(7)
    v = []
    for i, n in enumerate(names):
        ms, _ = ttfb("/function/%s/" % n)
        time.sleep(0.01)
        if i:
            v.append(ms)
    for n in names + ["idle-%d" % i for i in range(MANY)]:
        remove(n)
    wait_no_instances()
    return v


def burst():
    name = "burst"
    deploy(name, True, max=50, concurrency=4)
    time.sleep(0.3)
    h, p = GW.rsplit(":", 1)
    socks = [socket.create_connection((h, int(p))) for _ in range(BURST)]
    go = threading.Barrier(BURST + 1)
    done = [None] * BURST

    def one(k):
        s = socks[k]
        go.wait()
        s.sendall(b"GET /function/burst/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
        done[k] = (time.perf_counter(), data.split(b"\r\n", 1)[0])
        s.close()

    th = [threading.Thread(target=one, args=(k,)) for k in range(BURST)]
    for t in th:
        t.start()
    go.wait()
    t0 = time.perf_counter()
    for t in th:
        t.join()
    lat = [(d[0] - t0) * 1000 for d in done]
    ok = sum(1 for d in done if b" 200 " in d[1])
    n_inst = len([i for i in instances(name) if i["state"] in ("ready", "starting")])
    remove(name)
    wait_no_instances()
    return ok, max(lat), pct(lat, 50), n_inst


def row(*cells):
    ROWS.append("| " + " | ".join(str(c) for c in cells) + " |")
    print(ROWS[-1], flush=True)


def main():
    runs = [(True, D1, "sandboxed (warm pool)")]
    if D3:
        runs.append((True, D3, "sandboxed (warm pool), build B (%s)" % os.environ.get("CS_B_NAME", "")))
    if D2:
        runs.append((True, D2, "sandboxed, --warm-pool 0"))
    runs.append((False, D1, "sandbox: false"))
    log("cold starts, in turn: the floor, %s" % ", ".join(label for _, _, label in runs))
    floor, res = cold_starts([(sandbox, d) for sandbox, d, _ in runs])
    f50, f99 = pct(floor, 50), pct(floor, 99)
    row("measure", "figure", "goal")
    row("---", "---:", "---")
    row("floor: fork+exec+first response (bench/coldfloor.c), p50 / p99",
        "%.2f / %.2f ms" % (f50, f99), "")
    for (sandbox, d, label), (v, server, warm) in zip(runs, res):
        s50, s99 = pct(v, 50), pct(v, 99)
        row("cold start, %s, TTFB through the gateway, p50 / p99 (%d functions, %d warm)"
            % (label, len(v), warm),
            "%.2f / %.2f ms (%.2f / %.2f × floor)" % (s50, s99, s50 / f50, s99 / f99),
            "≤ 5 / ≤ 20 ms, ≤ 1.5 × floor" if d is D1 and sandbox else "")
        if server:
            row("  flint's spawn-to-ready, %s, p50 / p99" % label,
                "%.2f / %.2f ms" % (pct(server, 50), pct(server, 99)), "")
    if D3:
        ratios = [vb / va for va, vb in zip(res[0][0], res[1][0])]
        row("build B / this build: cold start TTFB, median of the paired ratios (same index)",
            "%.2f" % pct(ratios, 50), "")
    if PY_DIR and PY_COLD > 0:
        for d, label in [(D1, "Python zygote")] + ([(D2, "--warm-pool 0")] if D2 else []):
            log("Python template cold starts, %s" % label)
            v, zyg = py_cold_starts(d)
            row("Python template cold start, %s, TTFB p50 / p99 (%d functions, %d from a "
                "zygote)" % (label, len(v), zyg),
                "%.2f / %.2f ms" % (pct(v, 50), pct(v, 99)),
                "≤ 15 ms p50" if d is D1 else "")
    for sandbox in (True, False) if SPAWN > 0 else ():
        log("spawn rate, sandbox=%s" % sandbox)
        rate, rate_api, wall = spawn_rate(sandbox)
        label = "sandboxed" if sandbox else "sandbox: false"
        row("spawn rate, %s: %d instances, scale call to all ready" % (label, SPAWN),
            "%.0f /s (%.2f s); first start to last ready: %.0f /s" % (rate, wall, rate_api),
            "≥ 300 /s" if sandbox else "")
    if DENSITY > 0:
        log("density: %d idle instances" % DENSITY)
        ready, wall, base, full, nfd, why = density()
        n = max(ready, 1)
        row("density: idle sandboxed instances ready", "%d of %d (in %.1f s)" % (ready, DENSITY, wall), "1,000")
        row("  flint serve: private memory without / with them (per instance)",
            "%.1f / %.1f MiB (%.1f KiB)" % (base[1] / 1024, full[1] / 1024, (full[1] - base[1]) / n), "")
        row("  flint serve + spawner + sandbox inits: PSS without / with them (per instance)",
            "%.1f / %.1f MiB (%.1f KiB)" % (base[2] / 1024, full[2] / 1024, (full[2] - base[2]) / n),
            "≤ 1 MiB per instance")
        row("  flint serve open descriptors with them", nfd, "")
        if why:
            row("  why not all", why.replace("|", "/"), "")
    if MANY:
        log("cold starts with %d other functions deployed" % MANY)
        wm = many()
        row("cold start, sandboxed (warm pool), with %d other functions deployed, TTFB p50 / p99 "
            "(30 functions; × the first row's p50)" % MANY,
            "%.2f / %.2f ms (%.2f ×)" % (pct(wm, 50), pct(wm, 99), pct(wm, 50) / pct(res[0][0], 50)),
            "")
    if BURST:
        log("burst: %d concurrent requests" % BURST)
        ok, total, p50, n = burst()
        row("burst: 0 → %d concurrent requests, concurrency 4, max 50: all served" % BURST,
            "%d × %d in %.1f ms (p50 %.1f ms, %d instances)" % (ok, BURST, total, p50, n), "")
    with open(OUT, "w") as f:
        f.write("\n".join(ROWS) + "\n")


main()
