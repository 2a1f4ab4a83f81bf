"""test_95_templates.py -- `flint new` for every language template, deployed and called.

Each template's function framework runs for real in the daemon's sandbox: the generated
function answers its greeting; a handler changed to echo the request sees the method,
path, query, headers and JSON body; a handler that fails answers 500 with its error in
`flint logs` while the same instance (same pid) goes on serving.
"""
import json
import subprocess
import threading
import time

import pytest

from conftest import FLINT, ROOT, wait_for

LANGS = ["python", "node", "c", "sh"]

# Handlers that echo the request as JSON, and fail on /fail with a message that names
# the language, so that the logs can be searched for it.
ECHO = {
    "python": ("handler.py", r'''
import threading, time

barrier = threading.Barrier(2, timeout=10)


def handle(req):
    if req.path == "/fail":
        raise RuntimeError("boom-python " + req.path)
    if req.path == "/sleep":
        time.sleep(1)
        return "slept"
    if req.path == "/barrier":
        # Returns only once two requests are in handle() at the same time.
        return {"waited": barrier.wait()}
    return {"method": req.method, "path": req.path, "query": req.query,
            "ct": req.headers.get("content-type"), "got": req.json()}
'''),
    "node": ("handler.js", r'''
'use strict';
module.exports = async (req) => {
	if (req.path === '/fail')
		throw new Error('boom-node ' + req.path);
	return { method: req.method, path: req.path, query: req.query,
		ct: req.headers['content-type'], got: req.json() };
};
'''),
    "c": ("handler.c", r'''
#include <string.h>
#include "flint.h"

int handle(const struct fl_req *req, struct fl_resp *resp)
{
	const char *ct = fl_req_header(req, "Content-Type");
	char x[64];

	if (strcmp(req->path, "/fail") == 0)
		return fl_fail(resp, "boom-c %s", req->path);
	fl_resp_header(resp, "Content-Type", "application/json");
	fl_resp_printf(resp, "{\"method\": ");
	fl_resp_json_str(resp, req->method);
	fl_resp_printf(resp, ", \"path\": ");
	fl_resp_json_str(resp, req->path);
	fl_resp_printf(resp, ", \"query\": ");
	fl_resp_json_str(resp, req->query);
	fl_resp_printf(resp, ", \"ct\": ");
	fl_resp_json_str(resp, ct ? ct : "");
	fl_resp_printf(resp, ", \"x\": ");
	fl_resp_json_str(resp, fl_json_string(req->body, req->body_len, "x", x, sizeof(x)) >= 0 ? x : "");
	fl_resp_printf(resp, ", \"got\": %s}", req->body);
	return 0;
}
'''),
    "sh": ("handler.sh", r'''#!/bin/sh
set -eu
if [ "$REQUEST_PATH" = /fail ]; then
	echo "boom-sh $REQUEST_PATH" >&2
	exit 3
fi
echo "Status: 201" >> "$RESPONSE_HEADERS"
printf '{"method": "%s", "path": "%s", "query": "%s", "ct": "%s", "got": %s}\n' \
	"$METHOD" "$REQUEST_PATH" "$QUERY" "${HEADER_CONTENT_TYPE:-}" "$(cat)"
'''),
}


def run_new(*args):
    """Runs bin/flint new ARGS (no daemon needed); returns the CompletedProcess."""
    return subprocess.run([str(FLINT), "new"] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=30, cwd=str(ROOT))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("functions")


def create(workdir, name, lang):
    r = run_new(name, "-l", lang, "--dir", workdir)
    assert r.returncode == 0, "flint new %s -l %s failed: %s" % (name, lang, r.stderr)
    d = workdir / name
    assert (d / "flint.yaml").is_file() and (d / "README.md").is_file()
    assert (d / ".flintignore").is_file()
    assert "{{NAME}}" not in (d / "flint.yaml").read_text()
    return d


def ready_pids(flint, name):
    return sorted(i["pid"] for i in flint.instances(name) if i["state"] == "ready")


@pytest.mark.parametrize("lang", LANGS)
def test_new_deploy_invoke_greets(flint, workdir, lang):
    name = "hello-" + lang
    d = create(workdir, name, lang)
    spec = (d / "flint.yaml").read_text()
    assert "name: %s\n" % name in spec and "/healthz" in spec
    flint.cli_ok("deploy", d)
    flint.track()
    out = flint.cli_ok("invoke", name).stdout
    assert "hello from %s" % name in out
    if lang in ("python", "node"):
        assert json.loads(out) == {"message": "hello from %s" % name}


@pytest.mark.parametrize("lang", LANGS)
def test_handler_echoes_and_survives_failure(flint, workdir, lang):
    name = "echo-" + lang
    d = create(workdir, name, lang)
    fname, code = ECHO[lang]
    (d / fname).write_text(code.lstrip("\n"))
    flint.cli_ok("deploy", d)
    flint.track()

    r = flint.gw("/function/%s/items/7?a=1" % name, method="POST", json={"x": "y", "n": [1, 2]})
    assert r.status_code == (201 if lang == "sh" else 200), r.text
    assert r.headers["Content-Type"].startswith("application/json")
    j = r.json()
    assert (j["method"], j["path"], j["ct"]) == ("POST", "/items/7", "application/json")
    assert j["got"] == {"x": "y", "n": [1, 2]}
    assert j["query"] == ({"a": "1"} if lang in ("python", "node") else "a=1")
    if lang == "c":
        assert j["x"] == "y"

    pids = ready_pids(flint, name)
    assert len(pids) == 1, flint.instances(name)
    r = flint.gw("/function/%s/fail" % name)
    assert r.status_code == 500
    assert "boom-%s" % lang in r.json()["error"]

    def logged():
        return "boom-%s /fail" % lang in flint.cli_ok("logs", name).stdout
    wait_for(logged, 10, what="the handler's error in flint logs")

    r = flint.gw("/function/%s/again" % name, method="POST", json={"x": "z"})
    assert r.status_code in (200, 201) and r.json()["got"] == {"x": "z"}
    assert ready_pids(flint, name) == pids, "the instance was replaced after a failure"


def test_python_serves_requests_concurrently(flint, workdir):
    name = "conc-python"
    d = create(workdir, name, "python")
    fname, code = ECHO["python"]
    (d / fname).write_text(code.lstrip("\n"))
    # One instance only: concurrency has to come from the framework itself.
    spec = (d / "flint.yaml").read_text().replace("max: 10", "max: 1")
    (d / "flint.yaml").write_text(spec)
    flint.cli_ok("deploy", d)
    flint.track()
    assert flint.gw("/function/%s/warm" % name, method="POST", json={}).status_code == 200

    results = {}

    def call(path, key):
        results[key] = flint.gw("/function/%s%s" % (name, path), timeout=30)

    # Each /barrier request waits until the other one is inside the handler too: this
    # only completes when both are served at once.
    ts = [threading.Thread(target=call, args=("/barrier", i)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert [results[i].status_code for i in range(2)] == [200, 200], \
        [results[i].text for i in range(2)]
    assert sorted(results[i].json()["waited"] for i in range(2)) == [0, 1]

    t0 = time.monotonic()
    ts = [threading.Thread(target=call, args=("/sleep", i)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.monotonic() - t0
    assert [results[i].text for i in range(2)] == ["slept", "slept"]
    assert elapsed < 2.0, "two 1 s requests took %.2fs: served one after the other" % elapsed
    assert len(ready_pids(flint, name)) == 1


def test_new_refuses_bad_name_and_existing_dir(workdir):
    r = run_new("Bad_Name", "-l", "python", "--dir", workdir)
    assert r.returncode == 2
    assert "not a valid function name" in r.stderr
    assert not (workdir / "Bad_Name").exists()

    r = run_new("x", "-l", "cobol", "--dir", workdir)
    assert r.returncode == 2 and 'no template for the language "cobol"' in r.stderr
    assert "python" in r.stderr

    taken = workdir / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine\n")
    r = run_new("taken", "-l", "python", "--dir", workdir)
    assert r.returncode == 1
    assert "already exists and is not empty" in r.stderr
    assert sorted(p.name for p in taken.iterdir()) == ["keep.txt"]

    # An empty directory is fine to fill.
    (workdir / "empty").mkdir()
    r = run_new("empty", "-l", "sh", "--dir", workdir)
    assert r.returncode == 0, r.stderr
    assert (workdir / "empty" / "handler.sh").stat().st_mode & 0o111, "handler.sh lost +x"


def test_templates_lists_every_language():
    r = subprocess.run([str(FLINT), "templates"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line for line in r.stdout.splitlines()[1:] if line.strip()}
    for lang in LANGS:
        assert lang in rows and len(rows[lang].split()) > 2, r.stdout


def test_templates_from_flint_templates(tmp_path):
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "DESCRIPTION").write_text("a tiny one\n")
    (tmp_path / "tiny" / "flint.yaml").write_text("name: {{NAME}}\n")
    env = {"FLINT_TEMPLATES": str(tmp_path), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([str(FLINT), "templates"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "tiny" in r.stdout and "a tiny one" in r.stdout
    r = subprocess.run([str(FLINT), "new", "abc", "-l", "tiny", "--dir", tmp_path / "out"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "out" / "abc").iterdir()) == ["flint.yaml"]
    assert (tmp_path / "out" / "abc" / "flint.yaml").read_text() == "name: abc\n"


def test_completion_bash_parses(tmp_path):
    r = subprocess.run([str(FLINT), "completion", "bash"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    script = tmp_path / "flint.bash"
    script.write_text(r.stdout)
    check = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    for word in ("complete -F _flint flint", "ls -o json", " new ", "--lang", "--follow"):
        assert word in r.stdout
    # Completing the first word offers the verbs.
    probe = ('source %s; COMP_WORDS=(flint te); COMP_CWORD=1; _flint; echo "${COMPREPLY[@]}"'
             % script)
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True)
    assert out.stdout.split() == ["templates"], out.stderr
    r = subprocess.run([str(FLINT), "completion", "fish"], capture_output=True, text=True)
    assert r.returncode == 2 and "only bash" in r.stderr
