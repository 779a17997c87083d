"""Pipeline specs: parse (JSON/YAML), decode strictly, validate and fill Pachyderm's defaults.

`PipelineSpec` is a tree of frozen dataclasses mirroring `pps_v2.CreatePipelineRequest`
(field names are the proto names), except that `input` is a real sum type:
`PfsInput | CrossInput | UnionInput | JoinInput | GroupInput | CronInput` (or None).

Invariants of a spec returned by `normalize_spec`:
- It passed the same checks as Pachyderm's CreatePipeline (name rules, exactly one kind per
  input node, input names non-empty and not `out`/`.env`, names unique within cross/join/group
  while union children may share, no `commit` in inputs, glob present for pfs, s3 rules,
  reprocess_spec in {until_success, every_job}, ...) plus ours (transform.cmd present for
  ordinary pipelines, datum_tries >= 0, durations non-negative).
- Defaults are filled: pipeline project (parameter, "default"), transform.image
  `ubuntu:20.04`, pfs name = repo, branch = master, repo_type = user, project = pipeline's,
  glob cleaned; cron repo `<pipeline>_<cron name>`; output_branch master; datum_tries 3;
  reprocess_spec until_success; service type NodePort. `salt` is left as given ("" means the
  server generates one) and cron `start` is left None unless `now` is passed.
- Children of cross/union/join/group are stably sorted by input name (a compound's name is its
  first child's; a cron input's sort name is "", as in Pachyderm's InputName): once by the
  names as given, then by the effective names, so normalizing is idempotent.
- Durations are float seconds (`None` = unset); timestamps are aware UTC datetimes.
Decoding accepts proto names and protobuf-JSON lowerCamel names (`joinOn`, `datumTries`),
rejects unknown fields and wrong types with the field's path, and requires durations as
strings ("60s", "1h30m", "1.5s"). `parallelism_spec.constant == 0` is kept as 0;
`effective_parallelism` maps it to the CPU count.
"""
from __future__ import annotations

import dataclasses
import json
import re
import typing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterator, NewType, Optional, Union

import yaml

from pfs.errors import InvalidArgument
from pfs.glob import clean_glob, compile_glob
from pps.cron import format_duration, parse_duration, parse_schedule

Duration = NewType("Duration", float)  # seconds; JSON "60s"
JsonStr = NewType("JsonStr", str)  # a JSON document kept as text (pod_spec, pod_patch)
Enum = NewType("Enum", str)  # enum value by name
AnyJson = NewType("AnyJson", dict)  # kept as given (spec_commit)

DEFAULT_IMAGE = "ubuntu:20.04"
DEFAULT_DATUM_TRIES = 3
MAX_PIPELINE_NAME = 51
_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
_ENUMS = {
    "operator": ("EMPTY", "EXISTS", "EQUAL"),
    "effect": ("ALL_EFFECTS", "NO_SCHEDULE", "PREFER_NO_SCHEDULE", "NO_EXECUTE"),
    "type": ("UNKNOWN", "CSV", "JSON", "PARQUET"),
}


def _camel(name: str) -> str:
    parts = name.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


# ---- messages ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Project:
    name: str = ""


@dataclass(frozen=True)
class Pipeline:
    project: Optional[Project] = None
    name: str = ""


@dataclass(frozen=True)
class TFJob:
    tf_job: str = ""


@dataclass(frozen=True)
class SecretMount:
    name: str = ""
    key: str = ""
    mount_path: str = ""
    env_var: str = ""


@dataclass(frozen=True)
class Transform:
    image: str = ""
    cmd: tuple[str, ...] = ()
    err_cmd: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    secrets: tuple[SecretMount, ...] = ()
    image_pull_secrets: tuple[str, ...] = ()
    stdin: tuple[str, ...] = ()
    err_stdin: tuple[str, ...] = ()
    accept_return_code: tuple[int, ...] = ()
    debug: bool = False
    user: str = ""
    working_dir: str = ""
    dockerfile: str = ""
    memory_volume: bool = False
    datum_batching: bool = False


@dataclass(frozen=True)
class ParallelismSpec:
    constant: int = 0


@dataclass(frozen=True)
class ObjectStorageEgress:
    url: str = ""


@dataclass(frozen=True)
class FileFormat:
    type: Enum = Enum("UNKNOWN")
    columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class SQLSecret:
    name: str = ""
    key: str = ""


@dataclass(frozen=True)
class SQLDatabaseEgress:
    url: str = ""
    file_format: Optional[FileFormat] = None
    secret: Optional[SQLSecret] = None


@dataclass(frozen=True)
class Egress:
    URL: str = ""
    object_storage: Optional[ObjectStorageEgress] = None
    sql_database: Optional[SQLDatabaseEgress] = None


@dataclass(frozen=True)
class GPUSpec:
    type: str = ""
    number: int = 0


@dataclass(frozen=True)
class ResourceSpec:
    cpu: float = 0.0
    memory: str = ""
    gpu: Optional[GPUSpec] = None
    disk: str = ""


@dataclass(frozen=True)
class Service:
    internal_port: int = 0
    external_port: int = 0
    ip: str = ""
    type: str = ""


@dataclass(frozen=True)
class Spout:
    service: Optional[Service] = None


@dataclass(frozen=True)
class DatumSetSpec:
    number: int = 0
    size_bytes: int = 0
    per_worker: int = 0


@dataclass(frozen=True)
class SchedulingSpec:
    node_selector: dict[str, str] = field(default_factory=dict)
    priority_class_name: str = ""


@dataclass(frozen=True)
class Metadata:
    annotations: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Toleration:
    key: str = ""
    operator: Enum = Enum("EMPTY")
    value: str = ""
    effect: Enum = Enum("ALL_EFFECTS")
    toleration_seconds: Optional[int] = None


@dataclass(frozen=True)
class Determined:
    workspaces: tuple[str, ...] = ()


@dataclass(frozen=True)
class Trigger:
    branch: str = ""
    all: bool = False
    rate_limit_spec: str = ""
    size: str = ""
    commits: int = 0
    cron_spec: str = ""


@dataclass(frozen=True)
class PropagationSpec:
    never: bool = False


@dataclass(frozen=True)
class PfsInput:
    project: str = ""
    name: str = ""
    repo: str = ""
    repo_type: str = ""
    branch: str = ""
    commit: str = ""
    glob: str = ""
    join_on: str = ""
    outer_join: bool = False
    group_by: str = ""
    lazy: bool = False
    empty_files: bool = False
    s3: bool = False
    trigger: Optional[Trigger] = None
    propagation_spec: Optional[PropagationSpec] = None
    reference: bool = False


@dataclass(frozen=True)
class CronInput:
    name: str = ""
    project: str = ""
    repo: str = ""
    commit: str = ""
    spec: str = ""
    overwrite: bool = False
    start: Optional[datetime] = None


@dataclass(frozen=True)
class CrossInput:
    inputs: tuple["Input", ...] = ()


@dataclass(frozen=True)
class UnionInput:
    inputs: tuple["Input", ...] = ()


@dataclass(frozen=True)
class JoinInput:
    inputs: tuple["Input", ...] = ()


@dataclass(frozen=True)
class GroupInput:
    inputs: tuple["Input", ...] = ()


Input = Union[PfsInput, CrossInput, UnionInput, JoinInput, GroupInput, CronInput]
_COMPOUND = {"cross": CrossInput, "union": UnionInput, "join": JoinInput, "group": GroupInput}
_KIND_OF = {v: k for k, v in _COMPOUND.items()} | {PfsInput: "pfs", CronInput: "cron"}


@dataclass(frozen=True)
class PipelineSpec:
    pipeline: Optional[Pipeline] = None
    tf_job: Optional[TFJob] = None
    transform: Optional[Transform] = None
    parallelism_spec: Optional[ParallelismSpec] = None
    egress: Optional[Egress] = None
    update: bool = False
    output_branch: str = ""
    s3_out: bool = False
    resource_requests: Optional[ResourceSpec] = None
    resource_limits: Optional[ResourceSpec] = None
    sidecar_resource_limits: Optional[ResourceSpec] = None
    input: Optional[Input] = None
    description: str = ""
    reprocess: bool = False
    service: Optional[Service] = None
    spout: Optional[Spout] = None
    datum_set_spec: Optional[DatumSetSpec] = None
    datum_timeout: Optional[Duration] = None
    job_timeout: Optional[Duration] = None
    salt: str = ""
    datum_tries: int = 0
    scheduling_spec: Optional[SchedulingSpec] = None
    pod_spec: JsonStr = JsonStr("")
    pod_patch: JsonStr = JsonStr("")
    spec_commit: Optional[AnyJson] = None
    metadata: Optional[Metadata] = None
    reprocess_spec: str = ""
    autoscaling: bool = False
    tolerations: tuple[Toleration, ...] = ()
    sidecar_resource_requests: Optional[ResourceSpec] = None
    dry_run: bool = False
    determined: Optional[Determined] = None
    maximum_expected_uptime: Optional[Duration] = None

    @property
    def name(self) -> str:
        return self.pipeline.name if self.pipeline else ""

    @property
    def project(self) -> str:
        return self.pipeline.project.name if self.pipeline and self.pipeline.project else ""


# ---- parsing ----------------------------------------------------------------------------
def parse_specs(text: str) -> list[dict]:
    """Split a spec file into spec dicts: a JSON object, a JSON array, a stream of JSON
    objects, or one or more YAML documents (a document may itself be a list of specs)."""
    docs: list[Any] = []
    stripped = text.lstrip()
    json_error: Exception | None = None
    if stripped[:1] in ("{", "["):
        try:
            dec, pos = json.JSONDecoder(), 0
            while True:
                while pos < len(stripped) and stripped[pos].isspace():
                    pos += 1
                if pos >= len(stripped):
                    break
                obj, pos = dec.raw_decode(stripped, pos)
                docs.append(obj)
        except json.JSONDecodeError as e:
            json_error, docs = e, []
    if not docs:
        try:
            docs = [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as e:
            raise InvalidArgument(f"malformed pipeline spec: {json_error or e}") from None
    specs: list[dict] = []
    for doc in docs:
        for item in doc if isinstance(doc, list) else [doc]:
            if not isinstance(item, dict):
                raise InvalidArgument(f"malformed pipeline spec: expected an object, got {item!r}")
            specs.append(item)
    return specs


def _bad(path: str, msg: str) -> InvalidArgument:
    return InvalidArgument(f'invalid value for "{path.rsplit(".", 1)[-1]}" in pipeline spec at "{path}": {msg}')


_HINTS: dict[type, tuple[dict[str, Any], dict[str, str]]] = {}


def _hints(cls) -> tuple[dict[str, Any], dict[str, str]]:
    """(type hints, accepted key -> field name) of a message class."""
    if cls not in _HINTS:
        hints = typing.get_type_hints(cls, globalns=globals())
        names: dict[str, str] = {}
        for f in dataclasses.fields(cls):
            names[f.name] = f.name
            names.setdefault(_camel(f.name), f.name)
        _HINTS[cls] = (hints, names)
    return _HINTS[cls]


def _decode_msg(cls, data: Any, path: str, unknown: list | None = None):
    """Decode one message. Unknown keys raise, or are appended to `unknown` when given."""
    if not isinstance(data, dict):
        raise InvalidArgument(f'invalid value in pipeline spec at "{path or "."}": expected an object, got {data!r}')
    hints, names = _hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        sub = f"{path}.{key}" if path else str(key)
        fname = names.get(key)
        if fname is None:
            if unknown is None:
                raise InvalidArgument(f'unknown field "{key}" in pipeline spec at "{sub}"')
            unknown.append(sub)
            continue
        if fname in kwargs:
            raise InvalidArgument(f'field "{key}" given twice in pipeline spec at "{sub}"')
        if value is not None:
            kwargs[fname] = _decode_value(hints[fname], value, sub, fname, unknown)
    return cls(**kwargs)


def _decode_value(hint: Any, v: Any, path: str, fname: str, unknown: list | None = None) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint == Optional[Input] or hint == Input:
        return _decode_input(v, path, unknown)
    if origin is Union:  # Optional[X]
        return _decode_value(next(a for a in args if a is not type(None)), v, path, fname, unknown)
    if origin is tuple:
        if not isinstance(v, list):
            raise _bad(path, f"expected a list, got {v!r}")
        return tuple(_decode_value(args[0], x, f"{path}[{i}]", fname, unknown) for i, x in enumerate(v))
    if origin is dict:
        if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
            raise _bad(path, f"expected a map of strings, got {v!r}")
        return {str(k): x for k, x in v.items()}
    if dataclasses.is_dataclass(hint):
        return _decode_msg(hint, v, path, unknown)
    if hint is Duration:
        if not isinstance(v, str):
            raise _bad(path, f'durations must be strings like "60s" or "1h30m", got {v!r}')
        try:
            return Duration(parse_duration(v))
        except InvalidArgument as e:
            raise _bad(path, e.message) from None
    if hint is datetime:
        return _decode_time(v, path)
    if hint is JsonStr:
        return JsonStr(v if isinstance(v, str) else json.dumps(v, separators=(",", ":")))
    if hint is AnyJson:
        return v
    if hint is Enum:
        values = _ENUMS[fname]
        if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(values):
            return Enum(values[v])
        if isinstance(v, str) and v in values:
            return Enum(v)
        raise _bad(path, f"expected one of {', '.join(values)}, got {v!r}")
    if hint is str:
        if not isinstance(v, str):
            raise _bad(path, f"expected a string, got {v!r}")
        return v
    if hint is bool:
        if not isinstance(v, bool):
            raise _bad(path, f"expected true or false, got {v!r}")
        return v
    if hint is int:
        if isinstance(v, str) and re.fullmatch(r"-?\d+", v.strip()):
            return int(v)
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if not isinstance(v, int) or isinstance(v, bool):
            raise _bad(path, f"expected an integer, got {v!r}")
        return v
    if hint is float:
        try:
            if isinstance(v, bool):
                raise ValueError
            return float(v)
        except (TypeError, ValueError):
            raise _bad(path, f"expected a number, got {v!r}") from None
    raise AssertionError(f"unhandled type {hint!r}")  # pragma: no cover


def _decode_time(v: Any, path: str) -> datetime:
    if isinstance(v, datetime):
        t = v
    elif isinstance(v, str):
        try:
            t = datetime.fromisoformat(v.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise _bad(path, f"expected an RFC3339 timestamp, got {v!r}") from None
    else:
        raise _bad(path, f"expected an RFC3339 timestamp, got {v!r}")
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def _decode_input(data: Any, path: str, unknown: list | None = None) -> Input:
    if not isinstance(data, dict):
        raise InvalidArgument(f'invalid value in pipeline spec at "{path}": expected an input object, got {data!r}')
    kinds = ("pfs", "cron", "cross", "union", "join", "group")
    for key in data:
        if key not in kinds:
            if unknown is None:
                raise InvalidArgument(f'unknown field "{key}" in pipeline spec at "{path}.{key}"')
            unknown.append(f"{path}.{key}")
    given = [k for k in kinds if data.get(k) not in (None, [])]
    if len(given) > 1:
        raise InvalidArgument(f'multiple input types set at "{path}": {", ".join(given)}')
    if not given:
        raise InvalidArgument(f'no input set at "{path}" (one of pfs, cross, union, join, group, cron)')
    kind = given[0]
    sub = f"{path}.{kind}"
    if kind == "pfs":
        return _decode_msg(PfsInput, data[kind], sub, unknown)
    if kind == "cron":
        return _decode_msg(CronInput, data[kind], sub, unknown)
    if not isinstance(data[kind], list):
        raise _bad(sub, f"expected a list of inputs, got {data[kind]!r}")
    return _COMPOUND[kind](
        tuple(_decode_input(x, f"{sub}[{i}]", unknown) for i, x in enumerate(data[kind])))


# ---- inputs: walking, names, summaries ------------------------------------------------
def children(inp: Input) -> tuple[Input, ...]:
    return getattr(inp, "inputs", ())


def iter_inputs(inp: Optional[Input]) -> Iterator[Input]:
    """Every node of the input tree, parents before children, children in order."""
    if inp is None:
        return
    yield inp
    for ch in children(inp):
        yield from iter_inputs(ch)


def input_name(inp: Optional[Input]) -> str:
    """Pachyderm's InputName: a pfs input's name, a compound's first child's, "" for cron."""
    if isinstance(inp, PfsInput):
        return inp.name
    kids = children(inp) if inp is not None else ()
    return input_name(kids[0]) if kids else ""


def _sort_inputs(inp: Optional[Input]) -> Optional[Input]:
    kids = children(inp) if inp is not None else ()
    if not kids:
        return inp
    kids = tuple(sorted((_sort_inputs(k) for k in kids), key=input_name))
    return type(inp)(kids)


def input_repos(spec: PipelineSpec) -> list[tuple[str, str, str]]:
    """(project, repo, branch) of every pfs and cron input, first occurrence order."""
    out: list[tuple[str, str, str]] = []
    for node in iter_inputs(spec.input):
        if isinstance(node, PfsInput):
            item = (node.project or spec.project, node.repo, node.branch or "master")
        elif isinstance(node, CronInput):
            item = (node.project or spec.project, node.repo, "master")
        else:
            continue
        if item not in out:
            out.append(item)
    return out


def pipeline_input_summary(inp: Optional[Input]) -> str:
    """pachctl's INPUT column: `project/repo:glob`, `name:spec`, `(a ⨯ b)`, `(a ⋈ b)`,
    `(a ∪ b)`, `(Group: a, b)`, `none`."""
    if inp is None:
        return "none"
    if isinstance(inp, PfsInput):
        return f"{inp.project}/{inp.repo}:{inp.glob}"
    if isinstance(inp, CronInput):
        return f"{inp.name}:{inp.spec}"
    parts = [pipeline_input_summary(k) for k in inp.inputs]
    if isinstance(inp, GroupInput):
        return "(Group: " + ", ".join(parts) + ")"
    sep = {CrossInput: " ⨯ ", JoinInput: " ⋈ ", UnionInput: " ∪ "}[type(inp)]
    return "(" + sep.join(parts) + ")"


def effective_parallelism(spec: PipelineSpec, cpu_count: int) -> int:
    """Workers to run: `parallelism_spec.constant`, or the CPU count when it is 0/unset."""
    constant = spec.parallelism_spec.constant if spec.parallelism_spec else 0
    return constant if constant > 0 else max(1, cpu_count)


# ---- defaults and validation --------------------------------------------------------------
def _default_input(inp: Input, pipeline: str, project: str, triggers: dict[str, int]) -> Input:
    if isinstance(inp, PfsInput):
        if not inp.repo:
            raise InvalidArgument("input must specify a repo")
        if inp.repo == "out" and not inp.name:
            raise InvalidArgument(
                "inputs based on repos named \"out\" must have 'name' set, as pachyderm "
                "already creates /pfs/out to collect job output")
        changes: dict[str, Any] = {}
        if not inp.branch:
            if inp.trigger is not None:
                triggers[inp.repo] = triggers.get(inp.repo, 0) + 1
                changes["branch"] = f"{pipeline}-trigger-{triggers[inp.repo]}"
                if not inp.trigger.branch:
                    changes["trigger"] = dataclasses.replace(inp.trigger, branch="master")
            else:
                changes["branch"] = "master"
        if not inp.name:
            changes["name"] = inp.repo
        if not inp.repo_type:
            changes["repo_type"] = "user"
        if not inp.project:
            changes["project"] = project
        if inp.glob:
            changes["glob"] = clean_glob(inp.glob)
        return dataclasses.replace(inp, **changes)
    if isinstance(inp, CronInput):
        return dataclasses.replace(
            inp, repo=inp.repo or f"{pipeline}_{inp.name}", project=inp.project or project)
    return type(inp)(tuple(_default_input(k, pipeline, project, triggers) for k in inp.inputs))


def _validate_name(name: str) -> None:
    if not name:
        raise InvalidArgument("input must specify a name")
    if name in ("out", ".env"):
        raise InvalidArgument(f"input cannot be named {name}")


def _validate_names(names: set[str], inp: Optional[Input]) -> None:
    if isinstance(inp, (PfsInput, CronInput)):
        _validate_name(inp.name)
        if inp.name in names:
            raise InvalidArgument(f'name "{inp.name}" was used more than once')
        names.add(inp.name)
    elif isinstance(inp, UnionInput):
        merged: set[str] = set()
        for k in inp.inputs:  # union children may share names, but not with their siblings'
            copy = set(names)
            _validate_names(copy, k)
            merged |= copy
        names |= merged
    elif inp is not None:
        for k in inp.inputs:
            _validate_names(names, k)


def _has_s3(inp: Input) -> bool:
    return any(isinstance(n, PfsInput) and n.s3 for n in iter_inputs(inp))


def _validate_input(inp: Optional[Input]) -> None:
    _validate_names(set(), inp)
    for node in iter_inputs(inp):
        if isinstance(node, PfsInput):
            if not node.s3 and not node.glob:
                raise InvalidArgument("input must specify a glob")
            if node.s3 and node.glob != "/":
                raise InvalidArgument(
                    "inputs that set 's3' to 'true' must also set 'glob', to \"/\", as the S3 "
                    "gateway is only able to expose data at the commit level")
            if node.s3 and node.lazy:
                raise InvalidArgument("input cannot specify both 's3' and 'lazy', as 's3' requires "
                                      "input data to be accessed via Pachyderm's S3 gateway rather "
                                      "than the file system")
            if node.s3 and node.empty_files:
                raise InvalidArgument("input cannot specify both 's3' and 'empty_files', as 's3' "
                                      "requires input data to be accessed via Pachyderm's S3 "
                                      "gateway rather than the file system")
            if node.commit:
                raise InvalidArgument("input cannot come from a commit; use a branch with head "
                                      "pointing to the commit")
            compile_glob(node.glob)
        elif isinstance(node, CronInput):
            if node.commit:
                raise InvalidArgument("input cannot come from a commit; use a branch with head "
                                      "pointing to the commit")
            try:
                parse_schedule(node.spec)
            except InvalidArgument as e:
                raise InvalidArgument(f"error parsing cron-spec: {e.message}") from None
        elif isinstance(node, (JoinInput, GroupInput, UnionInput)) and _has_s3(node):
            kind = _KIND_OF[type(node)]
            raise InvalidArgument(f"S3 inputs in {kind} expressions are not supported")


def unknown_fields(d: dict) -> list[str]:
    """Paths of the keys of a spec dict that are not pipeline-spec fields (for warnings)."""
    found: list[str] = []
    try:
        _decode_msg(PipelineSpec, d, "", found)
    except InvalidArgument:
        pass
    return found


def normalize_spec(d: dict, project: str = "default", now: datetime | None = None,
                   strict: bool = True) -> PipelineSpec:
    """Decode, validate and default one spec dict (see the module invariants).

    `strict=False` drops unknown fields instead of rejecting them, as Pachyderm >= 2.8's
    manifest reader does (protojson DiscardUnknown); see `unknown_fields` to warn about them.
    `now` fills cron inputs' `start` when it is unset."""
    spec = _decode_msg(PipelineSpec, d, "", None if strict else [])
    if spec.pipeline is None:
        raise InvalidArgument("no `pipeline` specified")
    name = spec.pipeline.name
    if not name:
        raise InvalidArgument("no pipeline `name` specified")
    if not _NAME_RE.match(name):
        raise InvalidArgument(f"invalid pipeline name: name ({name}) invalid: only alphanumeric "
                              "characters, underscores, and dashes are allowed")
    if not name[0].isalnum():
        raise InvalidArgument("pipeline names must start with an alphanumeric character")
    if len(name) > MAX_PIPELINE_NAME:
        raise InvalidArgument(f'pipeline name "{name}" is {len(name) - MAX_PIPELINE_NAME} '
                              f"characters longer than the {MAX_PIPELINE_NAME} max")
    proj = (spec.pipeline.project.name if spec.pipeline.project else "") or project or "default"
    if not _NAME_RE.match(proj):
        raise InvalidArgument(f"invalid project name: name ({proj}) invalid: only alphanumeric "
                              "characters, underscores, and dashes are allowed")
    if spec.tf_job is not None:
        raise InvalidArgument("embedding TFJobs in pipelines is not supported yet")
    if spec.s3_out and (spec.service is not None or spec.spout is not None):
        raise InvalidArgument("s3 output is not supported in spouts or services")
    if spec.transform is None:
        raise InvalidArgument("pipeline must specify a transform")
    if spec.reprocess_spec not in ("", "until_success", "every_job"):
        raise InvalidArgument("invalid pipeline spec: ReprocessSpec must be one of "
                              "'until_success' or 'every_job'")
    if spec.spout is not None and spec.autoscaling:
        raise InvalidArgument("autoscaling can't be used with spouts (spouts aren't triggered externally)")
    if spec.datum_tries < 0:
        raise InvalidArgument(f"datum_tries must be >= 0, got {spec.datum_tries}")
    for fname in ("datum_timeout", "job_timeout", "maximum_expected_uptime"):
        if (getattr(spec, fname) or 0) < 0:
            raise InvalidArgument(f"{fname} must not be negative")
    if spec.parallelism_spec is not None and spec.parallelism_spec.constant < 0:
        raise InvalidArgument("parallelism_spec.constant must be >= 0")
    if spec.service is None and spec.spout is None and not spec.transform.cmd:
        raise InvalidArgument("invalid transform: pipeline transform must specify a cmd")
    for s in spec.transform.secrets:
        if s.env_var and not s.key:
            raise InvalidArgument(f"secret {s.name} has env_var set but is missing key")

    inp = spec.input
    if inp is not None:
        # sorted before default names are filled in (setInputDefaults) and again after
        # (initializePipelineInfo): ties among effective names keep the given-name order
        inp = _default_input(_sort_inputs(inp), name, proj, {})
        if now is not None:
            inp = _fill_cron_start(inp, now)
        inp = _sort_inputs(inp)
    service = spec.service
    if service is not None and not service.type:
        service = dataclasses.replace(service, type="NodePort")
    spout = spec.spout
    if spout is not None and spout.service is not None and not spout.service.type:
        spout = Spout(dataclasses.replace(spout.service, type="NodePort"))
    spec = dataclasses.replace(
        spec,
        pipeline=Pipeline(Project(proj), name),
        transform=dataclasses.replace(spec.transform, image=spec.transform.image or DEFAULT_IMAGE),
        input=inp,
        service=service,
        spout=spout,
        output_branch=spec.output_branch or "master",
        datum_tries=spec.datum_tries or DEFAULT_DATUM_TRIES,
        reprocess_spec=spec.reprocess_spec or "until_success",
    )
    _validate_input(spec.input)
    if spec.service is not None:
        if spec.parallelism_spec is not None and spec.parallelism_spec.constant != 1:
            raise InvalidArgument("services can only be run with a constant parallelism of 1")
        if spec.service.type not in ("ClusterIP", "LoadBalancer", "NodePort"):
            raise InvalidArgument(f"the following service type {spec.service.type} is not allowed")
    if spec.spout is not None and spec.spout.service is None and spec.input is not None:
        raise InvalidArgument("spout pipelines (without a service) must not have an input")
    for fname, label in (("pod_spec", "PodSpec"), ("pod_patch", "PodPatch")):
        text = getattr(spec, fname)
        if text:
            try:
                json.loads(text)
            except ValueError:
                raise InvalidArgument(f"malformed {label}") from None
    return spec


def _fill_cron_start(inp: Input, now: datetime) -> Input:
    if isinstance(inp, CronInput):
        return inp if inp.start else dataclasses.replace(inp, start=_decode_time(now, "start"))
    if isinstance(inp, PfsInput):
        return inp
    return type(inp)(tuple(_fill_cron_start(k, now) for k in inp.inputs))


# ---- back to a dict ------------------------------------------------------------------------
def _encode(value: Any, hint: Any, camel: bool) -> Any:
    if hint == Optional[Input] or hint == Input:
        return input_to_dict(value, camel)
    if isinstance(value, tuple):
        args = typing.get_args(hint)
        return [_encode(v, args[0] if args else Any, camel) for v in value]
    if dataclasses.is_dataclass(value):
        return message_to_dict(value, camel)
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if hint in (Duration, Optional[Duration]):
        return format_duration(value)
    if isinstance(value, dict):
        return dict(value)
    return value


def message_to_dict(msg: Any, camel: bool = False) -> dict:
    """Proto3-style dict: zero values omitted, set messages kept (even when empty)."""
    hints, _ = _hints(type(msg))
    out: dict[str, Any] = {}
    for f in dataclasses.fields(msg):
        v = getattr(msg, f.name)
        if v is None or (v == f.default and not dataclasses.is_dataclass(v)) or v in ((), {}):
            continue
        out[_camel(f.name) if camel else f.name] = _encode(v, hints[f.name], camel)
    return out


def input_to_dict(inp: Optional[Input], camel: bool = False) -> Optional[dict]:
    if inp is None:
        return None
    kind = _KIND_OF[type(inp)]
    if kind in ("pfs", "cron"):
        return {kind: message_to_dict(inp, camel)}
    return {kind: [input_to_dict(k, camel) for k in inp.inputs]}


def spec_to_dict(spec: PipelineSpec, camel: bool = False) -> dict:
    """The canonical dict of a spec (snake_case proto names, or lowerCamel JSON names)."""
    return message_to_dict(spec, camel)


def load_specs(text: str, project: str = "default", strict: bool = True) -> list[PipelineSpec]:
    """parse_specs + normalize_spec for every spec in a file."""
    return [normalize_spec(d, project, strict=strict) for d in parse_specs(text)]
