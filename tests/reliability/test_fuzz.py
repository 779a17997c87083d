"""R3 (CI size): hypothesis sends bad input of every kind to one pachd; every answer is a clear
client error (or OK), nothing stored changes on an error, pachd and its S3 gateway keep
serving. FUZZ_EXAMPLES sets the cases per kind (default 40 here; the long run,
`scripts/reliability.py r3`, uses 1000). See tests/reliability/fuzz.py for the checks."""
from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings

from tests.reliability import fuzz

N = int(os.environ.get("FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=N, deadline=None, database=None, derandomize=os.environ.get("FUZZ_RANDOM") != "1",
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    t = fuzz.Target(tmp_path_factory.mktemp("fuzz"))
    try:
        yield t
        t.alive()
    finally:
        t.close()
        out = os.environ.get("FUZZ_REPORT")
        if out:
            with open(out, "w") as f:
                json.dump(fuzz.report(), f)


@FUZZ
@given(name=fuzz.names)
def test_names(target, name):
    fuzz.check_name(target, name)


@FUZZ
@given(path=fuzz.paths)
def test_paths(target, path):
    fuzz.check_path(target, path)


@FUZZ
@given(pattern=fuzz.globs)
def test_globs(target, pattern):
    fuzz.check_glob(target, pattern)


@FUZZ
@given(ref=fuzz.refs)
def test_refs(target, ref):
    fuzz.check_ref(target, ref)


@FUZZ
@given(steps=fuzz.modify_streams())
def test_modify_file_streams(target, steps):
    fuzz.check_modify(target, steps)


@FUZZ
@given(doc=fuzz.specs())
def test_pipeline_specs(target, doc):
    fuzz.check_spec(target, doc)


@FUZZ
@given(raw=fuzz.s3_requests())
def test_raw_s3_requests(target, raw):
    fuzz.check_s3(target, raw)


# ---- regressions: what the fuzzing found ------------------------------------------------------------
@pytest.mark.parametrize("doc,kind", [("null", "null"), ("[]", "list"), ("5", "int"), ('"spec"', "str")])
def test_a_spec_that_is_not_an_object_is_invalid_argument(target, doc, kind):
    """Found by test_pipeline_specs: CreatePipelineV2 answered INTERNAL (AttributeError)."""
    import grpc
    from proto.pps_v2 import pps_pb2
    with pytest.raises(grpc.RpcError) as ei:
        target.pps.CreatePipelineV2(pps_pb2.CreatePipelineV2Request(create_pipeline_request_json=doc), timeout=20)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ei.value.details() == f"pipeline spec must be a JSON object, not {kind}: {doc}"


@pytest.mark.parametrize("spec", [{"pipeline": 5}, {"pipeline": {"name": "p", "project": "x"}}, {"pipeline": None}])
def test_a_spec_with_a_pipeline_of_the_wrong_shape_is_invalid_argument(target, spec):
    import grpc
    from proto.pps_v2 import pps_pb2
    with pytest.raises(grpc.RpcError) as ei:
        target.pps.CreatePipelineV2(pps_pb2.CreatePipelineV2Request(create_pipeline_request_json=json.dumps(spec)),
                                    timeout=20)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT, ei.value.details()


@pytest.mark.parametrize("line,status,code", [
    (b" /master.fz HTTP/1.1", 400, b"InvalidRequest"),     # no method: was a bare HTML body, no status line
    (b"GET /master.fz HTTP/9.9", 505, b"HttpVersionNotSupported"),
    (b"BREW /master.fz HTTP/1.1", 501, b"NotImplemented"),  # was an HTML page
    (b"GET /" + b"a" * 70000 + b" HTTP/1.1", 414, b"InvalidURI"),
])
def test_requests_http_server_rejects_get_s3_error_documents(target, line, status, code):
    """Found by test_raw_s3_requests: errors raised by http.server itself were HTML (or, for a
    broken request line, a body without a status line)."""
    got, body = fuzz.s3_exchange(target, line + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert got == status
    assert body.startswith(b"<?xml") and b"<Code>" + code + b"</Code>" in body, body[:300]


@pytest.mark.parametrize("url,what", [("http://", "host"), ("https:///x", "host"), ("s3://", "bucket"),
                                      ("s3:///key", "bucket")])
def test_a_url_without_host_or_bucket_is_invalid_argument(target, url, what):
    """Found by the long run of test_modify_file_streams: AddFile with URL "http://" answered
    UNAVAILABLE ("could not fetch http://: no host given"), as if a server were down."""
    import grpc
    from proto.pfs_v2 import pfs_pb2 as pb
    from tests.reliability.harness import commit_pb
    before = target.commit_files(target.open)
    with pytest.raises(grpc.RpcError) as ei:
        target.pfs.ModifyFile(iter([pb.ModifyFileRequest(set_commit=commit_pb("fz", target.open)),
                                    pb.ModifyFileRequest(add_file=pb.AddFile(path="/u", url=pb.AddFile.URLSource(URL=url)))]),
                              timeout=20)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ei.value.details().startswith(f"URL {url!r} names no {what}"), ei.value.details()
    assert target.commit_files(target.open) == before
