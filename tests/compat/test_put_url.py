"""Put file from an http(s) URL (AddFile.url) through both clients, also mixed with other
operations inside ONE ModifyFile stream; a URL that fails leaves the commit untouched."""
from __future__ import annotations

import http.server
import ssl
import subprocess
import textwrap
import threading

import grpc
import pytest
from pachyderm_sdk.api import pfs

from tests.compat.helpers import run_pp
from tests.service.helpers import get_bytes

BIG = bytes(range(256)) * 8192  # 2 MiB: more than one streamed piece


class _Handler(http.server.BaseHTTPRequestHandler):
    files = {"/small.txt": b"hello from http\n", "/big.bin": BIG}

    def do_GET(self):
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404, "no such file")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def _serve(tls_dir=None):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    if tls_dir is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls_dir / "cert.pem", tls_dir / "key.pem")
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    return srv, t


@pytest.fixture
def http_base():
    srv, t = _serve()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
        t.join()


@pytest.fixture
def https_base(tmp_path, monkeypatch):
    """An https server with a self-signed certificate that pachd (this process) trusts
    through SSL_CERT_FILE, as a user would point pachd at their CA."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))
    srv, t = _serve(tmp_path)
    try:
        yield f"https://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
        t.join()


def test_put_file_from_http_and_https_urls(client, http_base, https_base):
    client.pfs.create_repo(repo=pfs.Repo(name="web"))
    with client.pfs.commit(branch=pfs.Branch.from_uri("web@master")) as c:
        c.put_file_from_url(path="/a.txt", url=f"{http_base}/small.txt")
        c.put_file_from_url(path="/big.bin", url=f"{http_base}/big.bin")
        c.put_file_from_url(path="/secure.txt", url=f"{https_base}/small.txt")
    head = pfs.Commit.from_uri("web@master")
    assert get_bytes(client, pfs.File(commit=head, path="/a.txt")) == b"hello from http\n"
    assert get_bytes(client, pfs.File(commit=head, path="/big.bin")) == BIG
    assert get_bytes(client, pfs.File(commit=head, path="/secure.txt")) == b"hello from http\n"


def test_url_inside_one_modify_file_stream_with_other_operations(client, http_base):
    client.pfs.create_repo(repo=pfs.Repo(name="mix"))
    with client.pfs.commit(branch=pfs.Branch.from_uri("mix@master")) as c:
        c.put_file_from_bytes(path="/old", data=b"old")
    commit = client.pfs.start_commit(branch=pfs.Branch.from_uri("mix@master"))

    def ops():
        yield pfs.ModifyFileRequest(set_commit=commit)
        yield pfs.ModifyFileRequest(add_file=pfs.AddFile(path="/raw", raw=b"raw bytes"))
        yield pfs.ModifyFileRequest(add_file=pfs.AddFile(path="/fetched", url=pfs.AddFileUrlSource(
            url=f"{http_base}/small.txt")))
        yield pfs.ModifyFileRequest(add_file=pfs.AddFile(path="/raw", raw=b" + more"))  # appends
        yield pfs.ModifyFileRequest(delete_file=pfs.DeleteFile(path="/old"))
        yield pfs.ModifyFileRequest(add_file=pfs.AddFile(path="/big", url=pfs.AddFileUrlSource(
            url=f"{http_base}/big.bin")))
    client.pfs.modify_file(ops())
    client.pfs.finish_commit(commit=commit)
    files = {f.file.path for f in client.pfs.walk_file(file=pfs.File(commit=commit, path="/"))
             if f.file_type == pfs.FileType.FILE}
    assert files == {"/raw", "/fetched", "/big"}
    assert get_bytes(client, pfs.File(commit=commit, path="/raw")) == b"raw bytes + more"
    assert get_bytes(client, pfs.File(commit=commit, path="/fetched")) == b"hello from http\n"
    assert get_bytes(client, pfs.File(commit=commit, path="/big")) == BIG

    # a URL that fails: the whole stream fails and the open commit keeps nothing of it
    c2 = client.pfs.start_commit(branch=pfs.Branch.from_uri("mix@master"))

    def bad():
        yield pfs.ModifyFileRequest(set_commit=c2)
        yield pfs.ModifyFileRequest(add_file=pfs.AddFile(path="/before", raw=b"x"))
        yield pfs.ModifyFileRequest(add_file=pfs.AddFile(path="/missing", url=pfs.AddFileUrlSource(
            url=f"{http_base}/missing.txt")))
    with pytest.raises(grpc.RpcError) as ei:
        client.pfs.modify_file(bad())
    assert "missing.txt" in ei.value.details() and "404" in ei.value.details()
    client.pfs.finish_commit(commit=c2)
    files = {f.file.path for f in client.pfs.walk_file(file=pfs.File(commit=c2, path="/"))
             if f.file_type == pfs.FileType.FILE}
    assert files == {"/raw", "/fetched", "/big"}


PP_SCRIPT = textwrap.dedent('''
    import sys, python_pachyderm
    c = python_pachyderm.Client(host="127.0.0.1", port=int(sys.argv[1]))
    base = sys.argv[2]
    c.create_repo("ppweb")
    with c.commit("ppweb", "master") as cm:
        c.put_file_url(cm, "/one.txt", base + "/small.txt")
        with c.modify_file_client(cm) as mf:
            mf.put_file_from_bytes("/inline", b"inline")
            mf.put_file_from_url("/two.bin", base + "/big.bin")
    assert c.get_file(("ppweb", "master"), "/one.txt").read() == b"hello from http\\n"
    assert len(c.get_file(("ppweb", "master"), "/two.bin").read()) == 2 * 1024 * 1024
    assert c.get_file(("ppweb", "master"), "/inline").read() == b"inline"
    print("ok")
''')


def test_python_pachyderm_put_file_url(pp_python, pachd, http_base):
    run_pp(pp_python, PP_SCRIPT, pachd.port, http_base)
