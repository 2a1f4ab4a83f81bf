"""test_72_warm_pool.py -- sandboxes built ahead of need (`flint serve --warm-pool N`).

Instances that start from a warm sandbox must be exactly as isolated as those built from
scratch: the probe of test_70_sandbox asks the kernel from inside both kinds. The pool's
own behaviour is checked from outside: its inits are processes named flint-warm below the
daemon, instances say whether they came from it ("warm"), and a start that cannot use
one (a root file system of its own, a pool of 0) is built from scratch.
"""
import os
import signal
import subprocess

import pytest

from conftest import FLINT, Flint, descendants, wait_for
from test_70_sandbox import COLD, deploy_probe, expected_uid, get


def warm_inits(f):
    """pids of the daemon's warm sandboxes (inits waiting for an instance)."""
    out = []
    for pid, _ in descendants(f.proc.pid):
        try:
            with open("/proc/%d/comm" % pid) as c:
                if c.read().strip() == "flint-warm":
                    out.append(pid)
        except OSError:
            pass
    return out


def ready(f, name):
    return [i for i in f.instances(name) if i["state"] == "ready"]


@pytest.fixture(scope="module")
def nopool(tmp_path_factory):
    f = Flint(tmp_path_factory.mktemp("nopool"), extra_args=["--warm-pool", "0"]).start()
    yield f
    f.close()


def isolation_view(f, name):
    """What the probe sees of itself: identity, processes, file system."""
    me = get(f, name, "/whoami")
    token = get(f, name, "/io", params={"path": str(f.data / "token"), "mode": "r"})
    etc = get(f, name, "/io", params={"path": "/etc/flint-probe", "mode": "w"})
    return me, token["result"], etc["result"]


def test_warm_and_cold_starts_are_isolated_alike(flint, nopool):
    deploy_probe(flint, "warmp")
    deploy_probe(nopool, "coldp")
    assert [i["warm"] for i in ready(flint, "warmp")] == [True]
    assert [i["warm"] for i in ready(nopool, "coldp")] == [False]
    wme, wtok, wetc = isolation_view(flint, "warmp")
    cme, ctok, cetc = isolation_view(nopool, "coldp")
    assert wme["uid"] == expected_uid("warmp") and cme["uid"] == expected_uid("coldp")
    # Alone in its PID namespace: the init (1) and the command (2).
    assert wme["pid"] == cme["pid"] == 2, (wme, cme)
    assert wme["hostname"] == "warmp" and cme["hostname"] == "coldp"
    assert wtok == ctok and wtok in ("ENOENT", "EACCES"), (wtok, ctok)
    assert wetc == cetc == "EROFS"
    assert not warm_inits(nopool)


def test_pool_refills_and_grows_with_the_start_rate(flint):
    wait_for(lambda: warm_inits(flint), 10, what="a warm sandbox")
    before = len(warm_inits(flint))
    assert 1 <= before <= 8
    # Twelve instances at once: more starts in a second than the pool holds.
    deploy_probe(flint, "many", scale={"min": 12, "max": 12})
    wait_for(lambda: len(ready(flint, "many")) == 12, COLD, what="12 ready instances")
    assert sum(i["warm"] for i in ready(flint, "many")) >= 1
    # It grows to a second's worth of starts, bounded by --warm-pool (8).
    grown = wait_for(lambda: (lambda n: n if n > before else 0)(len(warm_inits(flint))), 10,
                     what="the pool to grow")
    assert grown <= 8


def test_killed_warm_sandbox_is_replaced(flint):
    # More kills than the build failures that would stop the pool: a sandbox killed
    # while it waits is not a failed build, and is simply replaced each time.
    for _ in range(4):
        pids = wait_for(lambda: warm_inits(flint), 10, what="a warm sandbox")
        os.kill(pids[0], signal.SIGKILL)
        wait_for(lambda: pids[0] not in warm_inits(flint) and warm_inits(flint), 10,
                 what="a new warm sandbox")
    deploy_probe(flint, "afterkill")
    assert ready(flint, "afterkill")[0]["warm"] is True
    log = flint.log_path.read_text()
    assert "a warm sandbox ended while it waited" in log
    assert "starts are built from scratch" not in log


# ---- the Python zygote: the template's runtime in a pre-imported interpreter ----

WHOAMI = r'''
import os, socket


def status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"):
                out[k] = v.strip()
    return out


def handle(req):
    try:
        open(req.query.get("token", "/nonexistent")).read()
        token = "readable"
    except OSError as e:
        token = e.errno
    return {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
            "pid": os.getpid(), "pgid": os.getpgid(0), "hostname": socket.gethostname(),
            "cwd": os.getcwd(), "port": os.environ.get("PORT"), "home": os.environ.get("HOME"),
            "status": status(), "token": token,
            "interfaces": sorted(n for _, n in socket.if_nameindex())}
'''


def python_function(f, name, **extra):
    d = f.base / "fn" / name
    r = subprocess.run([str(FLINT), "new", name, "-l", "python", "--dir", str(f.base / "fn")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    (d / "handler.py").write_text(WHOAMI)
    if extra:
        with open(d / "flint.yaml", "a") as y:
            for k, v in extra.items():
                y.write("%s: %s\n" % (k, v))
    f.cli_ok("deploy", d)
    f.track()
    return name


def whoami(f, name):
    r = f.gw("/function/%s/" % name, params={"token": str(f.data / "token")}, timeout=COLD)
    assert r.status_code == 200, (r.status_code, r.text, f.log_tail(20))
    return r.json()


def test_python_zygote_runs_the_template_as_sandboxed_as_a_command(flint, nopool):
    # Once a Python start was seen, the pool keeps a zygote: the second function gets it.
    python_function(flint, "pyfirst")
    whoami(flint, "pyfirst")
    wait_for(lambda: any(open("/proc/%d/cmdline" % c).read().startswith("python3\0-I")
                         for p in warm_inits(flint) for c, _ in descendants(p)), 30,
             what="a Python zygote in the pool")
    python_function(flint, "pyzyg")
    z = whoami(flint, "pyzyg")
    assert [i["zygote"] for i in ready(flint, "pyzyg")] == [True]
    python_function(nopool, "pycold")
    c = whoami(nopool, "pycold")
    assert [i["zygote"] for i in ready(nopool, "pycold")] == [False]
    # The same identity, view and privileges as the command started from scratch.
    assert z["uid"] == z["gid"] == expected_uid("pyzyg") and z["groups"] == []
    assert c["uid"] == expected_uid("pycold")
    assert z["pid"] == c["pid"] == 2 and z["pgid"] == 2, (z, c)
    assert z["hostname"] == "pyzyg"
    assert z["token"] == c["token"] and z["token"] in (2, 13), (z, c)  # ENOENT / EACCES
    assert z["status"] == c["status"], (z["status"], c["status"])
    assert z["status"]["CapEff"] == z["status"]["CapBnd"] == "0000000000000000"
    assert z["status"]["NoNewPrivs"] == "1" and z["status"]["Seccomp"] == "2"
    assert z["home"] == "/tmp" and z["port"] == str(ready(flint, "pyzyg")[0]["port"])
    # Its uploaded code, bound at its own path (under the otherwise hidden data directory).
    assert z["cwd"].startswith(str(flint.data / "code") + "/"), z["cwd"]
    assert c["cwd"].startswith(str(nopool.data / "code") + "/"), c["cwd"]
    # SIGTERM reaches it: removing the function ends its instance promptly.
    pid = ready(flint, "pyzyg")[0]["pid"]
    flint.api("DELETE", "/v1/functions/pyzyg")
    wait_for(lambda: not os.path.exists("/proc/%d" % pid), 5, what="the zygote's instance to end")


def test_python_zygote_runs_the_functions_own_runtime(flint):
    # A zygote compiles the template's flint_runtime.py while it waits; a function that
    # changed its copy runs its own, and one that did not runs the template's, as __main__.
    for name, edit in (("pyown", True), ("pystock", False)):
        d = flint.base / "fn" / name
        r = subprocess.run([str(FLINT), "new", name, "-l", "python", "--dir",
                            str(flint.base / "fn")], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        if edit:
            rt = (d / "flint_runtime.py").read_text()
            (d / "flint_runtime.py").write_text(rt.replace("import json\n",
                                                           "import json\nEDITED = 'yes'\n", 1))
        (d / "handler.py").write_text(
            "import sys\n"
            "def handle(req):\n"
            "    m = sys.modules['__main__']\n"
            "    return {'edited': getattr(m, 'EDITED', None), 'file': m.__file__,\n"
            "            'same': sys.modules['flint_runtime'] is m}\n")
        flint.cli_ok("deploy", d)
        flint.track()
        wait_for(lambda: any(open("/proc/%d/cmdline" % c).read().startswith("python3\0-I")
                             for p in warm_inits(flint) for c, _ in descendants(p)), 30,
                 what="a Python zygote in the pool")
        r = flint.gw("/function/%s/" % name, timeout=COLD)
        assert r.status_code == 200, (r.status_code, r.text, flint.log_tail(20))
        assert r.json() == {"edited": "yes" if edit else None, "file": "flint_runtime.py",
                            "same": True}, (name, r.json())
        assert [i["zygote"] for i in ready(flint, name)] == [True], name


def test_python_zygote_joins_an_isolated_network(flint):
    python_function(flint, "pynet", network="isolated")
    me = whoami(flint, "pynet")
    assert me["interfaces"] == ["lo"], me


def test_cold_start_phases_and_warm_starts_are_reported(flint):
    deploy_probe(flint, "phased")
    inst = ready(flint, "phased")[0]
    ph = inst["cold_start_phases_ms"]
    assert set(ph) == {"queue", "spawn", "ready"} and all(v >= 0 for v in ph.values()), ph
    # The phases make up the whole start (the rest is event delivery, well under 1 ms).
    assert abs(sum(ph.values()) - inst["cold_start_ms"]) < 1.0, (ph, inst["cold_start_ms"])
    text = flint.gw("/metrics").text
    lines = {l.rsplit(" ", 1)[0]: float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
             if l and not l.startswith("#")}
    starts = lines['flint_cold_starts_total{function="phased"}']
    for phase in ("queue", "spawn", "ready"):
        key = 'flint_cold_start_phase_seconds_count{function="phased",phase="%s"}' % phase
        assert lines[key] == starts, (key, lines.get(key), starts)
    assert lines['flint_warm_starts_total{function="phased",kind="sandbox"}'] == starts


def test_warm_sandbox_holds_only_its_own_descriptors(flint):
    """A waiting init keeps its pipes, its socket and the spawner's pidfd, nothing of the
    spawner's (the socket to the daemon, other instances' pipes, other warm sandboxes')."""
    pids = wait_for(lambda: warm_inits(flint), 10, what="a warm sandbox")
    for pid in pids:
        kinds = {}
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue  # closed meanwhile
            kind = target.split(":")[0] if ":" in target else "file"
            kinds[kind] = kinds.get(kind, 0) + 1
        # Its own socketpair end only; pipes: exec report, stdout, stderr, status (and a
        # Python zygote's instance pipe); stdin/stdout/stderr of the spawner (files).
        assert kinds.get("socket", 0) == 1, (pid, kinds)
        assert kinds.get("pipe", 0) <= 5, (pid, kinds)
        assert set(kinds) <= {"socket", "pipe", "anon_inode", "file"}, (pid, kinds)


def test_python_zygote_honours_pythonpath_and_steps_aside_for_startup_settings(flint):
    # PYTHONPATH is applied to sys.path; a setting only the interpreter's start reads
    # (PYTHONHASHSEED) makes the start a plain one, which honours it.
    for name, var, zyg in (("pypath", "PYTHONPATH: lib", True),
                           ("pyseed", 'PYTHONHASHSEED: "0"', False)):
        d = flint.base / "fn" / name
        r = subprocess.run([str(FLINT), "new", name, "-l", "python", "--dir",
                            str(flint.base / "fn")], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        (d / "lib").mkdir()
        (d / "lib" / "vendored.py").write_text("VALUE = 'from lib'\n")
        (d / "handler.py").write_text(
            "import os, sys\n"
            "def handle(req):\n"
            "    import vendored\n"
            "    return {'vendored': vendored.VALUE, 'hash': hash('x') == hash('x'),\n"
            "            'seed': os.environ.get('PYTHONHASHSEED'),\n"
            "            'flags_seed': sys.flags.hash_randomization}\n")
        y = (d / "flint.yaml").read_text().replace("env:\n", "env:\n  %s\n  PYTHONPATH: lib\n"
                                                   % var if "HASH" in var else "env:\n  %s\n"
                                                   % var, 1)
        (d / "flint.yaml").write_text(y)
        flint.cli_ok("deploy", d)
        flint.track()
        r = flint.gw("/function/%s/" % name, timeout=COLD)
        assert r.status_code == 200, (r.status_code, r.text, flint.log_tail(20))
        assert r.json()["vendored"] == "from lib", r.json()
        assert [i["zygote"] for i in ready(flint, name)] == [zyg], name
        if not zyg:
            assert r.json()["flags_seed"] == 0, r.json()  # PYTHONHASHSEED=0 took effect
