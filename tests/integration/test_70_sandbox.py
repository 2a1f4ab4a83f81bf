"""test_70_sandbox.py -- sandboxed instances: isolation and limits, with real processes.

Each test deploys a small probe app (written below, standard library only) and asks it
what it can see and do from inside its sandbox; the kernel's answers are the result.
"""
import json
import os
import re
import threading
import time

from conftest import PY, wait_for

COLD = 30

PROBE = r'''
import ctypes, errno, json, os, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

libc = ctypes.CDLL(None, use_errno=True)


def err_name(e):
    return errno.errorcode.get(e, str(e))


def try_call(fn, *args):
    """Calls a libc function; returns "ok" or the errno name it failed with."""
    r = fn(*args)
    return "ok" if r >= 0 else err_name(ctypes.get_errno())


def try_io(path, mode):
    try:
        with open(path, mode) as f:
            if "w" in mode:
                f.write("x")
            else:
                f.read()
        return "ok"
    except OSError as e:
        return err_name(e.errno)


def status_fields():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("CapEff", "CapBnd", "CapPrm", "NoNewPrivs", "Seccomp", "Seccomp_filters"):
                out[k] = v.strip()
    return out


def bomb(seconds):
    """Every process forks as fast as it can until the deadline, then leaves."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            os.fork()
        except OSError:
            time.sleep(0.002)
    os._exit(0)


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, obj):
        body = (json.dumps(obj, sort_keys=True) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        u = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        if u.path == "/whoami":
            self.reply({"pid": os.getpid(), "uid": os.getuid(), "gid": os.getgid(),
                        "groups": os.getgroups(), "home": os.environ.get("HOME"),
                        "cwd": os.getcwd(), "hostname": os.uname().nodename,
                        "procs": sorted(int(d) for d in os.listdir("/proc") if d.isdigit()),
                        "status": status_fields()})
        elif u.path == "/io":
            self.reply({"result": try_io(q["path"], q.get("mode", "r"))})
        elif u.path == "/ls":
            try:
                self.reply({"entries": sorted(os.listdir(q["path"]))})
            except OSError as e:
                self.reply({"error": err_name(e.errno)})
        elif u.path == "/syscalls":
            sc = libc.syscall
            self.reply({
                "mount": try_call(libc.mount, b"none", b"/tmp", b"tmpfs", 0, None),
                "umount": try_call(libc.umount2, b"/proc", 2),
                "ptrace": try_call(libc.ptrace, 16, 1, 0, 0),   # PTRACE_ATTACH to the init
                "unshare": try_call(libc.unshare, 0x10000000),  # CLONE_NEWUSER
                "unshare_ns": try_call(libc.unshare, 0x00020000),  # CLONE_NEWNS
                "finit_module": try_call(sc, 313, -1, b"", 0),
                "bpf": try_call(sc, 321, 0, None, 0),
                "keyctl": try_call(sc, 250, 0, 0, 0, 0, 0),
                "setuid0": try_call(libc.setuid, 0),
                # AF_INET, SOCK_RAW, IPPROTO_ICMP and AF_PACKET, SOCK_RAW
                "raw_socket": try_call(libc.socket, 2, 3, 1),
                "packet_socket": try_call(libc.socket, 17, 3, 0),
            })
        elif u.path == "/fds":
            # Open descriptors until the kernel refuses; the instance goes on serving.
            fds = []
            try:
                while len(fds) < 200000:
                    fds.append(os.open("/dev/null", os.O_RDONLY))
                err = "none"
            except OSError as e:
                err = err_name(e.errno)
            n = len(fds)
            for fd in fds:
                os.close(fd)
            self.reply({"opened": n, "error": err})
        elif u.path == "/hog":
            chunks = []
            for _ in range(int(q.get("mb", "256"))):
                chunks.append(bytearray(b"x" * (1 << 20)))
            self.reply({"allocated_mb": len(chunks)})
        elif u.path == "/bomb":
            bomber = os.fork()
            if bomber == 0:
                bomb(float(q.get("s", "2")))
            time.sleep(0.7)
            try:
                pid = os.fork()
                if pid == 0:
                    os._exit(0)
                os.waitpid(pid, 0)
                fork = "ok"
            except OSError as e:
                fork = err_name(e.errno)
            procs = sum(1 for d in os.listdir("/proc") if d.isdigit())
            # No thread to reap it: starting one needs a free pid too.
            self.reply({"fork": fork, "procs": procs})
            os.waitpid(bomber, 0)
        elif u.path == "/burn":
            t0, c0 = time.monotonic(), time.process_time()
            while time.monotonic() - t0 < float(q.get("s", "1")):
                pass
            self.reply({"cpu": time.process_time() - c0, "wall": time.monotonic() - t0})
        else:
            self.reply({"ok": True})


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
'''


def deploy_probe(flint, name, **spec):
    d = flint.base / "fn" / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "probe.py").write_text(PROBE)
    (d / "name.txt").write_text(name + "\n")  # every function gets code of its own
    doc = {"name": name, "command": [PY, "probe.py"]}
    doc.update(spec)
    (d / "flint.yaml").write_text(json.dumps(doc, indent=2) + "\n")
    flint.cli_ok("deploy", d)
    flint.track()
    r = flint.gw("/function/%s/" % name, timeout=COLD)
    assert r.status_code == 200, (r.status_code, r.text)
    return name


def get(flint, name, path, **kw):
    r = flint.gw("/function/%s%s" % (name, path), timeout=COLD, **kw)
    assert r.status_code == 200, (r.status_code, r.text, flint.log_tail(30))
    return r.json()


def expected_uid(name):
    h = 2166136261
    for b in name.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return 60000 + h % 5000


def test_info_says_what_is_enforced(flint):
    info = flint.api("GET", "/v1/info").json()
    assert "namespaces" in info["sandbox"] and "seccomp" in info["sandbox"], info["sandbox"]
    assert "none:" not in info["sandbox"]
    # The start-up log says it too, in one line.
    assert re.search(r"\[sandbox\] instances run in pid/mount/ipc/uts namespaces .* limits: ",
                     flint.log_path.read_text())


def test_identity_and_process_view(flint):
    deploy_probe(flint, "probe")
    me = get(flint, "probe", "/whoami")
    # The command is PID 2 of its own namespace (the sandbox's init is 1), and no host
    # process is visible.
    assert me["pid"] == 2
    assert me["procs"] == [1, 2], me["procs"]
    assert me["uid"] == me["gid"] == expected_uid("probe")
    assert me["groups"] == [me["gid"]] or me["groups"] == []
    assert me["home"] == "/tmp"
    assert me["hostname"] == "probe"
    st = me["status"]
    assert st["CapEff"] == st["CapPrm"] == st["CapBnd"] == "0000000000000000", st
    assert st["NoNewPrivs"] == "1"
    assert st["Seccomp"] == "2"
    # The filter's two parts, stacked (the init installs the early one before it knows the
    # instance, the late one just before the command; test_seccomp checks what each denies).
    assert st["Seccomp_filters"] == "2", st
    # The instance's process as the host sees it runs as that uid, and flint does not
    # share its cgroups.
    (inst,) = flint.instances("probe")
    with open("/proc/%d/status" % inst["pid"]) as f:
        uids = [l.split()[1:] for l in f if l.startswith("Uid:")][0]
    assert set(uids) == {str(me["uid"])}
    assert os.readlink("/proc/%d/ns/pid" % inst["pid"]) != os.readlink("/proc/self/ns/pid")
    assert os.readlink("/proc/%d/ns/mnt" % inst["pid"]) != os.readlink("/proc/self/ns/mnt")
    with open("/proc/%d/cgroup" % flint.proc.pid) as f:
        cg = f.read()
    assert "/flint/" not in cg, cg


def test_file_system_view(flint):
    deploy_probe(flint, "fsview")
    me = get(flint, "fsview", "/whoami")
    io = lambda path, mode="r": get(flint, "fsview", "/io", params={"path": path, "mode": mode})["result"]
    # Read-only host, writable private /tmp and /dev/shm, working /dev/null.
    assert io("/usr/flint-sandbox-test", "w") in ("EROFS", "EACCES")
    assert io("/etc/flint-sandbox-test", "w") in ("EROFS", "EACCES")
    assert io(os.path.join(me["cwd"], "new-file"), "w") in ("EROFS", "EACCES")
    assert io(os.path.join(me["cwd"], "probe.py")) == "ok"
    assert io("/tmp/scratch", "w") == "ok"
    assert io("/tmp/scratch") == "ok"
    assert io("/dev/shm/scratch", "w") == "ok"
    assert io("/dev/null", "w") == "ok"
    assert io("/etc/os-release") == "ok"
    # The host's /tmp is not this /tmp: a file the test leaves there is not visible.
    marker = "/tmp/flint-sandbox-marker-%d" % os.getpid()
    with open(marker, "w") as f:
        f.write("host")
    try:
        assert io(marker) == "ENOENT"
    finally:
        os.unlink(marker)
    # The data directory: no token, no registry, and of the code only its own.
    assert io(str(flint.data / "token")) in ("ENOENT", "EACCES")
    assert io(str(flint.data / "registry.db")) in ("ENOENT", "EACCES")
    deploy_probe(flint, "neighbour")
    other = get(flint, "neighbour", "/whoami")["cwd"]
    assert other != me["cwd"]
    assert io(os.path.join(other, "probe.py")) in ("ENOENT", "EACCES")
    code = os.path.dirname(me["cwd"])
    assert get(flint, "fsview", "/ls", params={"path": code})["entries"] == [os.path.basename(me["cwd"])]


def test_forbidden_system_calls(flint):
    deploy_probe(flint, "calls")
    r = get(flint, "calls", "/syscalls")
    for name in ("mount", "umount", "ptrace", "unshare", "unshare_ns", "finit_module", "bpf",
                 "keyctl", "setuid0", "raw_socket", "packet_socket"):
        assert r[name] == "EPERM", (name, r)


def test_descriptor_exhaustion_is_contained(flint):
    deploy_probe(flint, "fdhog")
    deploy_probe(flint, "fdother")
    r = get(flint, "fdhog", "/fds")
    # The instance hits its own descriptor limit ...
    assert r["error"] == "EMFILE", r
    # ... and it, flint and other functions keep serving.
    assert get(flint, "fdhog", "/whoami")["uid"] >= 60000
    assert get(flint, "fdother", "/whoami")["uid"] >= 60000
    assert flint.api("GET", "/healthz").status_code == 200


def test_memory_hog_is_killed_and_replaced(flint):
    deploy_probe(flint, "hog", limits={"memory": "64m"})
    deploy_probe(flint, "bystander")
    (first,) = flint.instances("hog")
    r = flint.gw("/function/hog/hog", params={"mb": "512"}, timeout=COLD)
    assert r.status_code in (502, 503), (r.status_code, r.text)

    def killed_by_9():
        return [e for e in flint.function("hog")["events"]
                if re.search(r"i-%d exited unexpectedly with signal 9" % first["id"], e["what"])]
    wait_for(killed_by_9, 10, what="the hog's exit by signal 9 in its events")
    # The daemon is alive and serving; the next request gets a new instance.
    assert flint.proc.poll() is None
    assert get(flint, "bystander", "/whoami")["pid"] == 2
    assert get(flint, "hog", "/whoami")["pid"] == 2
    ids = [i["id"] for i in flint.instances("hog")]
    assert first["id"] not in ids and len(ids) == 1, ids
    # A smaller allocation fits.
    assert get(flint, "hog", "/hog", params={"mb": "16"})["allocated_mb"] == 16


def test_fork_bomb_is_contained(flint):
    deploy_probe(flint, "bomb", limits={"pids": 32})
    deploy_probe(flint, "calm")
    result = {}

    def run_bomb():
        result["r"] = flint.gw("/function/bomb/bomb", params={"s": "2.5"}, timeout=COLD)

    t = threading.Thread(target=run_bomb)
    t.start()
    time.sleep(0.3)
    # While the bomb runs, the daemon and the other functions answer.
    t0 = time.monotonic()
    assert get(flint, "calm", "/whoami")["pid"] == 2
    assert flint.api("GET", "/v1/info").status_code == 200
    assert time.monotonic() - t0 < 5
    t.join(COLD)
    r = result["r"]
    assert r.status_code == 200, (r.status_code, r.text)
    out = r.json()
    assert out["fork"] == "EAGAIN", out
    assert out["procs"] <= 32, out
    # Once the bomb is over the function answers again.
    wait_for(lambda: flint.gw("/function/bomb/whoami", timeout=5).status_code == 200, 20,
             what="the bombed function to answer again")


def test_cpu_limit_holds(flint):
    deploy_probe(flint, "burner", limits={"cpu": 0.2})
    r = get(flint, "burner", "/burn", params={"s": "1"})
    assert r["wall"] >= 1.0
    # 0.2 CPU over one second of wall time: the kernel's CFS quota is 20 ms per 100 ms.
    assert r["cpu"] <= 0.35, r
    assert r["cpu"] > 0.05, r


def test_sandbox_false_runs_a_plain_process(flint):
    deploy_probe(flint, "plain", sandbox=False)
    me = get(flint, "plain", "/whoami")
    (inst,) = flint.instances("plain")
    assert me["pid"] == inst["pid"]
    assert me["uid"] == os.getuid()
    assert flint.function("plain")["spec"]["sandbox"] is False


def instance_cgroups(pid):
    """The v1/v2 cgroup directories of pid that flint made (.../flint/<tag>/i-N)."""
    out = []
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if "/flint/" not in path:
                continue
            if ctrls == "":
                base = "/sys/fs/cgroup/unified" if os.path.isdir("/sys/fs/cgroup/unified") else "/sys/fs/cgroup"
            else:
                base = "/sys/fs/cgroup/" + [c for c in ctrls.split(",") if c in ("memory", "cpu", "pids")][0]
                if not os.path.isdir(base):
                    continue
            out.append(base + path)
    return out


def test_cgroups_of_a_killed_daemon_are_removed_at_next_start(fresh_flint):
    f = fresh_flint
    deploy_probe(f, "limited", limits={"pids": 64, "memory": "128m"}, scale={"min": 1})
    (inst,) = f.instances("limited")
    groups = instance_cgroups(inst["pid"])
    assert groups, "the instance is in no flint cgroup"
    for g in groups:
        assert os.path.isdir(g)
        with open(os.path.join(g, "cgroup.procs")) as fp:
            assert str(inst["pid"]) in fp.read().split()
    # Everything at once, as a power cut would: daemon and spawner get SIGKILL, so
    # nobody is left to remove the groups.
    procs = [f.proc.pid] + [p for p, _ in __import__("conftest").descendants(f.proc.pid)
                            if open("/proc/%d/comm" % p).read().strip() == "flint-spawner"]
    f.track()
    for p in procs:
        os.kill(p, 9)
    f.proc.wait(10)
    wait_for(lambda: all(not os.path.exists("/proc/%d" % p) or
                         open("/proc/%d/stat" % p).read().split(") ")[1][0] == "Z" for p in procs),
             10, what="the daemon and the spawner to die")
    # The groups outlive them, empty.
    assert all(os.path.isdir(g) for g in groups)
    f.start()
    assert re.search(r"removed \d+ instance cgroups left by an earlier run", f.log_path.read_text()), \
        f.log_tail(20)
    # min 1 brings a fresh instance; its groups hold it alone (new instance ids start
    # at 1 again, so the paths may be the same as before).
    (inst2,) = wait_for(lambda: [i for i in f.instances("limited") if i["state"] == "ready"], 20,
                        what="a new instance")
    for g in instance_cgroups(inst2["pid"]):
        with open(os.path.join(g, "cgroup.procs")) as fp:
            pids = fp.read().split()
        assert str(inst["pid"]) not in pids and str(inst2["pid"]) in pids, (g, pids)


def test_closed_parent_directory(tmp_path):
    """A checkout (and data directory) under a directory closed to others, as
    /root is: the function still reaches its code, and still cannot see the
    data directory."""
    import shutil
    import tempfile

    from conftest import Flint

    closed = tempfile.mkdtemp(prefix="flint-closed-", dir="/var/tmp")  # mode 0700
    assert os.stat(closed).st_mode & 0o777 == 0o700
    f = Flint(os.path.join(closed, "f"))
    try:
        f.start()
        deploy_probe(f, "closedp")
        me = get(f, "closedp", "/whoami")
        assert me["uid"] >= 60000 and me["cwd"].startswith(closed)
        r = get(f, "closedp", "/io", params={"path": str(f.data / "token"), "mode": "r"})
        assert r["result"] in ("ENOENT", "EACCES"), r
        # A command-only function whose workdir lies there runs too.
        app = os.path.join(closed, "app")
        os.mkdir(app)
        with open(os.path.join(app, "probe.py"), "w") as fh:
            fh.write(PROBE)
        f.cli_ok("deploy", "--name", "closedcmd", "--workdir", app, "--", PY, "probe.py")
        f.track()
        assert get(f, "closedcmd", "/whoami")["cwd"] == app
    finally:
        f.close()
        shutil.rmtree(closed, ignore_errors=True)
