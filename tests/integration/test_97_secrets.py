"""Secrets: stored 0600 in the data directory, shown to the functions that list them as
/run/secrets/NAME/KEY (0400, the function's uid), never in env, logs, the API or describe."""
import os
import stat

from conftest import wait_for

VALUE = "s3cr3t-value-9f2c"
FILE_VALUE = b"-----BEGIN KEY-----\n\x00\x01binary\xff\n"


def test_secret_lifecycle_and_visibility(flint, tmp_path):
    keyfile = tmp_path / "tls.key"
    keyfile.write_bytes(FILE_VALUE)
    r = flint.cli_ok("secret", "create", "db", "--from-literal", "password=" + VALUE,
                     "--from-literal", "user=app", "--from-file", keyfile)
    assert "created secret db (3 keys)" in r.stdout

    # Stored 0600 in 0700 directories, one file per key.
    d = flint.data / "secrets" / "db"
    assert stat.S_IMODE(os.stat(flint.data / "secrets").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert sorted(os.listdir(d)) == ["password", "tls.key", "user"]
    for k in os.listdir(d):
        assert stat.S_IMODE(os.stat(d / k).st_mode) == 0o600
    assert (d / "tls.key").read_bytes() == FILE_VALUE

    # Listing shows names and keys, never values.
    r = flint.api("GET", "/v1/secrets")
    assert r.status_code == 200
    assert VALUE not in r.text and "app" not in r.text.replace('"app', "")
    assert r.json()["secrets"] == [{"name": "db", "keys": ["password", "tls.key", "user"], "used_by": []}]
    assert VALUE not in flint.api("GET", "/v1/secrets/db").text
    ls = flint.cli_ok("secret", "ls").stdout
    assert "db" in ls and "password,tls.key,user" in ls and VALUE not in ls

    flint.deploy_app("sec", app="secretapp.py", secrets=["db"], scale={"min": 1})
    wait_for(lambda: flint.gw("/function/sec/whoami").status_code == 200, 20, what="sec to answer")
    uid = flint.gw("/function/sec/whoami").text
    r = flint.gw("/function/sec/read?p=/run/secrets/db/password")
    assert r.status_code == 200 and r.text == VALUE
    assert flint.gw("/function/sec/read?p=/run/secrets/db/tls.key").content == FILE_VALUE
    assert flint.gw("/function/sec/stat?p=/run/secrets/db/password").text == "400 %s" % uid
    assert flint.gw("/function/sec/stat?p=/run/secrets/db").text == "500 %s" % uid
    assert flint.gw("/function/sec/write?p=/run/secrets/db/new").status_code == 403
    env = flint.gw("/function/sec/environ").content
    assert VALUE.encode() not in env and b"tls.key" not in env
    # The data directory, where the stored copy is, stays hidden.
    assert flint.gw("/function/sec/read?p=%s" % (d / "password")).status_code == 403

    detail = flint.api("GET", "/v1/functions/sec")
    assert detail.json()["spec"]["secrets"] == ["db"]
    assert VALUE not in detail.text
    desc = flint.cli_ok("describe", "sec")
    assert VALUE not in desc.stdout
    assert VALUE not in flint.cli_ok("logs", "sec").stdout
    assert VALUE not in flint.log_path.read_text(errors="replace")

    # In use: refused with the functions named; after the function is gone it can go.
    r = flint.cli("secret", "rm", "db")
    assert r.returncode == 1 and "used by sec" in r.stderr, r.stderr
    assert flint.api("GET", "/v1/secrets/db").json()["used_by"] == ["sec"]
    flint.cli_ok("rm", "sec")
    flint.cli_ok("secret", "rm", "db")
    assert not d.exists()
    assert flint.api("GET", "/v1/secrets/db").status_code == 404


def test_unknown_secret_refused(flint):
    r = flint.api("PUT", "/v1/functions/nosec", json={"command": "true", "secrets": ["missing"]})
    assert r.status_code == 400
    assert "secrets" in r.json()["error"] and "missing" in r.json()["error"]
    r = flint.api("PUT", "/v1/functions/nosec", json={"command": "true", "secrets": ["Bad!"]})
    assert r.status_code == 400 and "secrets[0]" in r.json()["error"]
    r = flint.api("PUT", "/v1/secrets/x1", json={"stringData": {"k": "v"}})
    assert r.status_code == 201
    r = flint.api("PUT", "/v1/functions/nosec", json={"command": "true", "secrets": ["x1"],
                                                     "sandbox": False})
    assert r.status_code == 400 and "sandbox" in r.json()["error"]


def test_secret_api_errors(flint):
    assert flint.api("PUT", "/v1/secrets/x2", json={}).status_code == 400
    r = flint.api("PUT", "/v1/secrets/x2", json={"data": {"k": "not base64!"}})
    assert r.status_code == 400 and "base64" in r.json()["error"]
    r = flint.api("PUT", "/v1/secrets/x2", json={"stringData": {"../k": "v"}})
    assert r.status_code == 400
    r = flint.api("PUT", "/v1/secrets/x2", json={"stringData": {"a": "1"}})
    assert r.status_code == 201
    r = flint.api("PUT", "/v1/secrets/x2", json={"stringData": {"b": "2"}})
    assert r.status_code == 200 and r.json()["keys"] == ["b"]  # replaced as a whole
    assert flint.api("DELETE", "/v1/secrets/x9").status_code == 404
    r = flint.cli("secret", "create", "x3")
    assert r.returncode == 2
