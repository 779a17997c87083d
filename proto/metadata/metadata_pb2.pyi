from proto.pfs_v2 import pfs_pb2 as _pfs_pb2
from proto.pps_v2 import pps_pb2 as _pps_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClusterPicker(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Edit(_message.Message):
    __slots__ = ("project", "commit", "branch", "repo", "cluster", "pipeline", "replace", "add_key", "edit_key", "delete_key")
    class Replace(_message.Message):
        __slots__ = ("replacement",)
        class ReplacementEntry(_message.Message):
            __slots__ = ("key", "value")
            KEY_FIELD_NUMBER: _ClassVar[int]
            VALUE_FIELD_NUMBER: _ClassVar[int]
            key: str
            value: str
            def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
        REPLACEMENT_FIELD_NUMBER: _ClassVar[int]
        replacement: _containers.ScalarMap[str, str]
        def __init__(self, replacement: _Optional[_Mapping[str, str]] = ...) -> None: ...
    class AddKey(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class EditKey(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class DeleteKey(_message.Message):
        __slots__ = ("key",)
        KEY_FIELD_NUMBER: _ClassVar[int]
        key: str
        def __init__(self, key: _Optional[str] = ...) -> None: ...
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    BRANCH_FIELD_NUMBER: _ClassVar[int]
    REPO_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    ADD_KEY_FIELD_NUMBER: _ClassVar[int]
    EDIT_KEY_FIELD_NUMBER: _ClassVar[int]
    DELETE_KEY_FIELD_NUMBER: _ClassVar[int]
    project: _pfs_pb2.ProjectPicker
    commit: _pfs_pb2.CommitPicker
    branch: _pfs_pb2.BranchPicker
    repo: _pfs_pb2.RepoPicker
    cluster: ClusterPicker
    pipeline: _pps_pb2.PipelinePicker
    replace: Edit.Replace
    add_key: Edit.AddKey
    edit_key: Edit.EditKey
    delete_key: Edit.DeleteKey
    def __init__(self, project: _Optional[_Union[_pfs_pb2.ProjectPicker, _Mapping]] = ..., commit: _Optional[_Union[_pfs_pb2.CommitPicker, _Mapping]] = ..., branch: _Optional[_Union[_pfs_pb2.BranchPicker, _Mapping]] = ..., repo: _Optional[_Union[_pfs_pb2.RepoPicker, _Mapping]] = ..., cluster: _Optional[_Union[ClusterPicker, _Mapping]] = ..., pipeline: _Optional[_Union[_pps_pb2.PipelinePicker, _Mapping]] = ..., replace: _Optional[_Union[Edit.Replace, _Mapping]] = ..., add_key: _Optional[_Union[Edit.AddKey, _Mapping]] = ..., edit_key: _Optional[_Union[Edit.EditKey, _Mapping]] = ..., delete_key: _Optional[_Union[Edit.DeleteKey, _Mapping]] = ...) -> None: ...

class EditMetadataRequest(_message.Message):
    __slots__ = ("edits",)
    EDITS_FIELD_NUMBER: _ClassVar[int]
    edits: _containers.RepeatedCompositeFieldContainer[Edit]
    def __init__(self, edits: _Optional[_Iterable[_Union[Edit, _Mapping]]] = ...) -> None: ...

class EditMetadataResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
