"""conftest.py -- black-box fixtures: a real `flint serve` on free ports, its CLI and its APIs.

Every daemon runs from bin/flint (or $FLINT_BIN) with a fresh data directory under pytest's tmp_path and
writes its log there; the tail of that log is attached to every failing test. Stopping a
daemon checks that none of the processes it started (spawner, instances) outlive it.
"""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
# FLINT_BIN runs the suite against another build (e.g. one with sanitizers).
FLINT = Path(os.environ.get("FLINT_BIN") or ROOT / "bin" / "flint")
APPS = Path(__file__).resolve().parent / "apps"
PY = "/usr/bin/python3"
sys.path.insert(0, str(APPS))  # tests share helpers with the apps (testapp.pattern)

# Daemons alive right now, so a failing test can show their logs.
RUNNING = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=10.0, interval=0.05, what=None):
    """Calls predicate until it returns something truthy and returns that; fails after timeout."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = predicate()
            if v:
                return v
            last_exc = None
        except (requests.RequestException, OSError, ValueError, KeyError) as e:
            last_exc = e
        if time.monotonic() >= deadline:
            msg = "timed out after %.1fs waiting for %s" % (timeout, what or getattr(predicate, "__name__", "condition"))
            if last_exc is not None:
                msg += " (last error: %r)" % (last_exc,)
            raise AssertionError(msg)
        time.sleep(interval)


def holds_for(value, expect, duration, interval=0.05, what=None):
    """Checks that value() stays equal to expect for duration seconds (something must NOT
    happen, e.g. an instance being replaced)."""
    deadline = time.monotonic() + duration
    while True:
        v = value()
        assert v == expect, "%s changed: expected %r, got %r" % (
            what or getattr(value, "__name__", "value"), expect, v)
        if time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def proc_start_time(pid):
    """The start time of pid in clock ticks (field 22 of /proc/PID/stat), or None if gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return None
    fields = st[st.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None  # a zombie has ended; only its parent has not reaped it yet
    return int(fields[19])


def alive(pid, start_time):
    """True if the process pid that started at start_time still runs (never a reused pid)."""
    return start_time is not None and proc_start_time(pid) == start_time


def all_procs():
    """{pid: (ppid, start_time)} for every live process."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        if fields[0] in ("Z", "X"):
            continue
        out[int(d)] = (int(fields[1]), int(fields[19]))
    return out


def descendants(pid):
    """[(pid, start_time)] of every live process below pid."""
    procs = all_procs()
    children = {}
    for p, (pp, _) in procs.items():
        children.setdefault(pp, []).append(p)
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append((c, procs[c][1]))
            todo.append(c)
    return out


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def procs_under(directory):
    """Live processes whose working directory is inside directory (instances run there)."""
    out = []
    directory = os.path.realpath(directory)
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            cwd = os.readlink("/proc/%s/cwd" % d)
        except OSError:
            continue
        if (cwd == directory or cwd.startswith(directory + "/")) and proc_start_time(int(d)):
            out.append(int(d))
    return out


def vm_hwm_kib(pid):
    """Peak resident set size of pid in KiB (VmHWM)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM for pid %d" % pid)


class Flint:
    """One `flint serve` process and clients for it."""

    def __init__(self, base, domain="localhost", extra_args=()):
        self.base = Path(base)
        self.data = self.base / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.log_path = self.base / "flint.log"
        self.domain = domain
        self.gw_port = free_port()
        self.admin_port = free_port()
        # Instance ports: a block of our own, away from the default 20000-29999 that other
        # daemons on this host use, so no instance of theirs can pass for one of ours.
        lo = 10000 + 200 * random.randrange(50)
        self.instance_ports = "%d-%d" % (lo, lo + 199)
        self.extra_args = list(extra_args)  # more `flint serve` flags
        self.proc = None
        self.token = None
        self._tracked = []  # (pid, start_time) of processes the daemon started
        self._logf = None

    # -- the daemon ----------------------------------------------------------------

    @property
    def admin(self):
        return "127.0.0.1:%d" % self.admin_port

    @property
    def gateway(self):
        return "127.0.0.1:%d" % self.gw_port

    def start(self, timeout=15.0):
        assert FLINT.exists(), "%s is missing: build it with make" % FLINT
        args = [str(FLINT), "serve", "--data", str(self.data), "--listen", self.gateway,
                "--admin", self.admin, "--threads", "2", "--ports", self.instance_ports]
        if self.domain:
            args += ["--domain", self.domain]
        args += self.extra_args
        if self._logf:
            self._logf.close()
        self._logf = open(self.log_path, "ab")
        self._logf.write(("\n=== %s\n" % " ".join(args)).encode())
        self._logf.flush()
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._logf,
                                     stderr=subprocess.STDOUT, cwd=str(self.base))
        RUNNING.append(self)

        def healthy():
            if self.proc.poll() is not None:
                raise AssertionError("flint serve exited with status %s while starting:\n%s"
                                     % (self.proc.returncode, self.log_tail()))
            r = requests.get("http://%s/healthz" % self.admin, timeout=1)
            return r.status_code == 200

        wait_for(healthy, timeout, what="GET /healthz on the admin port")
        self.token = (self.data / "token").read_text().strip()
        assert self.token, "DATA/token is empty"
        return self

    def track(self):
        """Remembers every process below the daemon now, to check later that none survive it."""
        if self.proc and self.proc.poll() is None:
            known = set(self._tracked)
            for p in descendants(self.proc.pid):
                if p not in known:
                    self._tracked.append(p)

    def signal(self, sig):
        self.track()
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=20.0):
        """Waits for the daemon to exit and returns its status."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("flint serve did not exit within %.0fs:\n%s" % (timeout, self.log_tail()))
        if self in RUNNING:
            RUNNING.remove(self)
        return rc

    def stop(self, timeout=20.0):
        """SIGTERM, wait, and check that nothing the daemon started is left. Returns the status."""
        if self.proc is None or self.proc.poll() is not None:
            if self in RUNNING:
                RUNNING.remove(self)
            return self.proc.returncode if self.proc else None
        self.signal(signal.SIGTERM)
        rc = self.wait_exit(timeout)
        self.check_no_leftovers()
        return rc

    def kill9(self):
        """SIGKILL the daemon (a crash) and wait for it to be gone."""
        self.track()
        self.proc.kill()
        self.proc.wait(10)
        if self in RUNNING:
            RUNNING.remove(self)

    def leftovers(self):
        pids = {p for p, st in self._tracked if alive(p, st)}
        pids |= set(procs_under(self.data))
        return sorted(pids)

    def check_no_leftovers(self, timeout=5.0):
        # Children are reaped asynchronously by init once the daemon is gone; give
        # them a moment before calling them leftovers.
        deadline = time.monotonic() + timeout
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.05)
        left = self.leftovers()
        assert not left, "processes left after flint serve exited: %s\n%s" % (
            ["%d: %s" % (p, cmdline(p)) for p in left], self.log_tail())

    def log_tail(self, n=60):
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])

    def close(self):
        """Teardown: stop if running (checking leftovers), kill the rest as a last resort."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                rc = self.stop()
                assert rc == 0, "flint serve exited with status %s on SIGTERM:\n%s" % (rc, self.log_tail())
            else:
                self.check_no_leftovers()
        finally:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            for p in self.leftovers():
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
            if self in RUNNING:
                RUNNING.remove(self)
            if self._logf:
                self._logf.close()
                self._logf = None

    # -- clients -------------------------------------------------------------------

    def env(self):
        e = dict(os.environ)
        e["FLINT_TOKEN"] = self.token or ""
        e["FLINT_DATA"] = str(self.data)
        e["FLINT_ADMIN"] = self.admin
        return e

    def cli(self, *args, input=None, timeout=120, token=None):
        """Runs bin/flint ARGS --admin ADDR; returns the CompletedProcess (text)."""
        env = self.env()
        if token is not None:
            env["FLINT_TOKEN"] = token
        argv = [str(FLINT)] + [str(a) for a in args]
        if "--" in argv:
            i = argv.index("--")
            argv[i:i] = ["--admin", self.admin]
        else:
            argv += ["--admin", self.admin]
        return subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                              env=env, cwd=str(ROOT))

    def cli_ok(self, *args, **kw):
        r = self.cli(*args, **kw)
        assert r.returncode == 0, "flint %s exited %d\nstdout: %s\nstderr: %s\n%s" % (
            " ".join(map(str, args)), r.returncode, r.stdout, r.stderr, self.log_tail(30))
        return r

    def cli_json(self, *args):
        return json.loads(self.cli_ok(*args).stdout)

    def api(self, method, path, json=None, token=None, headers=None, timeout=30, **kw):
        h = {"Authorization": "Bearer %s" % (self.token if token is None else token)}
        if token == "":
            h = {}
        h.update(headers or {})
        return requests.request(method, "http://%s%s" % (self.admin, path), json=json, headers=h,
                                timeout=timeout, **kw)

    def gw(self, path, method="GET", headers=None, host=None, timeout=30, **kw):
        h = dict(headers or {})
        if host is not None:
            h["Host"] = host
        return requests.request(method, "http://%s%s" % (self.gateway, path), headers=h,
                                timeout=timeout, **kw)

    # -- functions -----------------------------------------------------------------

    def function(self, name):
        r = self.api("GET", "/v1/functions/%s" % name)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()

    def instances(self, name):
        r = self.api("GET", "/v1/functions/%s/instances" % name)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()["instances"]

    def deploy_app(self, name, app="testapp.py", **spec):
        """Deploys tests/integration/apps/APP as function NAME through `flint deploy DIR`.

        spec holds further flint.yaml fields (scale=..., limits=..., ...). The file is
        written as JSON, which is also YAML."""
        d = self.base / "fn" / name
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        shutil.copy(APPS / app, d / app)
        doc = {"name": name, "command": [PY, app]}
        doc.update(spec)
        (d / "flint.yaml").write_text(json.dumps(doc, indent=2) + "\n")
        self.cli_ok("deploy", d)
        self.track()
        return name


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Attach the logs of the daemons still running to a failure.
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for f in RUNNING:
            rep.sections.append(("flint log (%s)" % f.log_path, f.log_tail(80)))


@pytest.fixture(scope="module")
def flint(tmp_path_factory):
    """A daemon shared by the tests of one module."""
    f = Flint(tmp_path_factory.mktemp("flint")).start()
    yield f
    f.close()


@pytest.fixture
def fresh_flint(tmp_path):
    """A daemon of a test's own, for tests that stop, kill or restart it (start() again
    after it exited runs a new daemon on the same data directory and ports)."""
    f = Flint(tmp_path).start()
    yield f
    f.close()
