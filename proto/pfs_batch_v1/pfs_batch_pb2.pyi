from google.protobuf import wrappers_pb2 as _wrappers_pb2
from proto.pfs_v2 import pfs_pb2 as _pfs_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FileInfoBatch(_message.Message):
    __slots__ = ("file_infos",)
    FILE_INFOS_FIELD_NUMBER: _ClassVar[int]
    file_infos: _containers.RepeatedCompositeFieldContainer[_pfs_pb2.FileInfo]
    def __init__(self, file_infos: _Optional[_Iterable[_Union[_pfs_pb2.FileInfo, _Mapping]]] = ...) -> None: ...

class ReadRangeRequest(_message.Message):
    __slots__ = ("file", "offset", "length")
    FILE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    file: _pfs_pb2.File
    offset: int
    length: int
    def __init__(self, file: _Optional[_Union[_pfs_pb2.File, _Mapping]] = ..., offset: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...
