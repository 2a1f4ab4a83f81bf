"""test_99_images.py -- functions in root file systems of their own: `rootfs: DIR` and
`image: LAYOUT[:TAG]` (an OCI image layout written by the test, layers with whiteouts).

The tree is a busybox-style one built here: /bin/busybox (Debian's busybox-static) and
its applets as symbolic links, a /www to serve and an /etc/passwd. The function is
busybox's own httpd; a CGI script tells what the function can see from inside.
"""
import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile

from conftest import wait_for

BUSYBOX = "/bin/busybox"
APPLETS = ["sh", "httpd", "cat", "echo", "env", "ls", "id", "touch", "pwd", "tr"]
COLD = 30

# Prints what the function sees: the root, the host's python3 and hostname (both must be
# missing), whether the tree and /tmp can be written, and the environment.
CGI = """#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
echo "root: $(ls / | tr '\\n' ' ')"
ls /usr/lib/python3 >/dev/null 2>&1 && echo "python3: visible" || echo "python3: absent"
cat /etc/hostname >/dev/null 2>&1 && echo "hostname: visible" || echo "hostname: absent"
touch /www/x 2>/dev/null && echo "tree: writable" || echo "tree: read-only"
touch /tmp/x 2>/dev/null && echo "tmp: writable" || echo "tmp: read-only"
echo "uid: $(id -u)"
echo "GREETING=$GREETING"
echo "IMGONLY=$IMGONLY"
"""


def make_tree(d):
    """A minimal busybox root file system in directory d."""
    (d / "bin").mkdir(parents=True)
    shutil.copy(BUSYBOX, d / "bin" / "busybox")
    for a in APPLETS:
        os.symlink("busybox", d / "bin" / a)
    (d / "etc").mkdir()
    (d / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
    www = d / "www"
    (www / "cgi-bin").mkdir(parents=True)
    (www / "index.html").write_text("<h1>hello from a tree of its own</h1>\n")
    (www / "gone.html").write_text("deleted by a whiteout\n")
    (www / "opaque").mkdir()
    (www / "opaque" / "old.html").write_text("hidden by an opaque directory\n")
    (www / "cgi-bin" / "see").write_text(CGI)
    os.chmod(www / "cgi-bin" / "see", 0o755)
    return d


def listing(d):
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


def cgi(flint, name):
    r = flint.gw("/function/%s/cgi-bin/see" % name)
    assert r.status_code == 200, (r.status_code, r.text)
    return dict(line.split(": ", 1) if ": " in line else line.split("=", 1)
                for line in r.text.splitlines() if line)


def wait_ready(flint, name, path="/"):
    return wait_for(lambda: flint.gw("/function/%s%s" % (name, path)).status_code == 200, COLD,
                    what="%s to answer" % name)


def test_rootfs_dir(flint, tmp_path):
    tree = make_tree(tmp_path / "tree")
    before = listing(tree)
    r = flint.api("PUT", "/v1/functions/bb", json={
        "command": ["/bin/busybox", "httpd", "-f", "-p", "127.0.0.1:$PORT", "-h", "/www"],
        "rootfs": str(tree), "env": {"GREETING": "hi"}})
    assert r.status_code in (200, 201), r.text
    wait_ready(flint, "bb")
    r = flint.gw("/function/bb/")
    assert r.text == "<h1>hello from a tree of its own</h1>\n"
    seen = cgi(flint, "bb")
    # The tree's own entries plus flint's mount points; nothing of the host.
    assert seen["root"].split() == ["bin", "dev", "etc", "proc", "run", "tmp", "www"], seen
    assert seen["python3"] == "absent" and seen["hostname"] == "absent", seen
    assert seen["tree"] == "read-only" and seen["tmp"] == "writable", seen
    assert int(seen["uid"]) >= 60000, seen
    assert seen["GREETING"] == "hi"
    # A tree of its own is a different view: never a sandbox built ahead of need.
    assert [i["warm"] for i in flint.instances("bb") if i["state"] == "ready"] == [False]
    # Nothing was written into the tree (no mount points, no files).
    assert listing(tree) == before

    # A command function printing to its logs sees the same view.
    r = flint.api("PUT", "/v1/functions/bbls", json={
        "command": "ls /; cat /etc/hostname || echo no-hostname; "
                   "exec busybox httpd -f -p 127.0.0.1:$PORT -h /www",
        "rootfs": str(tree)})
    assert r.status_code in (200, 201), r.text
    wait_ready(flint, "bbls")

    def logs():
        out = flint.cli_ok("logs", "bbls").stdout
        return out if "no-hostname" in out else None
    out = wait_for(logs, 10, what="the ls output in the logs")
    assert "www" in out and "python3" not in out and "usr" not in out.split()
    flint.cli_ok("rm", "bb")
    flint.cli_ok("rm", "bbls")


def test_rootfs_refused(flint, tmp_path):
    r = flint.api("PUT", "/v1/functions/nort", json={"command": "true",
                                                    "rootfs": str(tmp_path / "missing")})
    assert r.status_code == 400
    assert r.json()["error"] == "rootfs: %s is not a directory on this host" % (
        tmp_path / "missing")
    r = flint.api("PUT", "/v1/functions/nort", json={"command": "true", "rootfs": str(tmp_path),
                                                    "sandbox": False})
    assert r.status_code == 400 and "sandbox" in r.json()["error"]


# ---- OCI image layouts ----

def tar_bytes(entries, compress):
    """A tar archive of (TarInfo, bytes or None) entries, gzip-compressed if compress."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for info, data in entries:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0) if compress else raw


def file_entry(name, data, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    return info, data


class Layout:
    """An OCI image layout being written: blobs by digest, manifests in index.json."""

    def __init__(self, d):
        self.d = d
        (d / "blobs" / "sha256").mkdir(parents=True)
        (d / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        self.manifests = []

    def blob(self, data):
        hexd = hashlib.sha256(data).hexdigest()
        (self.d / "blobs" / "sha256" / hexd).write_bytes(data)
        return {"digest": "sha256:" + hexd, "size": len(data)}

    def image(self, tag, layers, config):
        """layers: (bytes, media type); config: the image config's "config" object."""
        cfg = self.blob(json.dumps({"architecture": "amd64", "os": "linux", "config": config,
                                    "rootfs": {"type": "layers", "diff_ids": []}}).encode())
        cfg["mediaType"] = "application/vnd.oci.image.config.v1+json"
        ls = []
        for data, mt in layers:
            desc = self.blob(data)
            desc["mediaType"] = mt
            ls.append(desc)
        man = self.blob(json.dumps({"schemaVersion": 2,
                                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                    "config": cfg, "layers": ls}).encode())
        man["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
        man["annotations"] = {"org.opencontainers.image.ref.name": tag}
        self.manifests.append(man)
        (self.d / "index.json").write_text(json.dumps({"schemaVersion": 2,
                                                       "manifests": self.manifests}))
        return man["digest"]


GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
TAR = "application/vnd.oci.image.layer.v1.tar"
ENTRYPOINT = ["/bin/sh", "-c",
              "echo started in $(pwd); exec busybox httpd -f -p $PORT -h /www"]


def base_layer(tree):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        t.add(tree, arcname=".")
    return gzip.compress(buf.getvalue(), mtime=0)


def test_oci_image(flint, tmp_path):
    tree = make_tree(tmp_path / "tree")
    lay = Layout(tmp_path / "oci")
    # The second layer deletes gone.html, empties opaque/ and adds files of its own.
    opq = tarfile.TarInfo("www/opaque")
    opq.type = tarfile.DIRTYPE
    opq.mode = 0o755
    top = tar_bytes([file_entry("www/.wh.gone.html", b""), (opq, None),
                     file_entry("www/opaque/new.html", b"new in layer 2\n"),
                     file_entry("www/opaque/.wh..wh..opq", b""),
                     file_entry("www/layer2.html", b"from layer 2\n")], compress=False)
    digest = lay.image("v1", [(base_layer(tree), GZ), (top, TAR)], {
        "Entrypoint": ENTRYPOINT, "Cmd": ["flint-image"],
        "Env": ["PATH=/bin", "GREETING=from-image", "IMGONLY=yes"], "WorkingDir": "/www"})

    r = flint.api("PUT", "/v1/functions/img", json={
        "image": "%s:v1" % lay.d, "env": {"GREETING": "from-spec"}})
    assert r.status_code in (200, 201), r.text
    assert "command" not in flint.function("img")["spec"]
    wait_ready(flint, "img")
    assert flint.gw("/function/img/").text == "<h1>hello from a tree of its own</h1>\n"
    assert flint.gw("/function/img/layer2.html").text == "from layer 2\n"
    assert flint.gw("/function/img/opaque/new.html").text == "new in layer 2\n"
    # Whited out, and hidden by the opaque directory.
    assert flint.gw("/function/img/gone.html").status_code == 404
    assert flint.gw("/function/img/opaque/old.html").status_code == 404
    seen = cgi(flint, "img")
    assert seen["python3"] == "absent" and seen["tree"] == "read-only", seen
    # The spec's env wins over the image's; the image's own entries stay.
    assert seen["GREETING"] == "from-spec" and seen["IMGONLY"] == "yes", seen
    out = wait_for(lambda: "started in /www" in flint.cli_ok("logs", "img").stdout, 10,
                   what="the entrypoint's line in the logs")
    assert out

    # Unpacked once, under the manifest's digest, and never written to since.
    root = flint.data / "images" / digest[len("sha256:"):] / "rootfs"
    assert (root / "www" / "layer2.html").exists()
    assert not (root / "www" / "gone.html").exists()
    assert not (root / "www" / "opaque" / "old.html").exists()
    before = listing(root)
    r = flint.api("PUT", "/v1/functions/img", json={"image": "%s:v1" % lay.d,
                                                   "env": {"GREETING": "again"}})
    assert r.status_code in (200, 201), r.text
    wait_for(lambda: cgi(flint, "img")["GREETING"] == "again", COLD, what="the new version")
    assert flint.log_path.read_text(errors="replace").count("unpacked %s:v1" % lay.d) == 1
    assert listing(root) == before

    # The spec's command replaces the image's Entrypoint and Cmd.
    r = flint.api("PUT", "/v1/functions/img2", json={
        "image": "%s:v1" % lay.d,
        "command": ["/bin/busybox", "httpd", "-f", "-p", "127.0.0.1:$PORT", "-h", "/www/opaque"]})
    assert r.status_code in (200, 201), r.text
    wait_ready(flint, "img2", "/new.html")
    assert flint.gw("/function/img2/layer2.html").status_code == 404
    flint.cli_ok("rm", "img")
    flint.cli_ok("rm", "img2")


def test_oci_image_refused(flint, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    lay = Layout(tmp_path / "oci")
    cfg = {"Entrypoint": ENTRYPOINT}
    evil = tar_bytes([file_entry("www/ok.html", b"ok\n"),
                      file_entry("../../escaped-by-dotdot", b"x")], compress=True)
    bad = [lay.image("dotdot", [(evil, GZ)], cfg)]
    link = tarfile.TarInfo("esc")
    link.type = tarfile.SYMTYPE
    link.linkname = str(outside)
    through = tar_bytes([(link, None), file_entry("esc/pwned", b"x")], compress=True)
    bad.append(lay.image("symlink", [(through, GZ)], cfg))
    absolute = tar_bytes([file_entry(str(outside / "abs"), b"x")], compress=False)
    bad.append(lay.image("absolute", [(absolute, TAR)], cfg))
    lay.image("nocmd", [(tar_bytes([file_entry("a", b"")], False), TAR)], {})
    images = flint.data / "images"

    def deploy(tag, **extra):
        spec = {"image": "%s:%s" % (lay.d, tag)}
        spec.update(extra)
        return flint.api("PUT", "/v1/functions/bad", json=spec)

    r = deploy("dotdot")
    assert r.status_code == 400
    err = r.json()["error"]
    assert err.startswith("image: layer 1 (sha256:") and \
        'has an unsafe entry "../../escaped-by-dotdot" (contains "..")' in err, err
    r = deploy("symlink")
    assert r.status_code == 400 and "esc/pwned" in r.json()["error"], r.text
    r = deploy("absolute")
    assert r.status_code == 400 and "is an absolute path" in r.json()["error"], r.text
    assert os.listdir(outside) == []
    assert not (tmp_path / "escaped-by-dotdot").exists()
    assert not (flint.data / "escaped-by-dotdot").exists()
    # Nothing half-unpacked is left to be taken for a complete tree.
    for digest in bad:
        assert os.listdir(images / digest[len("sha256:"):]) == []

    r = deploy("nocmd")
    assert r.status_code == 400
    assert r.json()["error"] == ("command: is required: the image %s:nocmd has neither "
                                 "Entrypoint nor Cmd" % lay.d)
    r = deploy("v9")
    assert r.status_code == 400 and 'has no manifest tagged "v9"' in r.json()["error"], r.text
    r = flint.api("PUT", "/v1/functions/bad", json={"image": str(tmp_path)})
    assert r.status_code == 400 and "is not an OCI image layout" in r.json()["error"], r.text
    # A blob that does not match its digest is refused.
    blob = lay.d / "blobs" / "sha256" / lay.manifests[3]["digest"][len("sha256:"):]
    blob.write_bytes(blob.read_bytes() + b" ")
    r = deploy("nocmd")
    assert r.status_code == 400 and "does not match its digest" in r.json()["error"], r.text
