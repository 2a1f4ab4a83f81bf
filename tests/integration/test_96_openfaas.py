"""OpenFaaS-compatible API on the gateway port: /system/functions, /system/function/NAME,
/system/scale-function/NAME, /system/info, basic auth (docs/openfaas.md)."""
import requests

from conftest import wait_for

# A server needing nothing but python3: answers every request with $GREETING.
SERVER = (
    "exec /usr/bin/python3 -c \"import os, http.server as h\n"
    "class H(h.BaseHTTPRequestHandler):\n"
    "    def do_GET(s):\n"
    "        b = os.environ.get('GREETING', 'none').encode()\n"
    "        s.send_response(200); s.send_header('Content-Length', str(len(b))); s.end_headers(); s.wfile.write(b)\n"
    "    do_POST = do_GET\n"
    "    def log_message(s, *a): pass\n"
    "h.HTTPServer(('127.0.0.1', int(os.environ['PORT'])), H).serve_forever()\""
)


def sysreq(flint, method, path, auth=True, **kw):
    a = ("admin", flint.token) if auth else None
    return requests.request(method, "http://%s%s" % (flint.gateway, path), auth=a, timeout=30, **kw)


def test_auth_refused(flint):
    r = sysreq(flint, "GET", "/system/functions", auth=False)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Basic realm="flint"'
    r = requests.get("http://%s/system/functions" % flint.gateway, auth=("admin", "wrong"), timeout=10)
    assert r.status_code == 401
    r = requests.get("http://%s/system/functions" % flint.gateway, auth=("root", flint.token), timeout=10)
    assert r.status_code == 401
    # /healthz stays open, as in OpenFaaS.
    assert requests.get("http://%s/healthz" % flint.gateway, timeout=10).status_code == 200


def test_info(flint):
    r = sysreq(flint, "GET", "/system/info")
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["provider"]["provider"] == "flint"
    assert j["provider"]["orchestration"] == "flint"
    assert j["provider"]["version"]["release"]
    assert j["version"]["release"]


def test_deploy_invoke_update_scale_delete(flint):
    r = sysreq(flint, "POST", "/system/functions", json={
        "service": "of-hello", "image": "", "envProcess": SERVER,
        "envVars": {"GREETING": "hello from openfaas"},
        "labels": {"team": "a"}, "annotations": {"note": "x"},
        "limits": {"memory": "128Mi", "cpu": "500m"}})
    assert r.status_code == 202, r.text
    r = flint.gw("/function/of-hello", method="POST", data=b"x")
    assert r.status_code == 200 and r.text == "hello from openfaas", (r.status_code, r.text)

    r = sysreq(flint, "GET", "/system/functions")
    assert r.status_code == 200
    fns = {f["name"]: f for f in r.json()}
    f = fns["of-hello"]
    assert f["image"] == "flint/native"
    assert f["envProcess"] == SERVER
    assert f["envVars"] == {"GREETING": "hello from openfaas"}
    assert f["labels"] == {"team": "a"} and f["annotations"] == {"note": "x"}
    assert f["limits"] == {"memory": "128Mi", "cpu": "500m"}
    assert f["invocationCount"] >= 1
    assert f["availableReplicas"] >= 1 and f["replicas"] >= 1
    assert f["namespace"] == "openfaas-fn"

    # A second POST of the same service is a conflict; PUT updates.
    r = sysreq(flint, "POST", "/system/functions", json={"service": "of-hello", "envProcess": SERVER})
    assert r.status_code == 409, r.text
    r = sysreq(flint, "PUT", "/system/functions", json={
        "service": "of-hello", "envProcess": SERVER, "envVars": {"GREETING": "updated"}})
    assert r.status_code == 202, r.text
    wait_for(lambda: flint.gw("/function/of-hello").text == "updated", 20, what="the update to serve")
    assert flint.function("of-hello")["version"] == 2
    r = sysreq(flint, "PUT", "/system/functions", json={"service": "of-nope", "envProcess": SERVER})
    assert r.status_code == 404

    r = sysreq(flint, "POST", "/system/scale-function/of-hello",
               json={"serviceName": "of-hello", "replicas": 2})
    assert r.status_code == 202, r.text
    spec = flint.function("of-hello")["spec"]
    assert spec["scale"]["min"] == 2 and spec["scale"]["max"] == 10
    wait_for(lambda: sysreq(flint, "GET", "/system/function/of-hello").json()["availableReplicas"] == 2,
             20, what="two available replicas")
    r = sysreq(flint, "POST", "/system/scale-function/of-hello", json={"replicas": 12})
    assert r.status_code == 202
    spec = flint.function("of-hello")["spec"]
    assert spec["scale"]["min"] == 12 and spec["scale"]["max"] == 12
    r = sysreq(flint, "POST", "/system/scale-function/of-hello", json={"replicas": 0})
    assert r.status_code == 202
    assert flint.function("of-hello")["spec"]["scale"]["min"] == 0

    r = sysreq(flint, "GET", "/system/function/of-hello")
    assert r.status_code == 200 and r.json()["name"] == "of-hello"
    assert sysreq(flint, "GET", "/system/function/of-none").status_code == 404

    r = sysreq(flint, "DELETE", "/system/functions", json={"functionName": "of-hello"})
    assert r.status_code == 202, r.text
    assert flint.api("GET", "/v1/functions/of-hello").status_code == 404
    r = sysreq(flint, "DELETE", "/system/functions", json={"functionName": "of-hello"})
    assert r.status_code == 404


def test_refusals(flint):
    r = sysreq(flint, "POST", "/system/functions", json={"service": "of-img", "image": "nginx:latest"})
    assert r.status_code == 400 and "native commands" in r.json()["error"]
    r = sysreq(flint, "POST", "/system/functions", json={"service": "of-img"})
    assert r.status_code == 400 and "envProcess" in r.json()["error"]
    r = sysreq(flint, "POST", "/system/functions", json={"service": "Bad_Name", "envProcess": "true"})
    assert r.status_code == 400 and "name" in r.json()["error"]
    r = sysreq(flint, "POST", "/system/functions", data=b"not json")
    assert r.status_code == 400
    r = sysreq(flint, "POST", "/system/scale-function/of-none", json={"replicas": 1})
    assert r.status_code == 404
    r = sysreq(flint, "GET", "/system/nothing")
    assert r.status_code == 404
