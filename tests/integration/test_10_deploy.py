"""test_10_deploy.py -- deploying the examples and command functions; specs; ls/describe/rm."""
import os

from conftest import APPS, PY, ROOT, proc_start_time, wait_for

COLD = 60  # seconds a first request may take: it may include a build and a cold start


def test_deploy_hello_c(flint):
    flint.cli_ok("deploy", ROOT / "examples" / "hello-c")
    r = flint.gw("/function/hello-c/", timeout=COLD)
    assert r.status_code == 200, r.text
    assert r.content == b"hello from C\n"
    assert r.headers["Content-Length"] == "13"

    r = flint.gw("/function/hello-c/healthz")
    assert (r.status_code, r.content) == (200, b"ok")

    # POST bodies of the benchmark sizes, with Content-Length and chunked.
    for size in (1024, 65536):
        body = bytes(i % 251 for i in range(size))
        r = flint.gw("/function/hello-c/post", method="POST", data=body)
        assert (r.status_code, r.content) == (200, b"hello from C\n")
        r = flint.gw("/function/hello-c/post", method="POST", data=iter([body[:100], body[100:]]))
        assert (r.status_code, r.content) == (200, b"hello from C\n")

    d = flint.function("hello-c")
    assert d["spec"]["build"] == "cc -O2 -o hello hello.c"
    assert d["spec"]["command"] == ["./hello"]
    assert d["spec"]["scale"]["max"] == 4
    assert d["spec"]["scale"]["idle_timeout"] == "30s"
    assert d["spec"]["code"].startswith("sha256:")


def test_deploy_flask_app(flint):
    flint.cli_ok("deploy", ROOT / "examples" / "flask-app")
    r = flint.gw("/function/flask-app/", timeout=COLD)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == {"message": "hello from Flask", "app": "flask-app"}

    r = flint.gw("/function/flask-app/users/1?q=2&x=a%20b")
    assert r.status_code == 200
    assert r.json() == {"id": "1", "args": {"q": "2", "x": "a b"}}

    body = b'{"any": "bytes", "n": 1}'
    r = flint.gw("/function/flask-app/echo", method="POST", data=body,
                 headers={"Content-Type": "application/json"})
    assert (r.status_code, r.content) == (200, body)

    r = flint.gw("/function/flask-app/nope")
    assert r.status_code == 404  # the app's own 404, passed through


def test_deploy_static(flint):
    flint.cli_ok("deploy", ROOT / "examples" / "static")
    index = (ROOT / "examples" / "static" / "public" / "index.html").read_bytes()
    r = flint.gw("/function/static/", timeout=COLD)
    assert r.status_code == 200, r.text
    assert r.content == index
    assert r.headers["Content-Type"].startswith("text/html")
    r = flint.gw("/function/static/robots.txt")
    assert r.status_code == 200
    assert r.content == (ROOT / "examples" / "static" / "public" / "robots.txt").read_bytes()


def test_deploy_command_form(flint):
    r = flint.cli_ok("deploy", "--name", "cmdfn", "--", PY, APPS / "testapp.py")
    assert "cmdfn" in r.stdout + r.stderr
    r = flint.gw("/function/cmdfn/", timeout=COLD)
    assert (r.status_code, r.content) == (200, b"testapp\n")
    d = flint.function("cmdfn")
    assert d["spec"]["command"] == [PY, str(APPS / "testapp.py")]
    assert d["protocol"] == "http"


def test_redeploy_makes_a_new_version(flint):
    flint.deploy_app("ver", env={"A": "1"})
    assert flint.function("ver")["version"] == 1
    r = flint.gw("/function/ver/echo", timeout=COLD)
    assert r.status_code == 200
    flint.deploy_app("ver", env={"A": "2"})
    d = flint.function("ver")
    assert d["version"] == 2
    assert d["spec"]["env"] == {"A": "2"}
    r = flint.gw("/function/ver/echo", timeout=COLD)
    assert r.status_code == 200


def test_api_put_created_then_updated(flint, tmp_path):
    # The sandbox gives instances a private /tmp: a command-only function sees the
    # host's files through its workdir (bound back in), wherever the checkout is.
    spec = {"command": [PY, "testapp.py"], "workdir": str(APPS), "scale": {"max": 2}}
    r = flint.api("PUT", "/v1/functions/viaapi", json=spec)
    assert r.status_code == 201, r.text
    assert r.json() == {"name": "viaapi", "version": 1, "created": True}
    r = flint.api("PUT", "/v1/functions/viaapi", json=spec)
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "viaapi", "version": 2, "created": False}
    r = flint.api("PUT", "/v1/functions/viaapi", json=dict(spec, name="other"))
    assert r.status_code == 400
    assert "name" in r.json()["error"]
    r = flint.gw("/function/viaapi/", timeout=COLD)
    assert (r.status_code, r.content) == (200, b"testapp\n")


def test_bad_spec_refused_with_field_named(flint, tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "flint.yaml").write_text("name: bad\ncommand: [\"true\"]\nscale:\n  max: -1\n")
    r = flint.cli("deploy", d)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "scale.max" in r.stderr
    assert flint.api("GET", "/v1/functions/bad").status_code == 404

    r = flint.api("PUT", "/v1/functions/bad", json={"command": ["true"], "scale": {"max": -1}})
    assert r.status_code == 400
    assert r.headers["Content-Type"].startswith("application/json")
    assert "scale.max" in r.json()["error"]

    r = flint.api("PUT", "/v1/functions/bad", json={"command": ["true"], "scael": {}})
    assert r.status_code == 400
    assert "scael" in r.json()["error"]

    r = flint.api("PUT", "/v1/functions/Bad_Name", json={"command": ["true"]})
    assert r.status_code == 400
    assert "name" in r.json()["error"]


def test_ls_and_describe_json(flint):
    flint.deploy_app("listed", scale={"min": 0, "max": 3, "concurrency": 5})
    ls = flint.cli_json("ls", "-o", "json")
    names = [f["name"] for f in ls["functions"]]
    assert names == sorted(names)
    (s,) = [f for f in ls["functions"] if f["name"] == "listed"]
    assert s["version"] == 1
    assert s["protocol"] == "http"
    assert (s["min"], s["max"], s["concurrency"]) == (0, 3, 5)
    assert s["state"] == "idle"
    assert s["instances"] == {"starting": 0, "ready": 0, "draining": 0}

    d = flint.cli_json("describe", "listed", "-o", "json")
    assert d["name"] == "listed"
    assert d["spec"]["name"] == "listed"
    assert d["spec"]["scale"] == {"min": 0, "max": 3, "concurrency": 5, "target": 5,
                                  "idle_timeout": "1m", "reserved": 0}
    assert d["spec"]["limits"]["timeout"] == "1m"
    assert d["spec"]["limits"]["max_body"] == 64 * 1024 * 1024
    assert d["spec"]["queue"]["max"] == 1000
    assert isinstance(d["created_ms"], int) and d["created_ms"] > 0
    api = flint.function("listed")
    assert set(d) == set(api)
    assert d["spec"] == api["spec"]

    text = flint.cli_ok("ls").stdout
    assert "listed" in text
    text = flint.cli_ok("describe", "listed").stdout
    assert "listed" in text and "idle" in text

    r = flint.cli("describe", "nosuchfn")
    assert r.returncode == 1
    assert "nosuchfn" in r.stderr


def test_rm(flint):
    flint.deploy_app("gone")
    r = flint.gw("/function/gone/", timeout=COLD)
    assert r.status_code == 200
    pids = [i["pid"] for i in flint.instances("gone")]
    assert len(pids) == 1
    flint.cli_ok("rm", "gone")
    assert flint.api("GET", "/v1/functions/gone").status_code == 404
    r = flint.gw("/function/gone/")
    assert r.status_code == 404
    assert r.json()["error"]
    wait_for(lambda: all(proc_start_time(p) is None for p in pids), 10,
             what="the instances of a removed function to stop")
    r = flint.cli("rm", "gone")
    assert r.returncode == 1
    assert "gone" in r.stderr


def test_info(flint):
    r = flint.api("GET", "/v1/info")
    assert r.status_code == 200
    info = r.json()
    assert info["pid"] == flint.proc.pid
    assert info["threads"] == 2
    assert info["gateway"] == flint.gateway
    assert info["admin"] == flint.admin
    assert os.path.realpath(info["data_dir"]) == os.path.realpath(flint.data)
