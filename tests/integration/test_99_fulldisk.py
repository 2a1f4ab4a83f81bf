"""test_99_fulldisk.py -- a full disk under the data directory: deploys and async
enqueues fail with a clear error, nothing is corrupted, functions already running
keep serving, and everything works again once there is room."""
import subprocess

import pytest

from conftest import Flint, wait_for

COLD = 30


@pytest.fixture
def small_flint(tmp_path):
    f = Flint(tmp_path / "f")
    # The data directory on a small file system of its own (we run as root).
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(f.data)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail("cannot mount a tmpfs for the data directory: %s" % r.stderr)
    f.start()
    try:
        yield f
    finally:
        f.close()
        subprocess.run(["umount", "-l", str(f.data)], capture_output=True)


def fill(path):
    """Writes until the file system is full."""
    subprocess.run(["dd", "if=/dev/zero", "of=%s" % path, "bs=64k"], capture_output=True)


def test_full_disk(small_flint):
    f = small_flint
    f.deploy_app("alive", scale={"min": 1, "idle_timeout": "60s"})
    wait_for(lambda: f.gw("/function/alive/echo").status_code == 200, COLD,
             what="the first function to answer")
    filler = f.data / "filler"
    fill(filler)

    # A deploy that needs to store code fails with one clear sentence.
    d = f.base / "fn" / "big"
    d.mkdir(parents=True)
    (d / "payload.bin").write_bytes(b"\xa5" * (2 << 20))
    (d / "app.py").write_text(open(__file__.replace("test_99_fulldisk.py", "apps/testapp.py")).read())
    (d / "flint.yaml").write_text('{"name": "big", "command": ["/usr/bin/python3", "app.py"]}\n')
    r = f.cli("deploy", d)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "space" in r.stderr.lower(), r.stderr

    # An async enqueue is refused rather than acknowledged without being durable.
    r = f.gw("/async-function/alive/echo", method="POST", data=b"{}")
    assert r.status_code >= 500 and r.status_code != 202, (r.status_code, r.text)
    assert r.json()["error"]

    # What already runs keeps serving.
    for _ in range(20):
        assert f.gw("/function/alive/echo").status_code == 200

    # Room again: nothing was corrupted and both work.
    filler.unlink()
    r = f.cli("deploy", d)
    assert r.returncode == 0, r.stderr
    names = sorted(x["name"] for x in f.cli_json("ls", "-o", "json")["functions"])
    assert names == ["alive", "big"]
    r = f.gw("/async-function/alive/echo", method="POST", data=b"{}")
    assert r.status_code == 202, r.text
    rid = r.json()["id"]
    wait_for(lambda: f.gw("/requests/" + rid).json()["status"] == "succeeded", COLD,
             what="the async request to succeed")
    check = subprocess.run(["sqlite3", str(f.data / "flint.db"), "PRAGMA integrity_check"],
                           capture_output=True, text=True)
    assert check.stdout.strip() == "ok", check.stdout + check.stderr
