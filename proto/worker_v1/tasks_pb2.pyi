import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DatumOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNKNOWN: _ClassVar[DatumOutcome]
    SUCCESS: _ClassVar[DatumOutcome]
    FAILED: _ClassVar[DatumOutcome]
    RECOVERED: _ClassVar[DatumOutcome]
    CANCELLED: _ClassVar[DatumOutcome]
OUTCOME_UNKNOWN: DatumOutcome
SUCCESS: DatumOutcome
FAILED: DatumOutcome
RECOVERED: DatumOutcome
CANCELLED: DatumOutcome

class Input(_message.Message):
    __slots__ = ("name", "project", "repo", "branch", "commit", "path", "hash", "join_on", "group_by", "lazy", "empty_files", "s3", "size_bytes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    REPO_FIELD_NUMBER: _ClassVar[int]
    BRANCH_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    JOIN_ON_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    LAZY_FIELD_NUMBER: _ClassVar[int]
    EMPTY_FILES_FIELD_NUMBER: _ClassVar[int]
    S3_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    project: str
    repo: str
    branch: str
    commit: str
    path: str
    hash: bytes
    join_on: str
    group_by: str
    lazy: bool
    empty_files: bool
    s3: bool
    size_bytes: int
    def __init__(self, name: _Optional[str] = ..., project: _Optional[str] = ..., repo: _Optional[str] = ..., branch: _Optional[str] = ..., commit: _Optional[str] = ..., path: _Optional[str] = ..., hash: _Optional[bytes] = ..., join_on: _Optional[str] = ..., group_by: _Optional[str] = ..., lazy: _Optional[bool] = ..., empty_files: _Optional[bool] = ..., s3: _Optional[bool] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class Datum(_message.Message):
    __slots__ = ("id", "inputs")
    ID_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    inputs: _containers.RepeatedCompositeFieldContainer[Input]
    def __init__(self, id: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[Input, _Mapping]]] = ...) -> None: ...

class NextTaskRequest(_message.Message):
    __slots__ = ("project", "pipeline", "worker_id", "max_datums", "wait_seconds")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_DATUMS_FIELD_NUMBER: _ClassVar[int]
    WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    project: str
    pipeline: str
    worker_id: str
    max_datums: int
    wait_seconds: float
    def __init__(self, project: _Optional[str] = ..., pipeline: _Optional[str] = ..., worker_id: _Optional[str] = ..., max_datums: _Optional[int] = ..., wait_seconds: _Optional[float] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("task_id", "job_id", "output_commit", "pipeline_version", "datums", "stop", "datum_timeout", "datum_tries", "output_repo", "output_branch", "env")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_COMMIT_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_VERSION_FIELD_NUMBER: _ClassVar[int]
    DATUMS_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    DATUM_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    DATUM_TRIES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_REPO_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_BRANCH_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    job_id: str
    output_commit: str
    pipeline_version: int
    datums: _containers.RepeatedCompositeFieldContainer[Datum]
    stop: bool
    datum_timeout: _duration_pb2.Duration
    datum_tries: int
    output_repo: str
    output_branch: str
    env: _containers.ScalarMap[str, str]
    def __init__(self, task_id: _Optional[str] = ..., job_id: _Optional[str] = ..., output_commit: _Optional[str] = ..., pipeline_version: _Optional[int] = ..., datums: _Optional[_Iterable[_Union[Datum, _Mapping]]] = ..., stop: _Optional[bool] = ..., datum_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., datum_tries: _Optional[int] = ..., output_repo: _Optional[str] = ..., output_branch: _Optional[str] = ..., env: _Optional[_Mapping[str, str]] = ...) -> None: ...

class DatumResult(_message.Message):
    __slots__ = ("datum_id", "outcome", "reason", "download_time", "process_time", "upload_time", "download_bytes", "upload_bytes", "outputs", "attempts")
    DATUM_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DOWNLOAD_TIME_FIELD_NUMBER: _ClassVar[int]
    PROCESS_TIME_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_TIME_FIELD_NUMBER: _ClassVar[int]
    DOWNLOAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    datum_id: str
    outcome: DatumOutcome
    reason: str
    download_time: _duration_pb2.Duration
    process_time: _duration_pb2.Duration
    upload_time: _duration_pb2.Duration
    download_bytes: int
    upload_bytes: int
    outputs: _containers.RepeatedScalarFieldContainer[str]
    attempts: int
    def __init__(self, datum_id: _Optional[str] = ..., outcome: _Optional[_Union[DatumOutcome, str]] = ..., reason: _Optional[str] = ..., download_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., process_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., upload_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., download_bytes: _Optional[int] = ..., upload_bytes: _Optional[int] = ..., outputs: _Optional[_Iterable[str]] = ..., attempts: _Optional[int] = ...) -> None: ...

class LogLine(_message.Message):
    __slots__ = ("datum_id", "user", "ts", "message", "worker_id")
    DATUM_ID_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    TS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    datum_id: str
    user: bool
    ts: _timestamp_pb2.Timestamp
    message: str
    worker_id: str
    def __init__(self, datum_id: _Optional[str] = ..., user: _Optional[bool] = ..., ts: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message: _Optional[str] = ..., worker_id: _Optional[str] = ...) -> None: ...

class CompleteTaskRequest(_message.Message):
    __slots__ = ("task_id", "worker_id", "results", "logs")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    LOGS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    worker_id: str
    results: _containers.RepeatedCompositeFieldContainer[DatumResult]
    logs: _containers.RepeatedCompositeFieldContainer[LogLine]
    def __init__(self, task_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., results: _Optional[_Iterable[_Union[DatumResult, _Mapping]]] = ..., logs: _Optional[_Iterable[_Union[LogLine, _Mapping]]] = ...) -> None: ...

class CompleteTaskResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("project", "pipeline", "worker_id", "task_id", "datum_id", "datum_started", "logs")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    DATUM_ID_FIELD_NUMBER: _ClassVar[int]
    DATUM_STARTED_FIELD_NUMBER: _ClassVar[int]
    LOGS_FIELD_NUMBER: _ClassVar[int]
    project: str
    pipeline: str
    worker_id: str
    task_id: str
    datum_id: str
    datum_started: _timestamp_pb2.Timestamp
    logs: _containers.RepeatedCompositeFieldContainer[LogLine]
    def __init__(self, project: _Optional[str] = ..., pipeline: _Optional[str] = ..., worker_id: _Optional[str] = ..., task_id: _Optional[str] = ..., datum_id: _Optional[str] = ..., datum_started: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., logs: _Optional[_Iterable[_Union[LogLine, _Mapping]]] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("cancel_task", "restart_datums")
    CANCEL_TASK_FIELD_NUMBER: _ClassVar[int]
    RESTART_DATUMS_FIELD_NUMBER: _ClassVar[int]
    cancel_task: bool
    restart_datums: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cancel_task: _Optional[bool] = ..., restart_datums: _Optional[_Iterable[str]] = ...) -> None: ...
