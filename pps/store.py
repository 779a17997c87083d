"""Persistent records of the pipeline system: pipelines (every version), jobs, datums, logs.

Invariants:
- Records live in the same metadata store as pfs, under `X\\0<kind>\\0...` keys
  (pfs.core.keys.pps_key), encoded as msgpack dicts; unknown fields are kept on read.
- A pipeline has one current record plus one record per version (history); the current
  record is rewritten only by the master, under its lock.
- A job's datum table holds EVERY datum of the job, including skipped ones, so the next job
  can classify against this one alone. It is an immutable sorted tree (pfs.core.index, in its
  own node space under `X\0dnode\0<project>\0<pipeline>\0`) whose root the job record keeps
  (`datum_root`): a job derives its table from its base's by editing only the datums it
  removes or runs, so carrying the table forward costs O(changed x log N), not O(N), and
  every job's table shares all unchanged nodes with its base's. The key index of joins and
  groups (pps.planning) is carried the same way (`key_root`). Nodes are deleted with their
  pipeline; a deleted job's nodes stay (other jobs share them).
- Log lines are append-only and ordered by a per-process sequence number under their job.
"""
from __future__ import annotations

import itertools
import struct
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Iterable, Iterator, Optional

import msgpack

from pfs.core.index import IndexTree
from pfs.core.keys import pps_key, pps_prefix

# job states (names as in pps_v2.JobState)
JOB_CREATED, JOB_STARTING, JOB_RUNNING = "JOB_CREATED", "JOB_STARTING", "JOB_RUNNING"
JOB_FAILURE, JOB_SUCCESS, JOB_KILLED = "JOB_FAILURE", "JOB_SUCCESS", "JOB_KILLED"
JOB_EGRESSING, JOB_FINISHING, JOB_UNRUNNABLE = "JOB_EGRESSING", "JOB_FINISHING", "JOB_UNRUNNABLE"
TERMINAL = {JOB_FAILURE, JOB_SUCCESS, JOB_KILLED, JOB_UNRUNNABLE}

# datum states (pps_v2.DatumState names)
D_FAILED, D_SUCCESS, D_SKIPPED, D_STARTING, D_RECOVERED = "FAILED", "SUCCESS", "SKIPPED", "STARTING", "RECOVERED"


def _pack(d: dict) -> bytes:
    return msgpack.packb(d, use_bin_type=True)


def _unpack(b: bytes) -> dict:
    return msgpack.unpackb(b, raw=False)


@dataclass
class PipelineRecord:
    project: str
    name: str
    version: int
    spec: dict  # canonical spec dict (pps.spec.spec_to_dict), defaults filled
    user_spec_json: str
    salt: str
    created_at: float
    updated_at: float
    state: str = "PIPELINE_STARTING"
    stopped: bool = False
    reason: str = ""
    last_job_state: str = ""
    parallelism: int = 1
    spec_commit: str = ""
    metadata: dict = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.project, self.name)


@dataclass
class JobRecord:
    project: str
    pipeline: str
    id: str
    pipeline_version: int
    output_repo: str
    output_branch: str
    state: str = JOB_CREATED
    reason: str = ""
    created: float = 0.0
    started: Optional[float] = None
    finished: Optional[float] = None
    restart: int = 0
    data_processed: int = 0
    data_skipped: int = 0
    data_total: int = 0
    data_failed: int = 0
    data_recovered: int = 0
    download_time: float = 0.0
    process_time: float = 0.0
    upload_time: float = 0.0
    download_bytes: int = 0
    upload_bytes: int = 0
    seq: int = 0
    salt: str = ""  # the pipeline salt the job's datum hashes were computed with
    datum_root: Optional[bytes] = None  # root of the job's datum table (see the module doc)
    key_root: Optional[bytes] = None  # root of its joins' and groups' key index (pps.planning)
    has_key_index: bool = False  # key_root is this job's key index (None: an empty one)


@dataclass
class DatumRecord:
    id: str
    hash: str
    state: str  # SUCCESS / SKIPPED / FAILED / RECOVERED / STARTING
    inputs: list  # [[name, project, repo, branch, commit, path, hash(bytes), size], ...]
    outputs: list = field(default_factory=list)  # output paths
    reason: str = ""
    download_time: float = 0.0
    process_time: float = 0.0
    upload_time: float = 0.0
    download_bytes: int = 0
    upload_bytes: int = 0
    attempts: int = 0
    detail_job: str = ""  # the job whose run of this datum the details come from

    @property
    def processed_ok(self) -> bool:
        """Counts as 'processed' for skipping in the next job (Pachyderm's meta state)."""
        return self.state in (D_SUCCESS, D_SKIPPED)


@dataclass
class LogRecord:
    project: str
    pipeline: str
    job_id: str
    datum_id: str
    worker_id: str
    master: bool
    user: bool
    ts: float
    message: str
    data: list = field(default_factory=list)  # [[path, hash], ...]


def _from(cls, d: dict):
    names = cls.__dataclass_fields__
    return cls(**{k: v for k, v in d.items() if k in names})


class _NodeSpace:
    """The NodeStore of one pipeline's datum tables and key indexes."""

    def __init__(self, meta, prefix: bytes):
        self.meta, self.prefix = meta, prefix

    def get_node(self, node_hash: bytes) -> bytes:
        raw = self.meta.get(self.prefix + node_hash)
        if raw is None:
            raise KeyError(f"datum table node {node_hash.hex()} is missing from the metadata store")
        return raw

    def put_node(self, node_hash: bytes, data: bytes) -> None:
        self.meta.put(self.prefix + node_hash, data)

    def put_nodes(self, nodes: list, root=None, lease=None) -> None:
        # not synced: a node is reachable only through a record written after it (a job's
        # root), and the store's log is ordered, so syncing that record syncs the node too
        for i in range(0, len(nodes), 5000):
            with self.meta.batch(durable=False) as b:
                for h, data in nodes[i:i + 5000]:
                    b.put(self.prefix + h, data)


class PpsStore:
    def __init__(self, meta):
        self.meta = meta
        self._log_seq = itertools.count(int(time.time() * 1000) << 8)
        self._lock = threading.Lock()
        self._trees: dict[tuple[str, str], IndexTree] = {}

    def tree(self, project: str, pipeline: str) -> IndexTree:
        """The index tree holding this pipeline's datum tables and key indexes."""
        with self._lock:
            t = self._trees.get((project, pipeline))
            if t is None:
                t = IndexTree(_NodeSpace(self.meta, pps_prefix("dnode", project, pipeline)), cache_nodes=4096)
                self._trees[(project, pipeline)] = t
            return t

    # ---- pipelines -------------------------------------------------------------------------
    def put_pipeline(self, p: PipelineRecord, batch=None) -> None:
        raw = _pack(asdict(p))
        b = batch if batch is not None else self.meta.batch()
        b.put(pps_key("pipeline", p.project, p.name), raw)
        b.put(pps_key("pipeline_v", p.project, p.name, "%010d" % p.version), raw)
        if batch is None:
            b.commit()

    def get_pipeline(self, project: str, name: str) -> Optional[PipelineRecord]:
        raw = self.meta.get(pps_key("pipeline", project, name))
        return None if raw is None else _from(PipelineRecord, _unpack(raw))

    def pipeline_versions(self, project: str, name: str) -> list[PipelineRecord]:
        """Newest first."""
        return [_from(PipelineRecord, _unpack(v))
                for _, v in self.meta.scan(prefix=pps_prefix("pipeline_v", project, name), reverse=True)]

    def list_pipelines(self, project: Optional[str] = None) -> list[PipelineRecord]:
        prefix = pps_prefix("pipeline", project) if project else pps_prefix("pipeline")
        return [_from(PipelineRecord, _unpack(v)) for _, v in self.meta.scan(prefix=prefix)]

    def delete_pipeline(self, project: str, name: str) -> None:
        with self.meta.batch() as b:
            b.delete(pps_key("pipeline", project, name))
            for k, _ in self.meta.scan(prefix=pps_prefix("pipeline_v", project, name)):
                b.delete(k)
        for j in self.list_jobs(project, name):
            self.delete_job(j)
        with self.meta.batch() as b:
            for kind in ("log", "ddet", "dnode"):
                for k, _ in self.meta.scan(prefix=pps_prefix(kind, project, name)):
                    b.delete(k)
        with self._lock:
            self._trees.pop((project, name), None)

    # ---- jobs --------------------------------------------------------------------------------
    def put_job(self, j: JobRecord, durable: bool = True) -> None:
        """`durable=False`: not synced by itself (kept in order with every other write, so a
        crash can only lose it together with everything written after it)."""
        raw = _pack(asdict(j))
        with self.meta.batch(durable=durable) as b:
            b.put(pps_key("job", j.project, j.pipeline, j.id), raw)
            b.put(pps_key("jobset", j.id, j.project, j.pipeline), b"")

    def get_job(self, project: str, pipeline: str, job_id: str) -> Optional[JobRecord]:
        raw = self.meta.get(pps_key("job", project, pipeline, job_id))
        return None if raw is None else _from(JobRecord, _unpack(raw))

    def list_jobs(self, project: Optional[str] = None, pipeline: Optional[str] = None) -> list[JobRecord]:
        """Newest first."""
        if project and pipeline:
            prefix = pps_prefix("job", project, pipeline)
        elif project:
            prefix = pps_prefix("job", project)
        else:
            prefix = pps_prefix("job")
        jobs = [_from(JobRecord, _unpack(v)) for _, v in self.meta.scan(prefix=prefix)]
        jobs.sort(key=lambda j: (j.created, j.seq), reverse=True)
        return jobs

    def job_set(self, job_id: str) -> list[JobRecord]:
        out = []
        for k, _ in self.meta.scan(prefix=pps_prefix("jobset", job_id)):
            parts = k.split(b"\x00")
            j = self.get_job(parts[3].decode(), parts[4].decode(), job_id)
            if j is not None:
                out.append(j)
        return out

    def delete_job(self, j: JobRecord) -> None:
        with self.meta.batch() as b:
            b.delete(pps_key("job", j.project, j.pipeline, j.id))
            b.delete(pps_key("jobset", j.id, j.project, j.pipeline))
            for k, _ in self.meta.scan(prefix=pps_prefix("dsum", j.project, j.pipeline, j.id)):
                b.delete(k)
        # details rows stay: later jobs' skipped datums may still point at them

    # ---- datums ------------------------------------------------------------------------------
    # A job's datum table (the tree at `datum_root`) maps datum id -> [hash, state, detail_job];
    # a details row (inputs, outputs, stats) exists only for datums the job itself ran, and a
    # skipped datum's summary names the job whose details it inherited. Carrying the table
    # forward therefore edits only the rows of datums removed or run (see the module doc).
    def start_datum_table(self, j: JobRecord, base: Optional[JobRecord], remove: Iterable[str]) -> int:
        """Set `j.datum_root` to the base job's table minus the `remove`d datum ids (the rows
        this job inherits; none without a base). Returns how many rows it inherits."""
        t = self.tree(j.project, j.pipeline)
        root = self._root_of(base) if base is not None else None
        if root is not None:
            root = t.update(root, [(i, None) for i in sorted(set(remove))])
        j.datum_root = root
        return t.count(root)

    def put_job_datums(self, j: JobRecord, processed: list[DatumRecord]) -> None:
        """Add the rows of the datums this job ran to its table (`j.datum_root`, which the
        caller saves with the job) and write their details rows."""
        self.put_datum_details(j, processed)
        self.put_job_summaries(j, ((d.id, self.datum_summary(j, d)) for d in processed))

    def put_datum_details(self, j: JobRecord, recs: Iterable[DatumRecord]) -> None:
        """The details rows (inputs, outputs, stats) of datums job `j` ran. Invisible until
        the job's table (`put_job_summaries`) names them; a rerun overwrites them."""
        self._put_rows([(pps_key("ddet", j.project, j.pipeline, j.id, d.id), _pack(
            [d.inputs, d.outputs, d.reason, d.download_time, d.process_time, d.upload_time,
             d.download_bytes, d.upload_bytes, d.attempts])) for d in recs])

    @staticmethod
    def datum_summary(j: JobRecord, d: DatumRecord) -> bytes:
        """A datum's row in job `j`'s table: (hash, state, job whose details it has)."""
        return _pack([d.hash, d.state, j.id])

    def put_job_summaries(self, j: JobRecord, rows: Iterable[tuple[str, bytes]]) -> None:
        """Put (datum id, `datum_summary`) rows into the job's table (`j.datum_root`)."""
        edits = sorted(rows)
        if edits:
            j.datum_root = self.tree(j.project, j.pipeline).update(j.datum_root, edits)

    def record(self, j: JobRecord, datum_id: str, summary: bytes) -> DatumRecord:
        """The DatumRecord of a `datum_summary` row of job `j` (details read from the store)."""
        return self._record(j.project, j.pipeline, datum_id, _unpack(summary), j.id)

    def _root_of(self, job: JobRecord) -> Optional[bytes]:
        if job.datum_root is None and self._legacy_rows(job):
            # a table written before tables were trees: convert it once
            prefix = pps_prefix("dsum", job.project, job.pipeline, job.id)
            n = len(prefix)
            job.datum_root = self.tree(job.project, job.pipeline).build(
                (k[n:].decode(), v) for k, v in self.meta.scan(prefix=prefix))
            self.put_job(job)
        return job.datum_root

    def _legacy_rows(self, job: JobRecord) -> bool:
        prefix = pps_prefix("dsum", job.project, job.pipeline, job.id)
        return next(iter(self.meta.scan(prefix=prefix)), None) is not None

    def _items(self, project: str, pipeline: str, job_id: str) -> Iterator[tuple[str, bytes]]:
        j = self.get_job(project, pipeline, job_id)
        if j is None:
            return iter(())
        return self.tree(project, pipeline).items(self._root_of(j))

    def summary(self, job: JobRecord, datum_id: str) -> Optional[tuple]:
        """(hash, state, detail job) of one datum of a job's table, or None."""
        raw = self.tree(job.project, job.pipeline).get(self._root_of(job), datum_id)
        return None if raw is None else tuple(_unpack(raw))

    def has_datum(self, project: str, pipeline: str, job_id: str, datum_id: str) -> Optional[tuple]:
        j = self.get_job(project, pipeline, job_id)
        return None if j is None else self.summary(j, datum_id)

    def _put_rows(self, rows: list) -> None:
        for i in range(0, len(rows), 5000):
            with self.meta.batch() as b:
                for k, v in rows[i:i + 5000]:
                    b.put(k, v)

    def summaries(self, project: str, pipeline: str, job_id: str) -> dict[str, tuple[str, str, str]]:
        """{datum id: (hash, state, detail job)} for a finished job."""
        unpack = msgpack.unpackb
        return {k: tuple(unpack(v)) for k, v in self._items(project, pipeline, job_id)}

    def details(self, project: str, pipeline: str, detail_job: str, datum_id: str) -> Optional[list]:
        raw = self.meta.get(pps_key("ddet", project, pipeline, detail_job, datum_id))
        return None if raw is None else _unpack(raw)

    def _record(self, project: str, pipeline: str, datum_id: str, summary, job_id: str = "") -> DatumRecord:
        h, state, detail_job = summary
        if job_id and detail_job != job_id:
            state = D_SKIPPED  # inherited from the run of an earlier job
        det = self.details(project, pipeline, detail_job, datum_id) or [[], [], "", 0.0, 0.0, 0.0, 0, 0, 0]
        rec = DatumRecord(datum_id, h, state, *det, detail_job=detail_job)
        if state == D_SKIPPED:  # this job did not run it: no time or bytes of its own
            rec.download_time = rec.process_time = rec.upload_time = 0.0
            rec.download_bytes = rec.upload_bytes = 0
        return rec

    def get_datum(self, project: str, pipeline: str, job_id: str, datum_id: str) -> Optional[DatumRecord]:
        s = self.has_datum(project, pipeline, job_id, datum_id)
        return None if s is None else self._record(project, pipeline, datum_id, s, job_id)

    def datums(self, project: str, pipeline: str, job_id: str) -> Iterator[DatumRecord]:
        for k, v in self._items(project, pipeline, job_id):
            yield self._record(project, pipeline, k, _unpack(v), job_id)

    # ---- logs --------------------------------------------------------------------------------
    def add_logs(self, logs: list[LogRecord]) -> None:
        if not logs:
            return
        with self.meta.batch() as b:
            for lg in logs:
                seq = next(self._log_seq)
                b.put(pps_key("log", lg.project, lg.pipeline) + b"\x00" + struct.pack(">Q", seq),
                      _pack(asdict(lg)))

    def logs(self, project: str, pipeline: Optional[str] = None, job_id: Optional[str] = None,
             after: Optional[bytes] = None) -> Iterator[tuple[bytes, LogRecord]]:
        """(cursor, record) in the order they were written (per pipeline)."""
        prefix = pps_prefix("log", project, pipeline) if pipeline else pps_prefix("log", project)
        start = after + b"\x00" if after else None
        for k, v in self.meta.scan(prefix=prefix, start=start):
            rec = _from(LogRecord, _unpack(v))
            if job_id and rec.job_id != job_id:
                continue
            yield k, rec
