"""Every public method of pachyderm-sdk 2.12.2's Client (216 stub and helper methods over 14
services) and of python-pachyderm 7.6.0's Client is called once against pachd. A call may
fail as Pachyderm's own would (NOT_FOUND, INVALID_ARGUMENT, FAILED_PRECONDITION naming why,
and Pachyderm's own UNIMPLEMENTED answers of an unlicensed cluster such as "the auth service
is not activated"), but never with gRPC's "method not found"/"not implemented" and never
with INTERNAL (a crash in pachd).

Methods are found by introspection; a method needing arguments must be listed in ARGS (so a
client upgrade that adds methods makes this test fail until they are covered)."""
from __future__ import annotations

import inspect
import itertools
import textwrap
import threading

import grpc
import pytest
from pachyderm_sdk.api import pfs, pps, transaction

from tests.compat.helpers import run_pp

# Pachyderm's own answers that use the UNIMPLEMENTED code (an unlicensed cluster, auth off)
PACHYDERMS_UNIMPLEMENTED = ("the auth service is not activated",
                            "cluster does not have enterprise features enabled",
                            "cluster ID or secret is not valid")  # the license server's (suffix)
SERVICES = ("admin", "auth", "debug", "enterprise", "identity", "license", "logs", "metadata", "pjs",
            "pfs", "pps", "snapshot", "storage", "transaction")
# run last: they reset the cluster
LAST = {("pfs", "delete_all"), ("pps", "delete_all"), ("transaction", "delete_all")}


def _repo():
    return pfs.Repo(name="every", type="user", project=pfs.Project(name="default"))


def _commit():
    return pfs.Commit(repo=_repo(), branch=pfs.Branch(repo=_repo(), name="master"))


def _file(path="/a"):
    return pfs.File(commit=_commit(), path=path)


def ARGS(tmp_path):
    src = tmp_path / "up.txt"
    src.write_bytes(b"from a file")
    return {
        ("pjs", "process_queue"): dict(request_iterator=iter(())),
        ("pfs", "branch_exists"): dict(branch=pfs.Branch(repo=_repo(), name="master")),
        ("pfs", "commit_exists"): dict(commit=_commit()),
        ("pfs", "copy_file"): dict(commit=_commit(), src=_file(), dst="/copy"),
        ("pfs", "create_file_set"): dict(request_iterator=iter(())),
        ("pfs", "delete_file"): dict(commit=_commit(), path="/nothing"),
        ("pfs", "modify_file"): dict(request_iterator=iter(())),
        ("pfs", "path_exists"): dict(file=_file()),
        ("pfs", "pfs_file"): dict(file=_file()),
        ("pfs", "pfs_tar_file"): dict(file=_file()),
        ("pfs", "project_exists"): dict(project=pfs.Project(name="default")),
        ("pfs", "put_file_from_bytes"): dict(commit=_commit(), path="/b", data=b"b"),
        ("pfs", "put_file_from_file"): dict(commit=_commit(), path="/c", file=open(src, "rb")),
        ("pfs", "put_file_from_url"): dict(commit=_commit(), path="/d", url=src.as_uri()),
        ("pfs", "put_files"): dict(commit=_commit(), source=str(tmp_path), path="/dir"),
        ("pfs", "repo_exists"): dict(repo=_repo()),
        ("pfs", "wait_commit"): dict(commit=_commit()),
        ("pfs", "wait_commit_set"): dict(commit_set=pfs.CommitSet(id="0" * 32)),
        ("pfs", "commit"): dict(branch=pfs.Branch(repo=_repo(), name="master")),
        ("pps", "create_datum"): dict(request_iterator=iter([pps.CreateDatumRequest(
            start=pps.StartCreateDatumRequest(input=pps.Input(pfs=pps.PfsInput(repo="every", glob="/*"))))])),
        ("pps", "create_secret"): dict(name="every-secret", data={"k": "v"}),
        ("pps", "generate_datums"): dict(input_spec=pps.Input(pfs=pps.PfsInput(repo="every", glob="/*")),
                                         batch_size=10),
        ("pps", "job_exists"): dict(job=pps.Job(pipeline=pps.Pipeline(name="nope"), id="0" * 32)),
        ("pps", "pipeline_exists"): dict(pipeline=pps.Pipeline(name="nope")),
        ("storage", "assemble_fileset"): dict(fileset="0" * 32, path="/", destination=str(tmp_path / "asm")),
        ("storage", "create_fileset"): dict(request_iterator=iter(())),
        ("storage", "fetch_chunks"): dict(fileset="0" * 32, path="/"),
        ("transaction", "transaction_exists"): dict(transaction=transaction.Transaction(id="0" * 32)),
        # blocking calls get a target that answers at once
        ("pfs", "subscribe_commit"): dict(repo=_repo(), all=False),
        ("pps", "subscribe_job"): dict(),
    }


def _run(fn, kw):
    """Call and drain (at most a few items of) the answer; returns the exception or None."""
    out: list = []

    def go():
        try:
            r = fn(**kw)
            if hasattr(r, "__enter__") and not isinstance(r, (str, bytes)) and hasattr(r, "__exit__") \
                    and not hasattr(r, "read"):
                out.append(None)
                return
            if hasattr(r, "read"):
                r.read()
                r.close()
            elif hasattr(r, "__next__") or inspect.isgenerator(r):
                list(itertools.islice(r, 3))
            out.append(None)
        except BaseException as e:  # noqa: BLE001 - classified by the caller
            out.append(e)
    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(30)
    return out[0] if out else TimeoutError("no answer in 30 s")


def _verdict(e) -> str:
    """'' when acceptable, else why not."""
    if e is None:
        return ""
    err = e
    while err is not None and not isinstance(err, grpc.RpcError):
        err = err.__cause__ or err.__context__
    if err is None:
        if isinstance(e, TimeoutError):
            return "no answer in 30 s"
        return ""  # a client-side refusal (ValueError & co.): no RPC problem
    code, details = err.code(), err.details() or ""
    if code == grpc.StatusCode.UNIMPLEMENTED and not details.endswith(PACHYDERMS_UNIMPLEMENTED):
        return f"UNIMPLEMENTED: {details}"
    if code == grpc.StatusCode.INTERNAL:
        return f"INTERNAL: {details}"
    return ""


def test_every_pachyderm_sdk_method_is_answered(pachd_pps, tmp_path):
    from tests.sdk_clients import sdk_clients
    args = ARGS(tmp_path)
    with sdk_clients() as make:
        c = make(pachd_pps.port)
        c.pfs.create_repo(repo=_repo())
        with c.pfs.commit(branch=pfs.Branch(repo=_repo(), name="master")) as cm:
            cm.put_file_from_bytes(path="/a", data=b"a")
        calls, missing = [], []
        for svc in SERVICES:
            stub = getattr(c, svc)
            for name, fn in inspect.getmembers(type(stub), inspect.isfunction):
                if name.startswith("_"):
                    continue
                params = list(inspect.signature(fn).parameters.values())[1:]
                required = [p for p in params if p.default is inspect.Parameter.empty
                            and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
                if required and (svc, name) not in args:
                    missing.append(f"{svc}.{name}")
                    continue
                calls.append((svc, name, getattr(stub, name), args.get((svc, name), {})))
        assert not missing, f"methods needing arguments not covered by ARGS: {missing}"
        calls.sort(key=lambda x: (x[0], x[1]) in LAST)
        assert len(calls) >= 200
        bad = {}
        for svc, name, fn, kw in calls:
            why = _verdict(_run(fn, kw))
            if why:
                bad[f"{svc}.{name}"] = why
        for v in args.values():
            f = v.get("file")
            if hasattr(f, "close"):
                f.close()
        assert bad == {}, "\n".join(f"{k}: {v}" for k, v in sorted(bad.items()))
        # the plain Client methods
        assert c.get_version().major == 2


PP_SCRIPT = textwrap.dedent('''
    import inspect, itertools, sys, tempfile, threading, grpc, python_pachyderm
    from python_pachyderm.service import pps_proto, pfs_proto
    c = python_pachyderm.Client(host="127.0.0.1", port=int(sys.argv[1]))
    c.create_repo("every")
    with c.commit("every", "master") as cm:
        c.put_file_bytes(cm, "/a", b"a")
    tmp = tempfile.mkdtemp()
    open(tmp + "/f", "wb").write(b"f")
    C = ("every", "master")
    ARGS = {
        "activate_auth": dict(root_token="x"), "activate_enterprise": dict(license_server="grpc://127.0.0.1:1", id="x", secret="s"),
        "activate_license": dict(activation_code="x"), "add_cluster": dict(id="c", address="grpc://x:1"),
        "authenticate_id_token": dict(id_token="x"), "authenticate_oidc": dict(oidc_state="x"),
        "authorize": dict(resource=None), "commit": dict(repo_name="every", branch="master"),
        "copy_file": dict(source_commit=C, source_path="/a", dest_commit=C, dest_path="/b"),
        "create_branch": dict(repo_name="every", branch_name="dev"),
        "create_idp_connector": dict(connector=None), "create_oidc_client": dict(client=None),
        "create_pipeline": dict(pipeline_name="pp", transform=pps_proto.Transform(cmd=["true"]),
                                input=pps_proto.Input(pfs=pps_proto.PFSInput(repo="every", glob="/"))),
        "create_pipeline_from_request": dict(req=pps_proto.CreatePipelineRequest()),
        "create_project": dict(project_name="p2"), "create_repo": dict(repo_name="every2"),
        "create_secret": dict(secret_name="s1", data={"k": "v"}),
        "delete_branch": dict(repo_name="every", branch_name="nope"), "delete_cluster": dict(id="c"),
        "delete_commit": dict(commit=("every", "0" * 32)), "delete_file": dict(commit=C, path="/zz"),
        "delete_idp_connector": dict(connector_id="x"), "delete_job": dict(pipeline_name="pp", job_id="0" * 32),
        "delete_oidc_client": dict(client_id="x"), "delete_pipeline": dict(pipeline_name="nope"),
        "delete_project": dict(project_name="nope"), "delete_repo": dict(repo_name="nope"),
        "delete_secret": dict(secret_name="nope"), "delete_transaction": dict(transaction="0" * 32),
        "delete_user": dict(id="x"), "diff_file": dict(new_commit=C, new_path="/"),
        "drop_commit": dict(commit_id="0" * 32), "extract_auth_tokens": dict(),
        "finish_commit": dict(commit=("every", "0" * 32)), "finish_transaction": dict(transaction="0" * 32),
        "fsck": dict(), "get_file": dict(commit=C, path="/a"), "get_file_tar": dict(commit=C, path="/a"),
        "get_groups": dict(), "get_identity_server_config": dict(),
        "get_idp_connector": dict(name="x"), "get_job_logs": dict(pipeline_name="nope", job_id="0" * 32),
        "get_oidc_client": dict(name="x"), "get_permissions": dict(resource=None),
        "get_permissions_for_principal": dict(resource=None, principal="x"),
        "get_pipeline_logs": dict(pipeline_name="nope"), "get_robot_token": dict(robot="x"),
        "get_role_binding": dict(resource=None), "get_roles_for_permission": dict(permission=0),
        "get_users": dict(group="x"), "glob_file": dict(commit=C, pattern="/*"),
        "inspect_branch": dict(repo_name="every", branch_name="master"), "inspect_commit": dict(commit=C),
        "inspect_datum": dict(pipeline_name="nope", job_id="0" * 32, datum_id="x"),
        "inspect_file": dict(commit=C, path="/a"), "inspect_job": dict(job_id="0" * 32, pipeline_name="nope"),
        "inspect_pipeline": dict(pipeline_name="nope"), "inspect_project": dict(project_name="default"),
        "inspect_repo": dict(repo_name="every"), "inspect_secret": dict(secret_name="nope"),
        "inspect_transaction": dict(transaction="0" * 32), "list_branch": dict(repo_name="every"),
        "list_commit": dict(repo_name="every"), "list_datum": dict(pipeline_name="nope", job_id="0" * 32),
        "list_file": dict(commit=C, path="/"), "modify_file_client": dict(commit=C),
        "modify_members": dict(group="x"), "modify_role_binding": dict(resource=None, principal="x"),
        "put_file_bytes": dict(commit=C, path="/c", value=b"c"),
        "put_file_url": dict(commit=C, path="/d", url="file://" + tmp + "/f"),
        "put_files": dict(commit=C, source_path=tmp, path="/dir"),
        "put_file_file": dict(commit=C, path="/e", source_path=tmp + "/f"),
        "renew_file_set": dict(file_set_id="0" * 32, ttl=60),
        "rerun_pipeline": dict(pipeline_name="nope"), "restart_datum": dict(pipeline_name="nope", job_id="0" * 32),
        "revoke_auth_token": dict(token="x"), "run_cron": dict(pipeline_name="nope"),
        "set_auth_configuration": dict(configuration=None), "set_groups_for_user": dict(username="x", groups=[]),
        "set_identity_server_config": dict(config=None), "squash_commit": dict(commit_id="0" * 32),
        "start_commit": dict(repo_name="every", branch="master"), "start_pipeline": dict(pipeline_name="nope"),
        "stop_job": dict(pipeline_name="nope", job_id="0" * 32), "stop_pipeline": dict(pipeline_name="nope"),
        "subscribe_commit": dict(repo_name="nope", branch="master"),
        "update_cluster": dict(id="c", address="grpc://x:1"), "update_idp_connector": dict(connector=None),
        "update_oidc_client": dict(client=None),
        "wait_commit": dict(commit=("every", cm.id)),  # finished (start_commit leaves master's head open)
        "walk_file": dict(commit=C, path="/"), "path_exists": dict(commit=C, path="/a"),
        "add_file_set": dict(commit=C, file_set_id="0" * 32), "get_file_set": dict(commit=C),
        "compose_file_set": dict(file_set_ids=[]), "shard_file_set": dict(file_set_id="0" * 32),
        "inspect_commit_set": dict(commit_set="0" * 32), "list_commit_set": dict(),
        "squash_commit_set": dict(commit_set="0" * 32), "drop_commit_set": dict(commit_set="0" * 32),
        "batch_transaction": dict(requests=[]), "create_file_set": dict(),
        "run_load_test": dict(), "inspect_cluster": dict(),
        "update_project": dict(project_name="default", description="d"),
        "profile_cpu": dict(duration=__import__("google.protobuf.duration_pb2", fromlist=["x"]).Duration(seconds=1)),
        "find_commits": dict(start=C, file_path="/a"), "query_loki": dict(query="{app=\\"pachd\\"}"),
        "get_kube_events": dict(since=__import__("google.protobuf.duration_pb2", fromlist=["x"]).Duration(seconds=60)),
    }
    # constructors, context managers and close are not RPCs; delete_all runs last
    SKIP = {"close", "delete_all", "new_from_config", "new_from_pachd_address", "new_in_cluster", "transaction",
            "put_file_client"}
    ALLOWED = ("the auth service is not activated", "cluster does not have enterprise features enabled",
               "cluster ID or secret is not valid")
    bad, missing = {}, []
    def run(fn, kw):
        out = []
        def go():
            try:
                r = fn(**kw)
                if hasattr(r, "__next__"):
                    list(itertools.islice(r, 3))
                out.append(None)
            except BaseException as e:
                out.append(e)
        t = threading.Thread(target=go, daemon=True); t.start(); t.join(30)
        return out[0] if out else TimeoutError("no answer in 30 s")
    names = sorted(n for n, _ in inspect.getmembers(type(c), callable) if not n.startswith("_") and n not in SKIP)
    names = [n for n in names if n not in ("delete_all",)] + ["delete_all"]
    called = 0
    for name in names:
        fn = getattr(c, name)
        try:
            params = list(inspect.signature(fn).parameters.values())
        except (TypeError, ValueError):
            continue
        req = [p for p in params if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        if req and name not in ARGS:
            missing.append(name); continue
        e = run(fn, ARGS.get(name, {}))
        called += 1
        err = e
        while err is not None and not isinstance(err, grpc.RpcError):
            err = getattr(err, "__cause__", None) or getattr(err, "__context__", None)
        if isinstance(e, TimeoutError):
            bad[name] = "no answer"
        elif err is not None:
            code, det = err.code(), err.details() or ""
            if (code == grpc.StatusCode.UNIMPLEMENTED and not det.endswith(ALLOWED)) or code == grpc.StatusCode.INTERNAL:
                bad[name] = f"{code.name}: {det}"
    assert not missing, missing
    assert not bad, bad
    print("called", called)
    print("ok")
''')


def test_every_python_pachyderm_method_is_answered(pp_python, pachd_pps):
    out = run_pp(pp_python, PP_SCRIPT, pachd_pps.port, timeout=900)
    n = int(out.split("called ")[1].split()[0])
    assert n >= 120, out
