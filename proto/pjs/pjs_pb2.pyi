from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobErrorCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JobErrorCode_UNSPECIFIED: _ClassVar[JobErrorCode]
    FAILED: _ClassVar[JobErrorCode]
    DISCONNECTED: _ClassVar[JobErrorCode]
    CANCELED: _ClassVar[JobErrorCode]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JobState_UNSPECIFIED: _ClassVar[JobState]
    QUEUED: _ClassVar[JobState]
    PROCESSING: _ClassVar[JobState]
    DONE: _ClassVar[JobState]

class WalkAlgorithm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNKNOWN: _ClassVar[WalkAlgorithm]
    LEVEL_ORDER: _ClassVar[WalkAlgorithm]
    PRE_ORDER: _ClassVar[WalkAlgorithm]
    MIRRORED_POST_ORDER: _ClassVar[WalkAlgorithm]
JobErrorCode_UNSPECIFIED: JobErrorCode
FAILED: JobErrorCode
DISCONNECTED: JobErrorCode
CANCELED: JobErrorCode
JobState_UNSPECIFIED: JobState
QUEUED: JobState
PROCESSING: JobState
DONE: JobState
UNKNOWN: WalkAlgorithm
LEVEL_ORDER: WalkAlgorithm
PRE_ORDER: WalkAlgorithm
MIRRORED_POST_ORDER: WalkAlgorithm

class AwaitJobRequest(_message.Message):
    __slots__ = ("context", "job", "desired_state")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    DESIRED_STATE_FIELD_NUMBER: _ClassVar[int]
    context: str
    job: Job
    desired_state: JobState
    def __init__(self, context: _Optional[str] = ..., job: _Optional[_Union[Job, _Mapping]] = ..., desired_state: _Optional[_Union[JobState, str]] = ...) -> None: ...

class AwaitJobResponse(_message.Message):
    __slots__ = ("actual_state",)
    ACTUAL_STATE_FIELD_NUMBER: _ClassVar[int]
    actual_state: JobState
    def __init__(self, actual_state: _Optional[_Union[JobState, str]] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("context", "job")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    context: str
    job: Job
    def __init__(self, context: _Optional[str] = ..., job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class CancelJobResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateJobRequest(_message.Message):
    __slots__ = ("context", "program", "input", "cache_read", "cache_write")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    CACHE_READ_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_FIELD_NUMBER: _ClassVar[int]
    context: str
    program: str
    input: _containers.RepeatedScalarFieldContainer[str]
    cache_read: bool
    cache_write: bool
    def __init__(self, context: _Optional[str] = ..., program: _Optional[str] = ..., input: _Optional[_Iterable[str]] = ..., cache_read: _Optional[bool] = ..., cache_write: _Optional[bool] = ...) -> None: ...

class CreateJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class DeleteJobRequest(_message.Message):
    __slots__ = ("context", "job")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    context: str
    job: Job
    def __init__(self, context: _Optional[str] = ..., job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class DeleteJobResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InspectJobRequest(_message.Message):
    __slots__ = ("context", "job")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    context: str
    job: Job
    def __init__(self, context: _Optional[str] = ..., job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class InspectJobResponse(_message.Message):
    __slots__ = ("details",)
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    details: JobInfoDetails
    def __init__(self, details: _Optional[_Union[JobInfoDetails, _Mapping]] = ...) -> None: ...

class InspectQueueRequest(_message.Message):
    __slots__ = ("queue",)
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    queue: Queue
    def __init__(self, queue: _Optional[_Union[Queue, _Mapping]] = ...) -> None: ...

class InspectQueueResponse(_message.Message):
    __slots__ = ("details",)
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    details: QueueInfoDetails
    def __init__(self, details: _Optional[_Union[QueueInfoDetails, _Mapping]] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class JobInfo(_message.Message):
    __slots__ = ("job", "parent_job", "state", "program", "input", "success", "error")
    class Success(_message.Message):
        __slots__ = ("output",)
        OUTPUT_FIELD_NUMBER: _ClassVar[int]
        output: _containers.RepeatedScalarFieldContainer[str]
        def __init__(self, output: _Optional[_Iterable[str]] = ...) -> None: ...
    JOB_FIELD_NUMBER: _ClassVar[int]
    PARENT_JOB_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    job: Job
    parent_job: Job
    state: JobState
    program: str
    input: _containers.RepeatedScalarFieldContainer[str]
    success: JobInfo.Success
    error: JobErrorCode
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., parent_job: _Optional[_Union[Job, _Mapping]] = ..., state: _Optional[_Union[JobState, str]] = ..., program: _Optional[str] = ..., input: _Optional[_Iterable[str]] = ..., success: _Optional[_Union[JobInfo.Success, _Mapping]] = ..., error: _Optional[_Union[JobErrorCode, str]] = ...) -> None: ...

class JobInfoDetails(_message.Message):
    __slots__ = ("job_info",)
    JOB_INFO_FIELD_NUMBER: _ClassVar[int]
    job_info: JobInfo
    def __init__(self, job_info: _Optional[_Union[JobInfo, _Mapping]] = ...) -> None: ...

class ListJobRequest(_message.Message):
    __slots__ = ("context", "job")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    context: str
    job: Job
    def __init__(self, context: _Optional[str] = ..., job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class ListJobResponse(_message.Message):
    __slots__ = ("job", "info", "details")
    JOB_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    job: Job
    info: JobInfo
    details: JobInfoDetails
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., info: _Optional[_Union[JobInfo, _Mapping]] = ..., details: _Optional[_Union[JobInfoDetails, _Mapping]] = ...) -> None: ...

class ListQueueRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListQueueResponse(_message.Message):
    __slots__ = ("queue", "info", "details")
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    queue: Queue
    info: QueueInfo
    details: QueueInfoDetails
    def __init__(self, queue: _Optional[_Union[Queue, _Mapping]] = ..., info: _Optional[_Union[QueueInfo, _Mapping]] = ..., details: _Optional[_Union[QueueInfoDetails, _Mapping]] = ...) -> None: ...

class ProcessQueueRequest(_message.Message):
    __slots__ = ("queue", "success", "failed")
    class Success(_message.Message):
        __slots__ = ("output",)
        OUTPUT_FIELD_NUMBER: _ClassVar[int]
        output: _containers.RepeatedScalarFieldContainer[str]
        def __init__(self, output: _Optional[_Iterable[str]] = ...) -> None: ...
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    queue: Queue
    success: ProcessQueueRequest.Success
    failed: bool
    def __init__(self, queue: _Optional[_Union[Queue, _Mapping]] = ..., success: _Optional[_Union[ProcessQueueRequest.Success, _Mapping]] = ..., failed: _Optional[bool] = ...) -> None: ...

class ProcessQueueResponse(_message.Message):
    __slots__ = ("context", "input")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    context: str
    input: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, context: _Optional[str] = ..., input: _Optional[_Iterable[str]] = ...) -> None: ...

class Queue(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: bytes
    def __init__(self, id: _Optional[bytes] = ...) -> None: ...

class QueueInfo(_message.Message):
    __slots__ = ("queue", "program")
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_FIELD_NUMBER: _ClassVar[int]
    queue: Queue
    program: str
    def __init__(self, queue: _Optional[_Union[Queue, _Mapping]] = ..., program: _Optional[str] = ...) -> None: ...

class QueueInfoDetails(_message.Message):
    __slots__ = ("queue_info", "size")
    QUEUE_INFO_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    queue_info: QueueInfo
    size: int
    def __init__(self, queue_info: _Optional[_Union[QueueInfo, _Mapping]] = ..., size: _Optional[int] = ...) -> None: ...

class WalkJobRequest(_message.Message):
    __slots__ = ("context", "job", "algorithm", "max_depth")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    MAX_DEPTH_FIELD_NUMBER: _ClassVar[int]
    context: str
    job: Job
    algorithm: WalkAlgorithm
    max_depth: int
    def __init__(self, context: _Optional[str] = ..., job: _Optional[_Union[Job, _Mapping]] = ..., algorithm: _Optional[_Union[WalkAlgorithm, str]] = ..., max_depth: _Optional[int] = ...) -> None: ...
