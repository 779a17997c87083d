from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class GarbageCollectRequest(_message.Message):
    __slots__ = ("orphans", "no_compaction")
    ORPHANS_FIELD_NUMBER: _ClassVar[int]
    NO_COMPACTION_FIELD_NUMBER: _ClassVar[int]
    orphans: bool
    no_compaction: bool
    def __init__(self, orphans: _Optional[bool] = ..., no_compaction: _Optional[bool] = ...) -> None: ...

class GarbageCollectResponse(_message.Message):
    __slots__ = ("objects_deleted", "bytes_reclaimed", "packs_deleted", "pack_bytes_deleted", "nodes_deleted", "orphans_deleted", "packs_compacted", "chunk_entries_deleted", "leases_live", "packs_kept_leased", "seconds", "skipped", "damage", "packs_seen", "pack_bytes_seen")
    OBJECTS_DELETED_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECLAIMED_FIELD_NUMBER: _ClassVar[int]
    PACKS_DELETED_FIELD_NUMBER: _ClassVar[int]
    PACK_BYTES_DELETED_FIELD_NUMBER: _ClassVar[int]
    NODES_DELETED_FIELD_NUMBER: _ClassVar[int]
    ORPHANS_DELETED_FIELD_NUMBER: _ClassVar[int]
    PACKS_COMPACTED_FIELD_NUMBER: _ClassVar[int]
    CHUNK_ENTRIES_DELETED_FIELD_NUMBER: _ClassVar[int]
    LEASES_LIVE_FIELD_NUMBER: _ClassVar[int]
    PACKS_KEPT_LEASED_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    DAMAGE_FIELD_NUMBER: _ClassVar[int]
    PACKS_SEEN_FIELD_NUMBER: _ClassVar[int]
    PACK_BYTES_SEEN_FIELD_NUMBER: _ClassVar[int]
    objects_deleted: int
    bytes_reclaimed: int
    packs_deleted: int
    pack_bytes_deleted: int
    nodes_deleted: int
    orphans_deleted: int
    packs_compacted: int
    chunk_entries_deleted: int
    leases_live: int
    packs_kept_leased: int
    seconds: float
    skipped: str
    damage: _containers.RepeatedScalarFieldContainer[str]
    packs_seen: int
    pack_bytes_seen: int
    def __init__(self, objects_deleted: _Optional[int] = ..., bytes_reclaimed: _Optional[int] = ..., packs_deleted: _Optional[int] = ..., pack_bytes_deleted: _Optional[int] = ..., nodes_deleted: _Optional[int] = ..., orphans_deleted: _Optional[int] = ..., packs_compacted: _Optional[int] = ..., chunk_entries_deleted: _Optional[int] = ..., leases_live: _Optional[int] = ..., packs_kept_leased: _Optional[int] = ..., seconds: _Optional[float] = ..., skipped: _Optional[str] = ..., damage: _Optional[_Iterable[str]] = ..., packs_seen: _Optional[int] = ..., pack_bytes_seen: _Optional[int] = ...) -> None: ...

class ShipMetadataRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ShipMetadataResponse(_message.Message):
    __slots__ = ("generation", "files_uploaded", "bytes_uploaded", "seconds")
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    FILES_UPLOADED_FIELD_NUMBER: _ClassVar[int]
    BYTES_UPLOADED_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    generation: int
    files_uploaded: int
    bytes_uploaded: int
    seconds: float
    def __init__(self, generation: _Optional[int] = ..., files_uploaded: _Optional[int] = ..., bytes_uploaded: _Optional[int] = ..., seconds: _Optional[float] = ...) -> None: ...

class BackupRequest(_message.Message):
    __slots__ = ("destination",)
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    destination: str
    def __init__(self, destination: _Optional[str] = ...) -> None: ...

class BackupResponse(_message.Message):
    __slots__ = ("objects_copied", "bytes_copied", "metadata_files", "seconds")
    OBJECTS_COPIED_FIELD_NUMBER: _ClassVar[int]
    BYTES_COPIED_FIELD_NUMBER: _ClassVar[int]
    METADATA_FILES_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    objects_copied: int
    bytes_copied: int
    metadata_files: int
    seconds: float
    def __init__(self, objects_copied: _Optional[int] = ..., bytes_copied: _Optional[int] = ..., metadata_files: _Optional[int] = ..., seconds: _Optional[float] = ...) -> None: ...
