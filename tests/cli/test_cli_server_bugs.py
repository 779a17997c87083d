"""Regression tests for server-side bugs found while building pachctl.

- ListCommitSet never returning a set (covered in test_cli_commit.py).
- file:// sources refused from an IPv6 loopback client: gRPC reports IPv6 peers URL-escaped
  ('ipv6:%5B::1%5D:<port>').
"""
import pytest

from proto.pfs_v2 import pfs_pb2 as pfs

def test_file_url_accepted_from_ipv6_loopback(tmp_path):
    import socket

    from pachctl.client import PachClient
    from pachd.server import Pachd

    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    src = tmp_path / "src.txt"
    src.write_text("via file url")
    p = Pachd(tmp_path / "pachd", port=0, host="[::1]", enable_pps=False).start()
    try:
        with PachClient(f"grpc://[::1]:{p.port}") as c:
            repo = pfs.Repo(name="r", type="user", project=pfs.Project(name="default"))
            c.pfs.CreateRepo(pfs.CreateRepoRequest(repo=repo))
            commit = pfs.Commit(repo=repo, branch=pfs.Branch(repo=repo, name="master"))
            reqs = [pfs.ModifyFileRequest(set_commit=commit),
                    pfs.ModifyFileRequest(add_file=pfs.AddFile(
                        path="/f", url=pfs.AddFile.URLSource(URL=f"file://{src}")))]
            c.pfs.ModifyFile(iter(reqs))
    finally:
        p.stop(grace=0.5)
