"""flint top (one view when not on a terminal), flint logs --since, and the deploy upload
progress line."""
import os
import shutil
import time

from conftest import APPS, PY, wait_for


def test_top_once(flint):
    flint.deploy_app("topfn", app="secretapp.py", scale={"min": 1})
    wait_for(lambda: flint.gw("/function/topfn/whoami").status_code == 200, 20, what="topfn")
    for _ in range(5):
        assert flint.gw("/function/topfn/nothing").status_code == 404
    r = flint.cli_ok("top")
    lines = r.stdout.splitlines()
    assert lines[0].startswith("flint top - ")
    head = lines[2].split()
    assert head == ["NAME", "STATE", "READY", "START", "DRAIN", "REQ/S", "P99", "COLD", "5XX", "HELD"]
    row = next(l.split() for l in lines[3:] if l.startswith("topfn "))
    assert row[1] == "ready" and row[2] == "1"
    assert int(row[7]) >= 1  # cold starts
    j = flint.api("GET", "/v1/functions").json()["functions"]
    f = next(x for x in j if x["name"] == "topfn")
    assert len(f["latency"]["counts"]) == len(f["latency"]["le"]) + 1
    assert sum(f["latency"]["counts"]) == f["requests"]


def test_logs_since(flint):
    flint.deploy_app("sincefn", app="secretapp.py", scale={"min": 1})
    wait_for(lambda: flint.gw("/function/sincefn/whoami").status_code == 200, 20, what="sincefn")
    wait_for(lambda: "request /whoami" in flint.cli_ok("logs", "sincefn").stdout, 10, what="a log line")
    assert "request /whoami" in flint.cli_ok("logs", "sincefn", "--since", "10m").stdout
    time.sleep(1.5)  # the lines so far must become older than the window below
    assert flint.cli_ok("logs", "sincefn", "--since", "1s").stdout == ""
    assert flint.gw("/function/sincefn/environ").status_code == 200
    wait_for(lambda: "request /environ" in flint.cli_ok("logs", "sincefn", "--since", "1s").stdout,
             10, what="the new line within --since 1s")
    out = flint.cli_ok("logs", "sincefn", "--since", "1s").stdout
    assert "request /whoami" not in out
    r = flint.cli("logs", "sincefn", "--since", "soon")
    assert r.returncode == 2 and "--since" in r.stderr


def test_upload_progress_not_a_tty(flint, tmp_path):
    d = tmp_path / "big"
    d.mkdir()
    shutil.copy(APPS / "secretapp.py", d / "secretapp.py")
    (d / "blob.bin").write_bytes(os.urandom(3 << 20))
    (d / "flint.yaml").write_text('{"name": "bigfn", "command": ["%s", "secretapp.py"]}\n' % PY)
    r = flint.cli_ok("deploy", d)
    # Not a terminal: no redrawn line, one final line.
    assert "\r" not in r.stderr
    assert "uploaded code: 3.0 MiB" in r.stderr, r.stderr
    r = flint.cli_ok("deploy", d)  # unchanged: nothing uploaded, nothing said
    assert "uploaded code" not in r.stderr


def test_top_on_a_terminal_quits_on_q(flint):
    import pty
    import select
    import subprocess

    master, slave = pty.openpty()
    env = flint.env()
    p = subprocess.Popen([str(flint_bin()), "top", "--admin", flint.admin], stdin=slave,
                         stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 10
    while seen.count(b"flint top - ") < 2 and time.monotonic() < deadline:
        if select.select([master], [], [], 0.5)[0]:
            seen += os.read(master, 65536)
    assert seen.count(b"flint top - ") >= 2, seen  # redrawn every second
    assert b"\x1b[2J" in seen
    os.write(master, b"q")
    assert p.wait(10) == 0
    os.close(master)


def flint_bin():
    from conftest import FLINT
    return FLINT
