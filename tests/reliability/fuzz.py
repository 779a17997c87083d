"""R3: bad input, found by hypothesis. The strategies and the checks every answer must pass.

A `Target` is one pachd (in this process: gRPC on a loopback port, the S3 gateway, pps with
dry-run pipeline creation) with a scratch repo `fz` (branch master: two finished commits, one
open commit on branch `open`). Each kind of input has a strategy and a `check_*` function
that sends it and checks the answer:

- gRPC: OK, or an error whose code is a client's mistake (never INTERNAL or UNKNOWN, never a
  Python traceback) and whose message is not empty; pachd still answers a health check.
- Nothing stored changes on an error: the repos, their branches and heads, the pipelines
  (snapshot) and, for ModifyFile, the files of the commit written to are as before.
- S3 (raw HTTP over a socket, so nothing in between tidies the request): an HTTP answer
  within the deadline, no 5xx but 501 NotImplemented, an XML error document with a Code for
  every error with a body; the gateway still lists buckets afterwards.
`stats` counts the cases each kind ran and the error codes seen (the long run reports them).
"""
from __future__ import annotations

import collections
import json
import socket
import string
from pathlib import Path
from typing import Optional

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import strategies as st

from proto.pfs_v2 import pfs_pb2 as pb
from proto.pfs_v2 import pfs_pb2_grpc
from proto.pps_v2 import pps_pb2, pps_pb2_grpc
from tests.reliability.harness import commit_pb, repo_pb, branch_pb

CALL = 20.0
CLIENT_CODES = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ALREADY_EXISTS,
                grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.OUT_OF_RANGE,
                grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.ABORTED}
stats: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)


class BadAnswer(AssertionError):
    pass


# ---- strategies ----------------------------------------------------------------------------------
TRICKY = ["", ".", "..", "/", "//", "a/b", "a b", "master^2", "master~1", "a.b", "a..b", "^", "~", "@",
          "x" * 300, "\x00", "a\x00b", "ü", "\u202e", "-a", "_", "a:b", "a=b", "*", "?", "[", "]",
          "{a,b}", "\\", "\n", "%2F", "master^", "master.1", "master^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
          "0" * 32, "f" * 32, "master.-1", "master^-1", "master~99999999999999999999", "a" * 64, "a" * 63]
text = st.text(max_size=80)
tricky = st.sampled_from(TRICKY)
names = st.one_of(tricky, text, st.text(alphabet=string.ascii_letters + string.digits + "-_.", min_size=1, max_size=70))
paths = st.one_of(tricky, text, st.lists(st.one_of(tricky, text, st.sampled_from(["a", "b", "d"])), max_size=5)
                  .map(lambda parts: "/".join(parts)))
glob_chars = "*?[]{}!,\\/-ab^."
globs = st.one_of(tricky, text, st.text(alphabet=glob_chars, max_size=30))
ref_chars = "ab@:=.^~-_/0123456789master" + "f"
refs = st.one_of(tricky, text, st.text(alphabet=ref_chars, max_size=40),
                 st.tuples(st.sampled_from(["master", "open", "nope", ""]), st.sampled_from(["^", "~", ".", "^^"]),
                           st.integers(-5, 10 ** 20)).map(lambda t: f"{t[0]}{t[1]}{t[2]}"))
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.floats(allow_nan=False),
                      text, tricky)
json_any = st.recursive(json_leaf, lambda ch: st.one_of(st.lists(ch, max_size=4),
                                                        st.dictionaries(text, ch, max_size=4)), max_leaves=12)
SPEC_KEYS = ["pipeline", "transform", "input", "parallelism_spec", "datum_tries", "output_branch",
             "resource_requests", "datum_timeout", "job_timeout", "s3_out", "spout", "service", "egress",
             "autoscaling", "reprocess_spec", "datum_set_spec", "scheduling_spec", "pod_patch", "tolerations",
             "metadata", "sidecar_resource_limits", "salt", "description", "update"]
INPUT_KEYS = ["pfs", "cross", "union", "join", "group", "cron"]
PFS_KEYS = ["repo", "glob", "branch", "commit", "name", "join_on", "group_by", "lazy", "empty_files",
            "s3", "outer_join", "trigger", "project", "repo_type"]


def _valid_spec(name: str = "fzp") -> dict:
    return {"pipeline": {"name": name}, "transform": {"cmd": ["sh", "-c", "cp /pfs/fz/* /pfs/out/"]},
            "input": {"pfs": {"repo": "fz", "glob": "/*"}}}


@st.composite
def specs(draw) -> str:
    """Pipeline specs: a valid spec with random keys replaced, random inputs, or plain junk;
    sent as JSON or (through pachctl's parser) YAML."""
    spec = _valid_spec(draw(st.one_of(st.just("fzp"), names)))
    for _ in range(draw(st.integers(0, 4))):
        spec[draw(st.sampled_from(SPEC_KEYS))] = draw(json_any)
    if draw(st.booleans()):
        leaf = {k: draw(json_any) for k in draw(st.lists(st.sampled_from(PFS_KEYS), max_size=4))}
        leaf.setdefault("repo", draw(st.one_of(st.just("fz"), names)))
        kind = draw(st.sampled_from(INPUT_KEYS))
        spec["input"] = {kind: leaf if kind in ("pfs", "cron") else [{"pfs": leaf}, draw(json_any)]}
    doc = draw(st.one_of(st.just(spec), json_any))
    form = draw(st.sampled_from(["json", "yaml", "raw"]))
    if form == "json":
        return json.dumps(doc)
    if form == "yaml":
        return "yaml:" + yaml.safe_dump(doc)
    return "raw:" + draw(st.one_of(text, st.just(json.dumps(doc)[:draw(st.integers(0, 40))])))


@st.composite
def modify_streams(draw) -> list:
    """(kind, args) steps of a ModifyFile stream into the open commit or onto a branch."""
    steps = []
    if draw(st.integers(0, 9)) > 0:
        steps.append(("set_commit", draw(st.sampled_from(["open-commit", "branch:open", "branch:master",
                                                          "branch:nope", "bad-id", "finished"]))))
    for _ in range(draw(st.integers(0, 6))):
        k = draw(st.sampled_from(["add", "add", "url", "delete", "copy", "set_commit"]))
        if k == "add":
            steps.append(("add", draw(paths), draw(st.binary(max_size=300)), draw(st.one_of(st.just(""), text))))
        elif k == "url":
            steps.append(("url", draw(paths), draw(st.sampled_from(["", "notaurl", "ftp://x/y", "file:///no/such",
                                                                      "http://", "s3://", "gopher://a"]))))
        elif k == "delete":
            steps.append(("delete", draw(paths)))
        elif k == "copy":
            steps.append(("copy", draw(paths), draw(paths), draw(st.sampled_from(["master", "open", "nope"]))))
        else:
            steps.append(("set_commit", draw(st.sampled_from(["open-commit", "bad-id", "branch:master"]))))
    return steps


HTTP_METHODS = ["GET", "PUT", "POST", "DELETE", "HEAD", "OPTIONS", "PATCH", "BREW", "G\x00T", ""]
BUCKETS = ["master.fz", "fz", "open.fz", "nope.fz", "master.fz.default", "master.fz.nope", "a.b.c.d.e",
           "", "..", "%00", "x" * 300]
QUERIES = ["", "uploads", "uploadId=zz", "uploadId=zz&partNumber=1", "partNumber=0&uploadId=", "list-type=2",
           "list-type=2&max-keys=-1", "max-keys=abc", "list-type=2&continuation-token=%%%", "delete",
           "versioning", "location", "prefix=%ff&delimiter=", "marker=\x00", "versionId=1", "acl", "tagging",
           "uploads&prefix=a", "partNumber=99999999999999999999&uploadId=x"]
HEADERS = st.one_of(
    st.tuples(st.just("Range"), st.one_of(text, st.sampled_from(["bytes=", "bytes=5-1", "bytes=-0", "bytes=0-",
                                                                  "bytes=99999999999999999999-", "bytes=1-2,3-4",
                                                                  "bytes=-99999999999999999999", "items=0-1"]))),
    st.tuples(st.just("Authorization"), st.one_of(text, st.sampled_from([
        "AWS4-HMAC-SHA256", "AWS4-HMAC-SHA256 Credential=/,SignedHeaders=,Signature=",
        "AWS a:b", "AWS4-HMAC-SHA256 Credential=x/20200101/us-east-1/s3/aws4_request, SignedHeaders=host, "
        "Signature=zz"]))),
    st.tuples(st.sampled_from(["Content-MD5", "x-amz-content-sha256", "x-amz-copy-source", "x-amz-date",
                               "x-amz-copy-source-range", "If-Match", "If-None-Match", "Content-Type",
                               "x-amz-decoded-content-length", "Content-Encoding", "Expect"]),
              st.one_of(text, tricky, st.sampled_from(["aws-chunked", "100-continue", "/master.fz/a",
                                                       "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "bytes=0-1"]))),
    st.tuples(st.just("X-Huge"), st.integers(1, 64).map(lambda k: "h" * (k * 1024))),
)


@st.composite
def s3_requests(draw) -> bytes:
    method = draw(st.sampled_from(HTTP_METHODS))
    bucket = draw(st.one_of(st.sampled_from(BUCKETS), names))
    key = draw(st.one_of(st.just(""), st.sampled_from(["a", "d/x", "a/../b", "%2e%2e/x", "a//b", "a/"]), paths))
    target = "/" + bucket + ("/" + key if key else "")
    target = "".join(c if 32 < ord(c) < 127 and c not in " #" else "%%%02X" % (ord(c) & 0xFF) for c in target)
    q = draw(st.sampled_from(QUERIES))
    if q:
        target += "?" + q
    body = draw(st.one_of(st.binary(max_size=200), st.sampled_from([
        b"<Delete><Object><Key>a</Key></Object>", b"<Delete><Object><Key>../x</Key></Object></Delete>",
        b"<CompleteMultipartUpload><Part><PartNumber>x</PartNumber></Part></CompleteMultipartUpload>",
        b"<?xml version='1.0'?><!DOCTYPE a [<!ENTITY b SYSTEM 'file:///etc/passwd'>]><Delete>&b;</Delete>",
        b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1500 + b"</Delete>", b"<<<>>>", b"\xff\xfe"])))
    headers = dict(draw(st.lists(HEADERS, max_size=3)))
    length = draw(st.sampled_from(["exact", "exact", "short", "long", "none", "junk", "chunked"]))
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    for k, v in headers.items():
        v = "".join(c for c in v if c not in "\r\n")
        lines.append(f"{k}: {v}")
    if length == "exact":
        lines.append(f"Content-Length: {len(body)}")
    elif length == "short":  # the body is cut short: the connection closes before it is all sent
        lines.append(f"Content-Length: {len(body) + 100}")
    elif length == "long":
        lines.append(f"Content-Length: {max(0, len(body) - 5)}")
    elif length == "junk":
        lines.append("Content-Length: -1")
    elif length == "chunked":
        lines.append("Transfer-Encoding: chunked")
        body = b"%x\r\n" % len(body) + body + b"\r\n" + draw(st.sampled_from([b"0\r\n\r\n", b"zz\r\n", b""]))
    lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")
    return head + body


# ---- the target ---------------------------------------------------------------------------------
class Target:
    def __init__(self, root: Path):
        from pachd.server import Pachd
        self.pd = Pachd(root, port=0, host="127.0.0.1", s3_gateway_port=0).start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.pd.port}")
        self.pfs = pfs_pb2_grpc.APIStub(self.channel)
        self.pps = pps_pb2_grpc.APIStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.s3_port = self.pd.s3_gateway.port
        self._seed()

    def _seed(self) -> None:
        self.pfs.CreateRepo(pb.CreateRepoRequest(repo=repo_pb("fz")), timeout=CALL)
        for files in ({"/a": b"one", "/d/x": b"two"}, {"/b": b"three"}):
            self.pfs.ModifyFile(iter([pb.ModifyFileRequest(set_commit=commit_pb("fz", branch="master"))] + [
                pb.ModifyFileRequest(add_file=pb.AddFile(path=p, raw={"value": v})) for p, v in files.items()]),
                timeout=CALL)
        self.finished = self.pfs.InspectBranch(pb.InspectBranchRequest(branch=branch_pb("fz")), timeout=CALL).head.id
        self.open = self.pfs.StartCommit(pb.StartCommitRequest(branch=branch_pb("fz", "open")), timeout=CALL).id

    def close(self) -> None:
        self.channel.close()
        self.pd.stop(grace=0.5)

    # ---- state -----------------------------------------------------------------------------------
    def snapshot(self) -> tuple:
        repos = []
        for ri in self.pfs.ListRepo(pb.ListRepoRequest(type="all"), timeout=CALL):
            br = sorted((b.branch.name, b.head.id) for b in self.pfs.ListBranch(pb.ListBranchRequest(repo=ri.repo),
                                                                                 timeout=CALL))
            repos.append((ri.repo.project.name, ri.repo.name, ri.repo.type, tuple(br)))
        projects = sorted(p.project.name for p in self.pfs.ListProject(pb.ListProjectRequest(), timeout=CALL))
        pipelines = sorted(p.pipeline.name for p in self.pps.ListPipeline(pps_pb2.ListPipelineRequest(), timeout=CALL))
        return tuple(sorted(repos)), tuple(projects), tuple(pipelines)

    def commit_files(self, commit_id: str) -> dict:
        req = pb.GlobFileRequest(commit=commit_pb("fz", commit_id), pattern="**")
        return {fi.file.path: fi.hash for fi in self.pfs.GlobFile(req, timeout=CALL)}

    def alive(self) -> None:
        r = self.health.Check(health_pb2.HealthCheckRequest(), timeout=CALL)
        if r.status != health_pb2.HealthCheckResponse.SERVING:
            raise BadAnswer("pachd stopped serving")


def _call(kind: str, fn, *a, **kw):
    """Run one gRPC call; (result, None) or (None, RpcError); a bad error code raises."""
    try:
        r = fn(*a, timeout=CALL, **kw)
        if hasattr(r, "__iter__") and not hasattr(r, "ListFields"):
            r = list(r)
        stats[kind]["OK"] += 1
        return r, None
    except grpc.RpcError as e:
        code = e.code()
        stats[kind][code.name] += 1
        details = e.details() or ""
        if code not in CLIENT_CODES:
            raise BadAnswer(f"{kind}: {code.name}: {details}") from None
        if not details.strip() or "Traceback" in details:
            raise BadAnswer(f"{kind}: {code.name} with an unclear message {details!r}") from None
        return None, e


def _same(t: Target, before: tuple, what: str) -> None:
    after = t.snapshot()
    if after != before:
        raise BadAnswer(f"{what} failed but changed what is stored:\nbefore {before}\nafter  {after}")


# ---- checks per kind ---------------------------------------------------------------------------------
def check_name(t: Target, name: str) -> None:
    stats["names"]["cases"] += 1
    before = t.snapshot()
    _, e1 = _call("names", t.pfs.CreateRepo, pb.CreateRepoRequest(repo=repo_pb(name)))
    if e1 is None:
        _call("names", t.pfs.DeleteRepo, pb.DeleteRepoRequest(repo=repo_pb(name)))
    _, e2 = _call("names", t.pfs.CreateBranch, pb.CreateBranchRequest(
        branch=branch_pb("fz", name), head=commit_pb("fz", t.finished)))
    if e2 is None:
        _call("names", t.pfs.DeleteBranch, pb.DeleteBranchRequest(branch=branch_pb("fz", name)))
    _, e3 = _call("names", t.pfs.CreateProject, pb.CreateProjectRequest(project=pb.Project(name=name)))
    if e3 is None:
        _call("names", t.pfs.DeleteProject, pb.DeleteProjectRequest(project=pb.Project(name=name)))
    _same(t, before, f"names {name!r}")


def check_path(t: Target, path: str) -> None:
    stats["paths"]["cases"] += 1
    f = pb.File(commit=commit_pb("fz", t.finished), path=path)
    _call("paths", t.pfs.InspectFile, pb.InspectFileRequest(file=f))
    _call("paths", t.pfs.ListFile, pb.ListFileRequest(file=f))
    _call("paths", t.pfs.GetFile, pb.GetFileRequest(file=f))
    _call("paths", t.pfs.GetFileTAR, pb.GetFileRequest(file=f))
    _call("paths", t.pfs.WalkFile, pb.WalkFileRequest(file=f))
    _call("paths", t.pfs.DiffFile, pb.DiffFileRequest(new_file=f))
    before, files = t.snapshot(), t.commit_files(t.open)
    _, e = _call("paths", t.pfs.ModifyFile, iter([
        pb.ModifyFileRequest(set_commit=commit_pb("fz", t.open)),
        pb.ModifyFileRequest(add_file=pb.AddFile(path=path, raw={"value": b"fuzz"}))]))
    if e is not None:
        _same(t, before, f"put of path {path!r}")
        if t.commit_files(t.open) != files:
            raise BadAnswer(f"put of path {path!r} failed but changed the open commit")
    else:
        _call("paths", t.pfs.ModifyFile, iter([pb.ModifyFileRequest(set_commit=commit_pb("fz", t.open)),
                                               pb.ModifyFileRequest(delete_file=pb.DeleteFile(path=path))]))


def check_glob(t: Target, pattern: str) -> None:
    stats["globs"]["cases"] += 1
    _call("globs", t.pfs.GlobFile, pb.GlobFileRequest(commit=commit_pb("fz", t.finished), pattern=pattern))
    from pfs.errors import PfsError
    from pfs.glob import compile_glob
    try:
        compile_glob(pattern)
    except PfsError:
        pass


def check_ref(t: Target, ref: str) -> None:
    stats["refs"]["cases"] += 1
    _call("refs", t.pfs.InspectCommit, pb.InspectCommitRequest(commit=commit_pb("fz", ref)))
    _call("refs", t.pfs.InspectCommit, pb.InspectCommitRequest(commit=commit_pb("fz", branch=ref)))
    _call("refs", t.pfs.InspectBranch, pb.InspectBranchRequest(branch=branch_pb("fz", ref)))
    _call("refs", t.pfs.ListFile, pb.ListFileRequest(file=pb.File(commit=commit_pb("fz", ref), path="/")))
    _call("refs", t.pfs.ListCommit, pb.ListCommitRequest(repo=repo_pb("fz"), to=commit_pb("fz", ref)))
    from pachctl import refs as cref
    for arg in (ref, f"fz@{ref}", f"fz@{ref}:/a", f"{ref}@master"):
        try:
            cref.parse_file(arg)
            cref.parse_commit(arg)
        except ValueError:
            pass


def _mf(t: Target, kind: str, arg) -> pb.ModifyFileRequest:
    if kind == "set_commit":
        if arg == "open-commit":
            c = commit_pb("fz", t.open)
        elif arg == "finished":
            c = commit_pb("fz", t.finished)
        elif arg.startswith("branch:"):
            c = commit_pb("fz", branch=arg[7:])
        else:
            c = commit_pb("fz", arg)
        return pb.ModifyFileRequest(set_commit=c)
    raise AssertionError(kind)


def check_modify(t: Target, steps: list) -> None:
    stats["modify"]["cases"] += 1
    reqs = []
    for s in steps:
        if s[0] == "set_commit":
            reqs.append(_mf(t, "set_commit", s[1]))
        elif s[0] == "add":
            reqs.append(pb.ModifyFileRequest(add_file=pb.AddFile(path=s[1], raw={"value": s[2]}, datum=s[3])))
        elif s[0] == "url":
            reqs.append(pb.ModifyFileRequest(add_file=pb.AddFile(path=s[1], url=pb.AddFile.URLSource(URL=s[2]))))
        elif s[0] == "delete":
            reqs.append(pb.ModifyFileRequest(delete_file=pb.DeleteFile(path=s[1])))
        elif s[0] == "copy":
            src = pb.File(commit=commit_pb("fz", branch=s[3]), path=s[2])
            reqs.append(pb.ModifyFileRequest(copy_file=pb.CopyFile(dst=s[1], src=src)))
    before, files = t.snapshot(), t.commit_files(t.open)
    _, e = _call("modify", t.pfs.ModifyFile, iter(reqs))
    if e is not None:
        _same(t, before, "a ModifyFile stream")
        if t.commit_files(t.open) != files:
            raise BadAnswer(f"a ModifyFile stream failed ({e.details()}) but changed the open commit")
    if t.snapshot() != before:  # a stream that succeeded onto a branch: undo for the next case
        _restore(t, before)


def _restore(t: Target, before: tuple) -> None:
    """Put branches and projects back as they were in `before` (a write that succeeded moved
    a head or made a branch)."""
    want = {(r[0], r[1], r[2]): dict(r[3]) for r in before[0]}
    now = t.snapshot()
    for project, repo, rtype, branches in now[0]:
        if (project, repo, rtype) not in want:
            t.pfs.DeleteRepo(pb.DeleteRepoRequest(repo=repo_pb(repo, project, rtype), force=True), timeout=CALL)
            continue
        old = want[(project, repo, rtype)]
        for b, head in branches:
            br = pb.Branch(repo=repo_pb(repo, project, rtype), name=b)
            if b not in old:
                t.pfs.DeleteBranch(pb.DeleteBranchRequest(branch=br, force=True), timeout=CALL)
            elif head != old[b]:
                t.pfs.CreateBranch(pb.CreateBranchRequest(branch=br, head=pb.Commit(
                    repo=repo_pb(repo, project, rtype), id=old[b])), timeout=CALL)
    for p in set(now[1]) - set(before[1]):
        t.pfs.DeleteProject(pb.DeleteProjectRequest(project=pb.Project(name=p), force=True), timeout=CALL)
    if t.snapshot() != before:
        raise BadAnswer(f"could not put the fixture back:\n{before}\n{t.snapshot()}")


def check_spec(t: Target, doc: str) -> None:
    stats["specs"]["cases"] += 1
    from pfs.errors import InvalidArgument
    from pps.spec import parse_specs
    if doc.startswith("yaml:") or doc.startswith("raw:"):
        try:
            texts = [json.dumps(s) for s in parse_specs(doc.split(":", 1)[1])]
        except InvalidArgument:
            stats["specs"]["parse-error"] += 1
            texts = [doc.split(":", 1)[1]]  # pachd must reject it too
        except (ValueError, TypeError, RecursionError) as e:
            raise BadAnswer(f"parse_specs raised {type(e).__name__}: {e}") from None
    else:
        texts = [doc]
    before = t.snapshot()
    for j in texts[:3]:
        _call("specs", t.pps.CreatePipelineV2, pps_pb2.CreatePipelineV2Request(
            create_pipeline_request_json=j, dry_run=True))
    _same(t, before, "a dry-run pipeline creation")


def s3_exchange(t: Target, raw: bytes, deadline: float = 15.0) -> tuple[int, bytes]:
    """Send raw bytes, read the whole answer; (status, body) or raise BadAnswer."""
    with socket.create_connection(("127.0.0.1", t.s3_port), timeout=deadline) as s:
        try:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the gateway may answer (and close) before reading everything
        buf = b""
        try:
            while True:
                piece = s.recv(65536)
                if not piece:
                    break
                buf += piece
        except socket.timeout:
            raise BadAnswer(f"the S3 gateway did not answer within {deadline}s:\n{raw[:300]!r}") from None
        except ConnectionResetError:
            pass
    if not buf:
        return 0, b""  # closed without an answer (a request it could not parse at all)
    line = buf.split(b"\r\n", 1)[0]
    parts = line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise BadAnswer(f"not an HTTP answer: {line[:200]!r}")
    return int(parts[1]), buf.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in buf else b""


def check_s3(t: Target, raw: bytes) -> None:
    stats["s3"]["cases"] += 1
    before = t.snapshot()
    status, body = s3_exchange(t, raw)
    stats["s3"][str(status)] += 1
    method = raw.split(b" ", 1)[0]
    if status >= 500 and status != 501:
        raise BadAnswer(f"S3 gateway answered {status}: {body[:300]!r}\nto {raw[:400]!r}")
    if status >= 400 and body and method != b"HEAD" and b"<Code>" not in body:
        raise BadAnswer(f"S3 error {status} without an error document: {body[:300]!r}\nto {raw[:400]!r}")
    if status >= 400 or status == 0:
        _same(t, before, f"an S3 request answered {status}")
    st2, body2 = s3_exchange(t, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    if st2 != 200 or b"ListAllMyBucketsResult" not in body2:
        raise BadAnswer(f"the S3 gateway stopped listing buckets ({st2}) after {raw[:400]!r}")
    # keep the fixture: a write that succeeded is undone by moving the branches back
    if t.snapshot() != before:
        _restore(t, before)


def report() -> dict:
    return {k: dict(v) for k, v in stats.items()}
