"""pachctl put/get/inspect/list/glob/diff/delete/copy file against a real pachd."""
import http.server
import io
import json
import os
import re
import tarfile
import threading

import pytest

from pachctl import pretty, transfer
from pachctl.pfs_pretty import dt
from proto.pfs_v2 import pfs_pb2 as pfs

MiB = 1024 * 1024


def commit_ids(client, repo="r"):
    req = pfs.ListCommitRequest(repo=pfs.Repo(name=repo, type="user", project=pfs.Project(name="default")))
    return [c.commit.id for c in client.pfs.ListCommit(req)]


def tree(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = fh.read()
    return out


@pytest.fixture
def repo(ok):
    ok("create", "repo", "r")
    return "r"


# ---- put / get -------------------------------------------------------------------------------
@pytest.mark.parametrize("local_upload", ["1", "0"], ids=["file-url", "streamed"])
def test_put_get_large_file_round_trip(ok, pachctl, repo, tmp_path, client, local_upload, monkeypatch):
    monkeypatch.setenv("PACHCTL_LOCAL_UPLOAD", local_upload)
    data = os.urandom(9 * MiB + 12345)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    assert ok("put", "file", "r@master", "-f", src) == ""  # no path: the base name
    assert len(commit_ids(client)) == 1
    out = tmp_path / "copy.bin"
    assert ok("get", "file", "r@master:/big.bin", "-o", out) == ""
    assert out.read_bytes() == data
    r = pachctl("get", "file", "r@master:/big.bin")
    assert r.exit_code == 0 and r.stdout_bytes == data
    r = pachctl("get", "file", "r@master:/big.bin", "--offset", 9 * MiB)
    assert r.stdout_bytes == data[9 * MiB:]
    assert ok("list", "file", "r@master") == "SIZE   \tNAME\n9.012MiB\t/big.bin\n"


@pytest.mark.parametrize("local_upload,flags", [("1", []), ("0", []), ("1", ["--progress"])],
                         ids=["pachd-walks", "streamed", "walked-for-the-bar"])
def test_put_recursive_directory_round_trip(ok, repo, tmp_path, client, local_upload, flags, monkeypatch):
    """The same tree whether pachd walks the directory (one recursive file:// source), the
    client walks it and streams the bytes, or walks it first to size a progress bar."""
    monkeypatch.setenv("PACHCTL_LOCAL_UPLOAD", local_upload)
    src = tmp_path / "data"
    files = {"a.txt": b"A", "sub/b.txt": b"BB" * 1000, "sub/deeper/c.bin": os.urandom(3 * MiB), "empty": b""}
    for rel, content in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(content)
    ok("put", "file", "r@master", "-r", "-f", src, *flags)
    assert len(commit_ids(client)) == 1  # one ModifyFile stream, one commit
    assert ok("list", "file", "r@master:/data") == (
        "SIZE   \tNAME\n1B\t/data/a.txt\n0B\t/data/empty\n3.002MiB\t/data/sub/\n")
    out = tmp_path / "out"
    ok("get", "file", "r@master:/data", "-r", "-o", out)
    assert tree(out) == files
    out2 = tmp_path / "out2"
    ok("get", "file", "r@master:/", "-r", "-o", out2)
    assert tree(out2) == {f"data/{k}": v for k, v in files.items()}
    ok("put", "file", "r@master:/elsewhere", "-r", "-f", src)
    assert tree_from(ok, "/elsewhere") == sorted(files)


def tree_from(ok, path):
    out = ok("glob", "file", f"r@master:{path}/**")
    return sorted(line.split("\t")[1][len(path) + 1:] for line in out.splitlines()[1:]
                  if not line.endswith("/"))


def test_put_target_rules(ok, pachctl, repo, tmp_path, client):
    (tmp_path / "x.txt").write_text("x")
    (tmp_path / "y.txt").write_text("yy")
    os.chdir(tmp_path)
    ok("put", "file", "r@master:/exact", "-f", "x.txt")
    ok("put", "file", "r@master:/dir/", "-f", "x.txt")
    ok("put", "file", "r@master:/multi", "-f", "x.txt", "-f", "y.txt")
    ok("put", "file", "r@master", "-f", "x.txt", "--full-path")
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "z.txt").write_text("z")
    ok("put", "file", "r@master", "-f", "nested/z.txt", "--full-path")
    ok("put", "file", "r@master", "-f", "nested/z.txt")
    names = [line.split("\t")[1] for line in ok("glob", "file", "r@master:**").splitlines()[1:]]
    assert names == ["/dir/", "/dir/x.txt", "/exact", "/multi/", "/multi/x.txt", "/multi/y.txt",
                     "/nested/", "/nested/z.txt", "/x.txt", "/z.txt"]
    (tmp_path / "list.txt").write_text("x.txt\n\ny.txt\n")
    ok("put", "file", "r@master:/fromlist/", "-i", "list.txt")
    assert ok("list", "file", "r@master:/fromlist") == "SIZE   \tNAME\n1B\t/fromlist/x.txt\n2B\t/fromlist/y.txt\n"


def test_put_stdin_append_overwrite(ok, pachctl, repo):
    ok("put", "file", "r@master:/f", input="one\n")
    ok("put", "file", "r@master:/f", "-a", input="two\n")
    assert ok("get", "file", "r@master:/f") == "one\ntwo\n"
    ok("put", "file", "r@master:/f", "-f", "-", input="three\n")
    assert ok("get", "file", "r@master:/f") == "three\n"
    r = pachctl("put", "file", "r@master", input="x")
    assert (r.exit_code, r.stderr) == (1, "must specify filename when reading data from stdin\n")
    r = pachctl("put", "file", "r@master:/d", "-r")
    assert (r.exit_code, r.stderr) == (1, "cannot set -r and read from stdin (must also set -f or -i)\n")
    r = pachctl("put", "file", "nope@master:/f", input="x")
    assert (r.exit_code, r.stderr) == (1, "repo default/nope not found\n")


def test_put_errors_write_nothing(ok, pachctl, repo, tmp_path, client):
    (tmp_path / "a").write_text("a")
    r = pachctl("put", "file", "r@master:/x/", "-f", tmp_path / "a", "-f", tmp_path / "missing")
    assert r.exit_code == 1
    assert r.stderr == f"open {tmp_path / 'missing'}: no such file or directory\n"
    (tmp_path / "d").mkdir()
    r = pachctl("put", "file", "r@master", "-f", tmp_path / "d")
    assert r.stderr == f"{tmp_path / 'd'} is a directory; use -r to put it recursively\n"
    assert commit_ids(client) == []


def test_put_read_error_mid_stream_aborts(ok, repo, client, tmp_path, monkeypatch):
    """A local read failure after data was sent cancels the one stream: no commit appears."""
    (tmp_path / "good").write_bytes(b"g" * (3 * MiB))
    (tmp_path / "bad").write_bytes(b"b")
    real_open = open

    def failing_open(path, *a, **kw):
        if str(path).endswith("bad"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **kw)

    monkeypatch.setattr(transfer, "open", failing_open, raising=False)
    from pachctl.client import PachClient
    from pachctl.refs import parse_file
    from pachctl import pb

    items = transfer.plan_put([str(tmp_path / "good"), str(tmp_path / "bad")], "/d/")
    with PachClient(client.address) as c, pytest.raises(PermissionError):
        transfer.put(c, pb.commit(parse_file("r@master").commit), items, append=False,
                     stdin=io.BytesIO(), progress=transfer.Progress(False, None, "", io.StringIO()))
    assert commit_ids(client) == []


def test_modify_requests_are_chunked(tmp_path):
    (tmp_path / "f").write_bytes(b"z" * (5 * MiB + 1))
    items = transfer.plan_put([str(tmp_path / "f")], "/f")
    reqs = list(transfer.modify_requests(pfs.Commit(id="x"), items, append=False, stdin=io.BytesIO(),
                                         progress=transfer.Progress(False, None, "", io.StringIO())))
    kinds = [r.WhichOneof("body") for r in reqs]
    assert kinds == ["set_commit", "delete_file", "add_file", "add_file", "add_file", "add_file"]
    sizes = [len(r.add_file.raw.value) for r in reqs[2:]]
    assert sizes == [0, 2 * MiB, 2 * MiB, MiB + 1]


def test_put_untar(ok, repo, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, content in (("t/one.txt", b"1"), ("t/two/three.txt", b"333")):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
    (tmp_path / "bundle.tgz").write_bytes(buf.getvalue())
    ok("put", "file", "r@master:/unpacked", "-f", tmp_path / "bundle.tgz", "--untar")
    assert ok("get", "file", "r@master:/unpacked/t/two/three.txt") == "333"
    assert ok("get", "file", "r@master:/unpacked/t/one.txt") == "1"


def test_put_url(ok, repo):
    body = b"served over http\n" * 100

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/files/page.txt"
        ok("put", "file", "r@master", "-f", url)
        ok("put", "file", "r@master:/renamed.txt", "-f", url)
    finally:
        srv.shutdown()
        srv.server_close()
    assert ok("get", "file", "r@master:/page.txt").encode() == body
    assert ok("get", "file", "r@master:/renamed.txt").encode() == body


def test_get_errors(pachctl, ok, repo):
    ok("put", "file", "r@master:/d/f", input="x")
    r = pachctl("get", "file", "r@master:/d")
    assert (r.exit_code, r.stderr) == (1, "couldn't download /d from default/r@master: Try again with the -r flag\n")
    r = pachctl("get", "file", "r@master:/d", "-r")
    assert r.stderr == "an output path needs to be specified when using the --recursive flag\n"
    r = pachctl("get", "file", "r@master:/nope")
    assert r.stderr.startswith("file /nope not found in repo default/r at commit ")


# ---- inspect / list / glob -------------------------------------------------------------------
def test_inspect_list_glob(ok, pachctl, repo):
    ok("put", "file", "r@master:/dir/a.csv", input="a" * 1500)
    ok("put", "file", "r@master:/dir/b.txt", input="b")
    ok("put", "file", "r@master:/top", input="")
    assert ok("inspect", "file", "r@master:/dir/a.csv") == "Path: /dir/a.csv\nDatum: \nType: file\nSize: 1.465KiB\n"
    assert ok("inspect", "file", "r@master:/dir") == "Path: /dir/\nDatum: \nType: dir\nSize: 1.466KiB\n"
    assert ok("list", "file", "r@master") == "SIZE   \tNAME\n1.466KiB\t/dir/\n0B\t/top\n"
    assert ok("list", "file", "r@master:/dir", "--legacy") == (
        "NAME       TYPE SIZE     \n/dir/a.csv file 1.465KiB \n/dir/b.txt file 1B       \n")
    assert ok("glob", "file", "r@master:/dir/*.csv") == "SIZE   \tNAME\n1.465KiB\t/dir/a.csv\n"
    raw = ok("list", "files", "r@master:/dir", "--raw")
    objs = json.loads("[" + raw.replace("}{", "},{") + "]")
    assert [(o["file"]["path"], o["file_type"], o["size_bytes"]) for o in objs] == \
        [("/dir/a.csv", "FILE", "1500"), ("/dir/b.txt", "FILE", "1")]
    r = pachctl("list", "file", "r@master:/nope")
    assert r.exit_code == 1 and "not found" in r.stderr
    r = pachctl("list", "file", "r@nobranch")
    assert r.stderr == 'branch "nobranch" not found in repo default/r\n'


def test_list_file_history(ok, pachctl, repo, client):
    ok("put", "file", "r@master:/data/a", input="1")
    ok("put", "file", "r@master:/data/b", input="22")
    ok("put", "file", "r@master:/data/a", input="333")
    ok("put", "file", "r@master:/data/b", input="22")  # same content: not a new version
    c4, c3, c2, c1 = commit_ids(client)
    infos = {ci.commit.id: ci for ci in client.pfs.ListCommit(pfs.ListCommitRequest(
        repo=pfs.Repo(name="r", type="user", project=pfs.Project(name="default"))))}
    fin = {cid: pretty.timestamp(dt(ci, "finished")) for cid, ci in infos.items()}
    out = ok("list", "file", "r@master:/data", "--history", "all", "--full-timestamps")
    assert out == (
        "COMMIT                           NAME    TYPE COMMITTED            SIZE \n"
        f"{c3} /data/a file {fin[c3]} 3B   \n"
        f"{c1} /data/a file {fin[c1]} 1B   \n"
        f"{c2} /data/b file {fin[c2]} 2B   \n")
    assert [line.split()[:2] for line in ok("list", "file", "r@master:/data", "--history", "1").splitlines()[1:]] \
        == [[c3, "/data/a"], [c2, "/data/b"]]
    one = ok("list", "file", "r@master", "--history", "1").splitlines()
    assert re.fullmatch(rf"{c3} /data dir  (Less than a second|\d+ seconds?) ago +5B +", one[1]), one
    assert ok("list", "file", "r@master", "--history", "none") == "SIZE   \tNAME\n5B\t/data/\n"
    r = pachctl("list", "file", "r@master", "--history", "x")
    assert r.exit_code == 1 and "--history" in r.stderr


# ---- diff / delete / copy --------------------------------------------------------------------
def test_diff_file(ok, repo):
    ok("put", "file", "r@master:/a.txt", input="old line\nsame\n")
    ok("put", "file", "r@master:/gone", input="bye")
    ok("put", "file", "r@master:/a.txt", input="new line\nsame\n")
    ok("delete", "file", "r@master:/gone")
    ok("put", "file", "r@master:/fresh", input="hi")
    assert ok("diff", "file", "r@master", "r@master^^^", "--name-only") == (
        "OP SIZE    NAME\n+  16B     /\n-  17B     /\n+  14B     /a.txt\n-  14B     /a.txt\n"
        "+  2B      /fresh\n-  3B      /gone\n")
    assert ok("diff", "file", "r@master:/a.txt", "r@master^^:/a.txt") == ""  # same content
    text = ok("diff", "file", "r@master:/a.txt", "r@master^^^:/a.txt")
    assert "-old line\n" in text and "+new line\n" in text and " same\n" in text
    text = ok("diff", "file", "r@master", "--diff-command", "diff")
    assert "> hi" in text  # vs. the parent commit: /fresh is new


def test_delete_and_copy(ok, pachctl, repo):
    ok("put", "file", "r@master:/d/one", input="1")
    ok("put", "file", "r@master:/d/two", input="2")
    ok("put", "file", "r@master:/keep", input="k")
    assert ok("delete", "file", "r@master:/d/one") == ""
    assert ok("list", "file", "r@master:/d") == "SIZE   \tNAME\n1B\t/d/two\n"
    ok("delete", "file", "r@master:/d", "-r")
    assert ok("list", "file", "r@master") == "SIZE   \tNAME\n1B\t/keep\n"
    assert ok("copy", "file", "r@master:/keep", "r@master:/copy") == ""
    ok("copy", "file", "r@master:/keep", "r@master:/copy", "-a")
    assert ok("get", "file", "r@master:/copy") == "kk"
    ok("create", "repo", "other")
    ok("copy", "file", "r@master:/keep", "other@master:/from-r")
    assert ok("get", "file", "other@master:/from-r") == "k"
    r = pachctl("copy", "file", "r@master:/keep")
    assert r.stderr.startswith("expected 2 arguments, got 1\n\n")


def test_progress_bars_never_touch_data(pachctl, ok, repo, tmp_path):
    data = os.urandom(2 * MiB)
    (tmp_path / "p.bin").write_bytes(data)
    r = pachctl("put", "file", "r@master:/p.bin", "-f", tmp_path / "p.bin", "--progress")
    assert r.exit_code == 0 and "put file" in r.stdout and "2.0/2.0 MiB" in r.stdout, r
    r = pachctl("get", "file", "r@master:/p.bin", "--progress")
    assert r.exit_code == 0 and r.stdout_bytes == data and "get file" in r.stderr
    assert ok("put", "file", "r@master:/q.bin", "-f", tmp_path / "p.bin") == ""  # not a TTY: no bar


@pytest.mark.s3
def test_put_s3_urls(ok, repo, moto_server, monkeypatch):
    """s3:// sources go to pachd as AddFile.url; pachd fetches them with the usual AWS_* settings."""
    bucket = moto_server.new_bucket()
    s3 = moto_server.client()
    try:
        s3.put_object(Bucket=bucket, Key="dir/one.txt", Body=b"1")
        s3.put_object(Bucket=bucket, Key="dir/sub/two.txt", Body=b"22")
    finally:
        s3.close()
    for k, v in {"AWS_ENDPOINT_URL": moto_server.endpoint_url, "AWS_ACCESS_KEY_ID": moto_server.access_key,
                 "AWS_SECRET_ACCESS_KEY": moto_server.secret_key, "AWS_DEFAULT_REGION": moto_server.region}.items():
        monkeypatch.setenv(k, v)
    ok("put", "file", "r@master", "-f", f"s3://{bucket}/dir/one.txt")
    ok("put", "file", "r@master:/all", "-r", "-f", f"s3://{bucket}/dir")
    assert ok("get", "file", "r@master:/one.txt") == "1"
    assert ok("get", "file", "r@master:/all/sub/two.txt") == "22"


def test_put_compressed_and_cross_project_copy(ok, repo):
    ok("put", "file", "r@master:/z", "-c", input="zip" * 1000)
    assert ok("get", "file", "r@master:/z") == "zip" * 1000
    ok("create", "project", "p2")
    ok("create", "repo", "dst", "--project", "p2")
    ok("copy", "file", "r@master:/z", "dst@master:/z", "--dest-project", "p2")
    assert ok("get", "file", "dst@master:/z", "--project", "p2") == "zip" * 1000


def test_put_local_fast_path_and_fallback(pachctl, ok, repo, tmp_path, client):
    """Local pachd: files go as file:// URLs; if pachd refuses them the same put is streamed."""
    src = tmp_path / "f.bin"
    src.write_bytes(b"abc" * 1000)
    r = pachctl("-v", "put", "file", "r@master:/fast", "-f", src)
    assert r.exit_code == 0 and "put: 1 local file(s) sent as file:// URLs" in r.stderr, r
    r = pachctl("-v", "put", "file", "r@master:/fallback", "-f", src, extra_env={"PACHD_ALLOW_FILE_URLS": "0"})
    assert r.exit_code == 0 and "pachd refused file:// sources" in r.stderr, r
    r = pachctl("-v", "put", "file", "r@master:/streamed", "-f", src, extra_env={"PACHCTL_LOCAL_UPLOAD": "0"})
    assert r.exit_code == 0 and "file://" not in r.stderr, r
    for name in ("fast", "fallback", "streamed"):
        assert ok("get", "file", f"r@master:/{name}") == "abc" * 1000
    assert len(commit_ids(client)) == 3  # one commit per put, the refused attempt left nothing
