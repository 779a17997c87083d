"""python-pachyderm 7.6.0 (the older official client; protobuf<4, so it gets its own venv)
drives our pachd unchanged: pfs round trips, path_exists, and a pipeline to success."""
from __future__ import annotations

import textwrap

import pytest

from pachd.server import Pachd
from tests.compat.helpers import run_pp

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent('''
    import sys, python_pachyderm
    from python_pachyderm.service import pps_proto
    c = python_pachyderm.Client(host="127.0.0.1", port=int(sys.argv[1]))
    assert c.get_remote_version().minor == 12
    c.create_repo("test")
    with c.commit("test", "master") as commit:
        c.put_file_bytes(commit, "/a.txt", b"hello python-pachyderm")
    assert [(f.file.path, f.size_bytes) for f in c.list_file(("test", "master"), "/")] == [("/a.txt", 22)]
    assert c.get_file(("test", "master"), "/a.txt").read() == b"hello python-pachyderm"
    assert c.path_exists(("test", "master"), "/a.txt") and not c.path_exists(("test", "master"), "/nope")
    c.create_pipeline("copy", transform=pps_proto.Transform(cmd=["sh"], stdin=["cp /pfs/test/* /pfs/out/"]),
                      input=pps_proto.Input(pfs=pps_proto.PFSInput(repo="test", glob="/*")))
    job = list(c.list_job("copy"))[0]
    info = list(c.inspect_job(job.job.id, "copy", wait=True))[0]
    assert info.state == pps_proto.JobState.JOB_SUCCESS and info.data_processed == 1, info
    assert [f.file.path for f in c.list_file(("copy", "master"), "/")] == ["/a.txt"]
    assert sorted(r.repo.name for r in c.list_repo()) == ["copy", "test"]
    c.delete_pipeline("copy")
    c.delete_repo("test")
    print("ok")
''')


def test_python_pachyderm_7_6_works_unchanged(pp_python, tmp_path):
    pd = Pachd(tmp_path / "pachd", port=0, host="127.0.0.1", s3_gateway_port=None).start()
    try:
        run_pp(pp_python, SCRIPT, pd.port)
    finally:
        pd.stop(grace=1.0)
