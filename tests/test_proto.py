"""Checks for the proto/ package.

a) drift: the committed *_pb2*.py files are exactly what ``python -m proto.generate`` makes;
b) wire compatibility with pachyderm-sdk 2.12.2 (betterproto): every message, enum and RPC
   of pfs/pps/auth/admin/transaction/version/taskapi exists in our schema with the same
   field numbers, types, labels, oneofs and streaming kinds;
c) round trips of real messages between the SDK's classes and ours, plus one gRPC call
   each way through an in-process server.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import importlib
import inspect
import re
import sys
import typing
from concurrent import futures
from pathlib import Path

import pytest

# Make the repository root importable when pytest is run as a bare `pytest` command.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

betterproto = pytest.importorskip("betterproto")
from betterproto.casing import pascal_case, safe_snake_case  # noqa: E402
from google.protobuf import descriptor as _d  # noqa: E402
from google.protobuf import unknown_fields  # noqa: E402

from proto import generate  # noqa: E402
from proto.admin_v2 import admin_pb2  # noqa: E402
from proto.auth_v2 import auth_pb2  # noqa: E402
from proto.pfs_v2 import pfs_pb2, pfs_pb2_grpc  # noqa: E402
from proto.pps_v2 import pps_pb2  # noqa: E402
from proto.taskapi import task_pb2  # noqa: E402
from proto.transaction_v2 import transaction_pb2  # noqa: E402
from proto.versionpb_v2 import version_pb2  # noqa: E402
from proto.cdr import cdr_pb2  # noqa: E402
from proto.debug_v2 import debug_pb2  # noqa: E402
from proto.enterprise_v2 import enterprise_pb2  # noqa: E402
from proto.identity_v2 import identity_pb2  # noqa: E402
from proto.license_v2 import license_pb2  # noqa: E402
from proto.logs import logs_pb2  # noqa: E402
from proto.metadata import metadata_pb2  # noqa: E402
from proto.pjs import pjs_pb2  # noqa: E402
from proto.snapshot import snapshot_pb2  # noqa: E402
from proto.storage import storage_pb2  # noqa: E402

# SDK module -> (proto package, our generated module)
SDK_PACKAGES = {
    "pfs": ("pfs_v2", pfs_pb2),
    "pps": ("pps_v2", pps_pb2),
    "auth": ("auth_v2", auth_pb2),
    "admin": ("admin_v2", admin_pb2),
    "transaction": ("transaction_v2", transaction_pb2),
    "version": ("versionpb_v2", version_pb2),
    "taskapi": ("taskapi", task_pb2),
    "identity": ("identity_v2", identity_pb2),
    "license": ("license_v2", license_pb2),
    "enterprise": ("enterprise_v2", enterprise_pb2),
    "debug": ("debug_v2", debug_pb2),
    "logs": ("logs", logs_pb2),
    "metadata": ("metadata", metadata_pb2),
    "pjs": ("pjs", pjs_pb2),
    "snapshot": ("snapshot", snapshot_pb2),
    "storage": ("storage", storage_pb2),
    "cdr": ("cdr", cdr_pb2),
}
# services not named API, as in Pachyderm
OTHER_SERVICE_NAMES = {"debug_v2": "Debug", "storage": "Fileset"}
# Kept for python-pachyderm 7.6.0 (Pachyderm 2.7); not in the 2.12 SDK.
EXTRA_MESSAGES = {"pfs_v2.RunLoadTestRequest", "pfs_v2.RunLoadTestResponse"}
EXTRA_METHODS = {"/pfs_v2.API/RunLoadTest", "/pfs_v2.API/RunLoadTestDefault"}

_sdk_api = pytest.importorskip("pachyderm_sdk.api")
SDK = {short: importlib.import_module(f"pachyderm_sdk.api.{short}") for short in SDK_PACKAGES}


# --------------------------------------------------------------------------- a) drift


def test_generated_code_is_up_to_date(tmp_path):
    written = generate.generate(tmp_path)
    assert written, "no .proto files found under proto/"
    stale = []
    for path in written:
        rel = path.relative_to(tmp_path)
        committed = generate.REPO_ROOT / rel
        if not committed.exists():
            stale.append(f"{rel} is missing")
        elif committed.read_bytes() != path.read_bytes():
            stale.append(f"{rel} differs")
    # generated files whose .proto is gone
    expected = {p.relative_to(tmp_path) for p in written}
    for p in generate.PROTO_DIR.rglob("*_pb2*.py*"):
        if p.suffix not in (".py", ".pyi") or "__pycache__" in p.parts:
            continue
        rel = p.relative_to(generate.REPO_ROOT)
        if rel not in expected:
            stale.append(f"{rel} has no .proto source")
    from importlib.metadata import version

    assert not stale, (
        "generated code is stale, run `python -m proto.generate` "
        f"(grpcio-tools {version('grpcio-tools')}): " + "; ".join(stale)
    )


def test_service_names_are_pachyderms():
    for pkg, mod in SDK_PACKAGES.values():
        for name in mod.DESCRIPTOR.services_by_name:
            assert name == OTHER_SERVICE_NAMES.get(pkg, "API"), f"{mod.DESCRIPTOR.name}: service {name}"


# --------------------------------------------------------------------------- b) wire compatibility


def _walk_ours():
    """(package, betterproto-flattened name) -> our descriptor (message or enum)."""
    out = {}

    def rec(pkg, prefix, msgs, enums):
        for e in enums:
            out[(pkg, prefix + pascal_case(e.name))] = e
        for m in msgs:
            if m.GetOptions().map_entry:
                continue
            out[(pkg, prefix + pascal_case(m.name))] = m
            rec(pkg, prefix + pascal_case(m.name), m.nested_types, m.enum_types)

    for pkg, mod in SDK_PACKAGES.values():
        fd = mod.DESCRIPTOR
        rec(pkg, "", fd.message_types_by_name.values(), fd.enum_types_by_name.values())
    return out


OURS = _walk_ours()
PKG_OF_SDK_MODULE = {SDK[short].__name__: pkg for short, (pkg, _) in SDK_PACKAGES.items()}

WRAPPERS = {
    "bytes": "google.protobuf.BytesValue",
    "int64": "google.protobuf.Int64Value",
    "int32": "google.protobuf.Int32Value",
    "uint64": "google.protobuf.UInt64Value",
    "uint32": "google.protobuf.UInt32Value",
    "bool": "google.protobuf.BoolValue",
    "string": "google.protobuf.StringValue",
    "double": "google.protobuf.DoubleValue",
    "float": "google.protobuf.FloatValue",
}
FD = _d.FieldDescriptor
SCALARS = {
    "string": FD.TYPE_STRING,
    "bytes": FD.TYPE_BYTES,
    "bool": FD.TYPE_BOOL,
    "int32": FD.TYPE_INT32,
    "int64": FD.TYPE_INT64,
    "uint32": FD.TYPE_UINT32,
    "uint64": FD.TYPE_UINT64,
    "sint32": FD.TYPE_SINT32,
    "sint64": FD.TYPE_SINT64,
    "fixed32": FD.TYPE_FIXED32,
    "fixed64": FD.TYPE_FIXED64,
    "sfixed32": FD.TYPE_SFIXED32,
    "sfixed64": FD.TYPE_SFIXED64,
    "float": FD.TYPE_FLOAT,
    "double": FD.TYPE_DOUBLE,
    "enum": FD.TYPE_ENUM,
    "message": FD.TYPE_MESSAGE,
}


def _sdk_items(kind):
    for short, mod in SDK.items():
        for name, obj in vars(mod).items():
            if isinstance(obj, type) and obj.__module__ == mod.__name__ and issubclass(obj, kind):
                if kind is enum.Enum and issubclass(obj, betterproto.Message):
                    continue
                yield short, name, obj


SDK_MESSAGES = [(s, n, c) for s, n, c in _sdk_items(betterproto.Message)]
SDK_ENUMS = [(s, n, c) for s, n, c in _sdk_items(enum.Enum)]


def _full_name_of_sdk_type(cls) -> str:
    """Proto full name of a python type used in an SDK annotation."""
    if cls is dt.datetime:
        return "google.protobuf.Timestamp"
    if cls is dt.timedelta:
        return "google.protobuf.Duration"
    if cls.__module__.startswith("betterproto.lib"):
        return "google.protobuf." + cls.__name__
    pkg = PKG_OF_SDK_MODULE[cls.__module__]
    ours = OURS.get((pkg, cls.__name__))
    return ours.full_name if ours is not None else f"<no match for {pkg}.{cls.__name__}>"


def _unwrap(tp):
    """Strip Optional/List from an annotation; return (inner type, is_list)."""
    is_list = False
    while True:
        origin = typing.get_origin(tp)
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if origin is typing.Union:
            tp = args[0]
        elif origin in (list, typing.List):
            is_list, tp = True, args[0]
        else:
            return tp, is_list


def _type_desc(field: _d.FieldDescriptor) -> str:
    if field.message_type is not None:
        return field.message_type.full_name
    if field.enum_type is not None:
        return field.enum_type.full_name
    return {v: k for k, v in SCALARS.items()}[field.type]


def _compare_field(where, sdk_name, md, hint, ours: _d.FieldDescriptor) -> list[str]:
    errs = []
    exp_name = sdk_name
    if safe_snake_case(ours.name) != exp_name:
        errs.append(f"{where}: name {ours.name!r} (sdk {sdk_name!r})")
    inner, is_list = _unwrap(hint)
    our_is_map = ours.message_type is not None and ours.message_type.GetOptions().map_entry
    if md.proto_type == "map":
        if not our_is_map:
            errs.append(f"{where}: sdk has map<{md.map_types[0]}, {md.map_types[1]}>, ours is {_type_desc(ours)}")
            return errs
        key, val = ours.message_type.fields_by_name["key"], ours.message_type.fields_by_name["value"]
        if key.type != SCALARS[md.map_types[0]]:
            errs.append(f"{where}: map key {_type_desc(key)} (sdk {md.map_types[0]})")
        if val.type != SCALARS[md.map_types[1]]:
            errs.append(f"{where}: map value {_type_desc(val)} (sdk {md.map_types[1]})")
        elif md.map_types[1] in ("message", "enum"):
            want = _full_name_of_sdk_type(typing.get_args(inner)[1])
            if _type_desc(val) != want:
                errs.append(f"{where}: map value {_type_desc(val)} (sdk {want})")
        return errs
    if our_is_map:
        errs.append(f"{where}: ours is a map, sdk has {md.proto_type}")
        return errs
    if ours.type != SCALARS[md.proto_type]:
        errs.append(f"{where}: type {_type_desc(ours)} (sdk {md.proto_type})")
    elif md.proto_type in ("message", "enum"):
        want = WRAPPERS[md.wraps] if md.wraps else _full_name_of_sdk_type(inner)
        if _type_desc(ours) != want:
            errs.append(f"{where}: type {_type_desc(ours)} (sdk {want})")
    if ours.is_repeated != is_list:
        errs.append(f"{where}: repeated={ours.is_repeated} (sdk {is_list})")
    oneof = ours.containing_oneof
    if oneof is not None and getattr(oneof, "is_synthetic", False):  # proto3 optional
        oneof = None
    if (oneof.name if oneof else None) != md.group:
        errs.append(f"{where}: oneof {oneof.name if oneof else None} (sdk {md.group})")
    if bool(md.optional) != ours.has_presence and md.proto_type not in ("message",) and not md.group:
        errs.append(f"{where}: presence/optional {ours.has_presence} (sdk optional={md.optional})")
    return errs


@pytest.mark.parametrize(
    "short,name,cls", SDK_MESSAGES, ids=[f"{s}.{n}" for s, n, _ in SDK_MESSAGES]
)
def test_message_matches_sdk(short, name, cls):
    pkg = SDK_PACKAGES[short][0]
    ours = OURS.get((pkg, name))
    assert isinstance(ours, _d.Descriptor), f"no message for sdk {short}.{name} in package {pkg}"
    hints = typing.get_type_hints(cls)
    sdk_fields = {f.metadata["betterproto"].number: f for f in dataclasses.fields(cls)}
    errs = []
    missing = sorted(set(sdk_fields) - set(ours.fields_by_number))
    extra = sorted(set(ours.fields_by_number) - set(sdk_fields))
    for n in missing:
        errs.append(f"{ours.full_name}: field {sdk_fields[n].name}={n} missing")
    for n in extra:
        errs.append(f"{ours.full_name}: extra field {ours.fields_by_number[n].name}={n}")
    for number, f in sdk_fields.items():
        if number in ours.fields_by_number:
            md = f.metadata["betterproto"]
            where = f"{ours.full_name}.{ours.fields_by_number[number].name} (={number})"
            errs += _compare_field(where, f.name, md, hints[f.name], ours.fields_by_number[number])
    assert not errs, "\n".join(errs)


@pytest.mark.parametrize("short,name,cls", SDK_ENUMS, ids=[f"{s}.{n}" for s, n, _ in SDK_ENUMS])
def test_enum_matches_sdk(short, name, cls):
    pkg = SDK_PACKAGES[short][0]
    ours = OURS.get((pkg, name))
    assert isinstance(ours, _d.EnumDescriptor), f"no enum for sdk {short}.{name} in package {pkg}"
    theirs = {e.name: e.value for e in cls}
    mine = {v.name: v.number for v in ours.values}
    diff = {k: (mine.get(k), theirs.get(k)) for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k)}
    assert not diff, f"{ours.full_name}: values differ (ours, sdk): {diff}"


def test_no_unexpected_extra_messages():
    """Everything we define is in the SDK, apart from the documented 2.7-only messages."""
    sdk_names = {(SDK_PACKAGES[s][0], n) for s, n, _ in SDK_MESSAGES + SDK_ENUMS}
    extra = {d.full_name for key, d in OURS.items() if key not in sdk_names}
    assert extra == EXTRA_MESSAGES


def _sdk_rpcs():
    """[(path, kind, request class, response class)] from the SDK stubs."""
    rpcs = []
    for short, mod in SDK.items():
        for name, obj in vars(mod).items():
            if not (isinstance(obj, type) and obj.__module__ == mod.__name__ and name.endswith("Stub")):
                continue
            src = inspect.getsource(obj.__init__)
            calls = re.findall(
                r'channel\.(unary_unary|unary_stream|stream_unary|stream_stream)\(\s*"([^"]+)",\s*'
                r"request_serializer=([\w\.]+)\.SerializeToString,\s*"
                r"response_deserializer=([\w\.]+)\.FromString",
                src,
            )
            assert calls, f"could not read {short}.{name}"
            for kind, path, req, resp in calls:
                rpcs.append((path, kind, eval(req, vars(mod)), eval(resp, vars(mod))))  # noqa: S307
    return rpcs


SDK_RPCS = _sdk_rpcs()


def _our_method(path):
    svc, method = path.strip("/").split("/")
    pkg = svc.rsplit(".", 1)[0]
    for p, mod in SDK_PACKAGES.values():
        if p == pkg:
            sd = mod.DESCRIPTOR.services_by_name.get(svc.rsplit(".", 1)[1])
            return sd.methods_by_name.get(method) if sd else None
    return None


@pytest.mark.parametrize("path,kind,req,resp", SDK_RPCS, ids=[r[0] for r in SDK_RPCS])
def test_rpc_matches_sdk(path, kind, req, resp):
    m = _our_method(path)
    assert m is not None, f"RPC {path} missing"
    ours_kind = ("stream" if m.client_streaming else "unary") + "_" + ("stream" if m.server_streaming else "unary")
    errs = []
    if ours_kind != kind:
        errs.append(f"{path}: streaming {ours_kind} (sdk {kind})")
    if m.input_type.full_name != _full_name_of_sdk_type(req):
        errs.append(f"{path}: request {m.input_type.full_name} (sdk {_full_name_of_sdk_type(req)})")
    if m.output_type.full_name != _full_name_of_sdk_type(resp):
        errs.append(f"{path}: response {m.output_type.full_name} (sdk {_full_name_of_sdk_type(resp)})")
    assert not errs, "\n".join(errs)


def test_no_unexpected_extra_rpcs():
    sdk_paths = {r[0] for r in SDK_RPCS}
    ours = set()
    for pkg, mod in SDK_PACKAGES.values():
        for sd in mod.DESCRIPTOR.services_by_name.values():
            ours |= {f"/{sd.full_name}/{m.name}" for m in sd.methods}
    assert ours - sdk_paths == EXTRA_METHODS
    assert not sdk_paths - ours


def test_reference_sheet_spot_checks():
    """A few facts from the wire reference that are easy to get wrong."""
    ci = pfs_pb2.CommitInfo.DESCRIPTOR
    assert ci.fields_by_name["direct_provenance"].number == 13
    assert ci.fields_by_name["direct_provenance"].message_type.full_name == "pfs_v2.Commit"
    assert pfs_pb2.AddFile.DESCRIPTOR.oneofs_by_name["source"].fields[0].message_type.full_name == (
        "google.protobuf.BytesValue"
    )
    assert pfs_pb2.AddFile.URLSource.DESCRIPTOR.full_name == "pfs_v2.AddFile.URLSource"
    assert pps_pb2.ListDatumRequest.Filter.DESCRIPTOR.full_name == "pps_v2.ListDatumRequest.Filter"
    assert pps_pb2.PipelineInfo.DESCRIPTOR.fields_by_number[13].name == "user_spec_json"
    assert 36 not in pps_pb2.CreatePipelineRequest.DESCRIPTOR.fields_by_number
    assert pfs_pb2.ListFileRequest.DESCRIPTOR.fields_by_number[3].name == "paginationMarker"
    get_file = pfs_pb2.DESCRIPTOR.services_by_name["API"].methods_by_name["GetFile"]
    assert get_file.output_type.full_name == "google.protobuf.BytesValue" and get_file.server_streaming
    modify = pfs_pb2.DESCRIPTOR.services_by_name["API"].methods_by_name["ModifyFile"]
    assert modify.client_streaming and not modify.server_streaming
    assert pps_pb2.PipelineInfo.PIPELINT_TYPE_UNKNOWN == 0  # sic, Pachyderm's spelling


# --------------------------------------------------------------------------- c) round trips

sdk_pfs, sdk_pps = SDK["pfs"], SDK["pps"]
UTC = dt.timezone.utc


def _no_unknown_fields(msg, path="") -> list[str]:
    """Recursively list unknown fields (a sign of a number/type mismatch)."""
    found = []
    if len(unknown_fields.UnknownFieldSet(msg)):
        found.append(path or msg.DESCRIPTOR.full_name)
    for fd, value in msg.ListFields():
        if fd.message_type is None:
            continue
        if fd.message_type.GetOptions().map_entry:
            if fd.message_type.fields_by_name["value"].message_type is not None:
                for k, v in value.items():
                    found += _no_unknown_fields(v, f"{path}.{fd.name}[{k}]")
        elif fd.is_repeated:
            for i, v in enumerate(value):
                found += _no_unknown_fields(v, f"{path}.{fd.name}[{i}]")
        else:
            found += _no_unknown_fields(value, f"{path}.{fd.name}")
    return found


def _sdk_to_ours(sdk_msg, our_cls):
    ours = our_cls.FromString(bytes(sdk_msg))
    assert not _no_unknown_fields(ours), f"unknown fields after parsing: {_no_unknown_fields(ours)}"
    # and back again: the SDK reads our bytes into an equal message
    back = type(sdk_msg)().parse(ours.SerializeToString())
    assert back == sdk_msg
    return ours


def _sdk_commit_info():
    project = sdk_pfs.Project(name="proj")
    repo = sdk_pfs.Repo(name="images", type="user", project=project)
    branch = sdk_pfs.Branch(repo=repo, name="master")
    return sdk_pfs.CommitInfo(
        commit=sdk_pfs.Commit(repo=repo, id="a" * 32, branch=branch),
        origin=sdk_pfs.CommitOrigin(kind=sdk_pfs.OriginKind.AUTO),
        description="first",
        parent_commit=sdk_pfs.Commit(repo=repo, id="b" * 32),
        child_commits=[sdk_pfs.Commit(repo=repo, id="c" * 32), sdk_pfs.Commit(repo=repo, id="d" * 32)],
        started=dt.datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC),
        finished=dt.datetime(2024, 5, 1, 12, 0, 3, tzinfo=UTC),
        direct_provenance=[sdk_pfs.Commit(repo=sdk_pfs.Repo(name="raw", type="user", project=project), id="e" * 32)],
        error="",
        size_bytes_upper_bound=1 << 40,
        details=sdk_pfs.CommitInfoDetails(size_bytes=12345, compacting_time=dt.timedelta(seconds=1, microseconds=500000)),
        metadata={"k": "v", "owner": "me"},
        created_by="robot:x",
        created_at=dt.datetime(2024, 5, 1, 11, 59, 59, tzinfo=UTC),
    )


def test_roundtrip_commit_info():
    sdk_msg = _sdk_commit_info()
    ours = _sdk_to_ours(sdk_msg, pfs_pb2.CommitInfo)
    assert ours.commit.id == "a" * 32
    assert ours.commit.repo.name == "images" and ours.commit.repo.project.name == "proj"
    assert ours.commit.branch.name == "master" and ours.commit.branch.repo.type == "user"
    assert ours.origin.kind == pfs_pb2.AUTO
    assert [c.id for c in ours.child_commits] == ["c" * 32, "d" * 32]
    assert ours.started.ToDatetime(tzinfo=UTC) == sdk_msg.started
    assert ours.finished.seconds == int(sdk_msg.finished.timestamp())
    assert ours.direct_provenance[0].repo.name == "raw"
    assert ours.size_bytes_upper_bound == 1 << 40
    assert ours.details.size_bytes == 12345
    assert ours.details.compacting_time.ToTimedelta() == dt.timedelta(seconds=1.5)
    assert dict(ours.metadata) == {"k": "v", "owner": "me"}
    assert ours.created_by == "robot:x"


def test_roundtrip_create_pipeline_request():
    project = sdk_pfs.Project(name="default")
    sdk_msg = sdk_pps.CreatePipelineRequest(
        pipeline=sdk_pps.Pipeline(project=project, name="edges"),
        transform=sdk_pps.Transform(
            image="python:3.11",
            cmd=["python3", "/edges.py"],
            env={"A": "1", "B": "2"},
            secrets=[sdk_pps.SecretMount(name="s", key="k", env_var="SECRET")],
            accept_return_code=[1, 2],
        ),
        parallelism_spec=sdk_pps.ParallelismSpec(constant=4),
        input=sdk_pps.Input(
            union=[
                sdk_pps.Input(
                    join=[
                        sdk_pps.Input(pfs=sdk_pps.PfsInput(repo="a", glob="/(*)", join_on="$1", outer_join=True)),
                        sdk_pps.Input(pfs=sdk_pps.PfsInput(repo="b", glob="/(*)", join_on="$1", project="p2")),
                    ]
                ),
                sdk_pps.Input(cron=sdk_pps.CronInput(name="tick", spec="@every 10s", overwrite=True)),
                sdk_pps.Input(cross=[sdk_pps.Input(pfs=sdk_pps.PfsInput(repo="c", glob="/*", lazy=True))]),
            ]
        ),
        egress=sdk_pps.Egress(
            sql_database=sdk_pfs.SqlDatabaseEgress(
                url="pg://x",
                file_format=sdk_pfs.SqlDatabaseEgressFileFormat(
                    type=sdk_pfs.SqlDatabaseEgressFileFormatType.PARQUET, columns=["a", "b"]
                ),
            )
        ),
        resource_requests=sdk_pps.ResourceSpec(cpu=0.5, memory="1G", gpu=sdk_pps.GpuSpec(type="nvidia", number=1)),
        datum_timeout=dt.timedelta(minutes=1),
        datum_tries=3,
        tolerations=[
            sdk_pps.Toleration(
                key="k",
                operator=sdk_pps.TolerationOperator.EQUAL,
                value="v",
                effect=sdk_pps.TaintEffect.NO_SCHEDULE,
                toleration_seconds=30,
            )
        ],
        scheduling_spec=sdk_pps.SchedulingSpec(node_selector={"zone": "a"}),
        metadata=sdk_pps.Metadata(annotations={"x": "y"}, labels={"l": "m"}),
        autoscaling=True,
        maximum_expected_uptime=dt.timedelta(hours=2),
    )
    ours = _sdk_to_ours(sdk_msg, pps_pb2.CreatePipelineRequest)
    assert ours.pipeline.name == "edges" and ours.pipeline.project.name == "default"
    assert list(ours.transform.cmd) == ["python3", "/edges.py"]
    assert dict(ours.transform.env) == {"A": "1", "B": "2"}
    assert ours.transform.secrets[0].env_var == "SECRET"
    assert list(ours.transform.accept_return_code) == [1, 2]
    assert ours.parallelism_spec.constant == 4
    join = ours.input.union[0].join
    assert [i.pfs.repo for i in join] == ["a", "b"] and join[0].pfs.outer_join and join[1].pfs.project == "p2"
    assert ours.input.union[1].cron.spec == "@every 10s"
    assert ours.input.union[2].cross[0].pfs.lazy
    assert ours.egress.WhichOneof("target") == "sql_database"
    assert ours.egress.sql_database.file_format.type == pfs_pb2.SQLDatabaseEgress.FileFormat.PARQUET
    assert ours.resource_requests.cpu == pytest.approx(0.5) and ours.resource_requests.gpu.number == 1
    assert ours.datum_timeout.ToTimedelta() == dt.timedelta(minutes=1)
    tol = ours.tolerations[0]
    assert tol.operator == pps_pb2.EQUAL and tol.effect == pps_pb2.NO_SCHEDULE
    assert tol.HasField("toleration_seconds") and tol.toleration_seconds.value == 30
    assert dict(ours.scheduling_spec.node_selector) == {"zone": "a"}
    assert dict(ours.metadata.labels) == {"l": "m"}
    assert ours.maximum_expected_uptime.ToTimedelta() == dt.timedelta(hours=2)


def test_roundtrip_modify_file_stream_messages():
    commit = sdk_pfs.Commit(
        branch=sdk_pfs.Branch(repo=sdk_pfs.Repo(name="r", type="user", project=sdk_pfs.Project()), name="master")
    )
    msgs = [
        sdk_pfs.ModifyFileRequest(set_commit=commit),
        sdk_pfs.ModifyFileRequest(delete_file=sdk_pfs.DeleteFile(path="/a.txt")),
        sdk_pfs.ModifyFileRequest(add_file=sdk_pfs.AddFile(path="/a.txt", raw=b"")),
        sdk_pfs.ModifyFileRequest(add_file=sdk_pfs.AddFile(path="/a.txt", raw=b"hello\x00world")),
        sdk_pfs.ModifyFileRequest(
            add_file=sdk_pfs.AddFile(path="/u", url=sdk_pfs.AddFileUrlSource(url="s3://b/k", recursive=True, concurrency=3))
        ),
        sdk_pfs.ModifyFileRequest(
            copy_file=sdk_pfs.CopyFile(dst="/b", src=sdk_pfs.File(commit=commit, path="/a.txt"), append=True)
        ),
    ]
    ours = [_sdk_to_ours(m, pfs_pb2.ModifyFileRequest) for m in msgs]
    assert [o.WhichOneof("body") for o in ours] == [
        "set_commit", "delete_file", "add_file", "add_file", "add_file", "copy_file"
    ]
    assert ours[0].set_commit.branch.name == "master" and ours[0].set_commit.branch.repo.name == "r"
    # an empty raw chunk is still present on the wire (clients use it to create empty files)
    assert ours[2].add_file.WhichOneof("source") == "raw" and ours[2].add_file.raw.value == b""
    assert ours[3].add_file.raw.value == b"hello\x00world"
    assert ours[4].add_file.url.URL == "s3://b/k" and ours[4].add_file.url.concurrency == 3
    assert ours[5].copy_file.append and ours[5].copy_file.src.path == "/a.txt"


def test_roundtrip_ours_to_sdk():
    ours = pps_pb2.PipelineInfo(
        pipeline=pps_pb2.Pipeline(name="p", project=pfs_pb2.Project(name="default")),
        version=7,
        state=pps_pb2.PIPELINE_RUNNING,
        last_job_state=pps_pb2.JOB_SUCCESS,
        type=pps_pb2.PipelineInfo.PIPELINE_TYPE_TRANSFORM,
        user_spec_json='{"pipeline": {"name": "p"}}',
        metadata={"a": "b"},
        details=pps_pb2.PipelineInfo.Details(
            input=pps_pb2.Input(pfs=pps_pb2.PFSInput(repo="in", glob="/*")),
            datum_tries=3,
        ),
    )
    ours.details.created_at.FromDatetime(dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))
    sdk_msg = sdk_pps.PipelineInfo().parse(ours.SerializeToString())
    assert sdk_msg.pipeline.name == "p" and sdk_msg.pipeline.project.name == "default"
    assert sdk_msg.version == 7
    assert sdk_msg.state == sdk_pps.PipelineState.PIPELINE_RUNNING
    assert sdk_msg.last_job_state == sdk_pps.JobState.JOB_SUCCESS
    assert sdk_msg.type == sdk_pps.PipelineInfoPipelineType.PIPELINE_TYPE_TRANSFORM
    assert sdk_msg.user_spec_json == '{"pipeline": {"name": "p"}}'
    assert sdk_msg.metadata == {"a": "b"}
    assert sdk_msg.details.input.pfs.repo == "in" and sdk_msg.details.datum_tries == 3
    assert sdk_msg.details.created_at == dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    # the reverse direction preserves everything
    assert pps_pb2.PipelineInfo.FromString(bytes(sdk_msg)) == ours

    fi = pfs_pb2.FileInfo(file_type=pfs_pb2.DIR, size_bytes=-1 & 0x7FFFFFFFFFFFFFFF, hash=b"\x01\x02")
    fi.file.path = "/dir/"
    fi.file.commit.id = "f" * 32
    sdk_fi = sdk_pfs.FileInfo().parse(fi.SerializeToString())
    assert sdk_fi.file_type == sdk_pfs.FileType.DIR and sdk_fi.size_bytes == fi.size_bytes
    assert sdk_fi.hash == b"\x01\x02" and sdk_fi.file.path == "/dir/" and sdk_fi.file.commit.id == "f" * 32


# --------------------------------------------------------------------------- gRPC end to end


class _PFS(pfs_pb2_grpc.APIServicer):
    def __init__(self):
        self.received = []

    def InspectRepo(self, request, context):
        info = pfs_pb2.RepoInfo(repo=request.repo, description="hi", size_bytes_upper_bound=42)
        info.details.size_bytes = 41
        return info

    def ModifyFile(self, request_iterator, context):
        self.received = [r.WhichOneof("body") for r in request_iterator]
        from google.protobuf import empty_pb2

        return empty_pb2.Empty()

    def GetFile(self, request, context):
        from google.protobuf import wrappers_pb2

        for chunk in (b"abc", b"def"):
            yield wrappers_pb2.BytesValue(value=chunk)


def test_grpc_with_sdk_stub():
    grpc = pytest.importorskip("grpc")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = _PFS()
    pfs_pb2_grpc.add_APIServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = sdk_pfs.ApiStub(channel)
            repo = sdk_pfs.Repo(name="r", type="user", project=sdk_pfs.Project(name="default"))
            info = stub.inspect_repo(repo=repo)
            assert info.repo == repo and info.description == "hi"
            assert info.size_bytes_upper_bound == 42 and info.details.size_bytes == 41
            commit = sdk_pfs.Commit(branch=sdk_pfs.Branch(repo=repo, name="master"))
            stub.modify_file(
                iter(
                    [
                        sdk_pfs.ModifyFileRequest(set_commit=commit),
                        sdk_pfs.ModifyFileRequest(add_file=sdk_pfs.AddFile(path="/x", raw=b"1")),
                    ]
                )
            )
            assert servicer.received == ["set_commit", "add_file"]
            data = b"".join(
                c.value for c in stub.get_file(file=sdk_pfs.File(commit=commit, path="/x"))
            )
            assert data == b"abcdef"
            with pytest.raises(grpc.RpcError) as err:
                list(stub.list_repo())
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        server.stop(None).wait()
