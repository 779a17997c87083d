"""Commit lineage (`pachctl draw lineage repo@ref`): Knitfab's data lineage over PFS commits.

Graph shape (a networkx DiGraph; Knitfab's `knit data lineage`):
- DATA nodes are commits, id `data:<project>/<repo>@<commit id>`, attrs `kind="data"` plus
  repo, id, branch, origin, finished, error, size, project and `start` (the commit drawn from).
- RUN nodes are jobs, id `run:<project>/<pipeline>@<job id>`, attrs `kind="run"` plus
  pipeline, id, state, data_processed/skipped/failed/total, started/finished and
  `spec_commit` (the id of the spec commit the job ran under, or "").
- Edges only go data -> run (label `/pfs/<input name>`) and run -> data (label `/pfs/out`).
- A commit has a run in front of it iff `fetch_job` knows a job for it (pipeline = the repo,
  job id = the commit id, as in Pachyderm 2.x where a job shares its output commit's id), or
  its origin is AUTO (a placeholder run, state JOB_STATE_UNKNOWN, when the job is gone).
  USER commits are never asked about and are sources. A non-USER commit with no job (an ALIAS)
  is drawn as data but neither walked through upstream nor reached downstream.
- Spec commits (repo type `spec`) are not nodes: the run records their id in `spec_commit`
  and its label shows it. Meta commits (type `meta`) are ignored.
- Walking, breadth first, each commit expanded at most once (Knitfab's rule): upstream, a
  commit's run and that run's input commits (its direct provenance); downstream, for each
  commit in a commit's direct subvenance, its run with *all* of that run's inputs and the
  output commit, which is walked on. `depth` counts run steps from the start (None = all):
  depth 1 upstream is the start, its run and the run's inputs.
- `graph.graph` holds `start` (the start node) and `project` (the start commit's project).
- Missing commits (fetch_commit returns None) become data nodes with `missing=True`; a missing
  start commit raises LookupError.
The walk only calls the two callbacks, so the CLI backs them with gRPC and tests with dicts.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import networkx as nx

USER_TYPE, SPEC_TYPE, META_TYPE = "user", "spec", "meta"


@dataclass(frozen=True)
class CommitRef:
    """A commit address: Pachyderm's Commit{repo{name, type, project}, id}."""
    repo: str
    id: str
    project: str = "default"
    type: str = USER_TYPE

    def __str__(self) -> str:
        return f"{self.project}/{self.repo}@{self.id}"


def as_ref(x: Any) -> CommitRef:
    """CommitRef | commit record | {"repo","id","project"?,"type"?} | "repo@id" -> CommitRef."""
    if isinstance(x, CommitRef):
        return x
    if isinstance(x, str):
        repo, _, cid = x.partition("@")
        proj, _, repo = repo.rpartition("/")
        return CommitRef(repo, cid, proj or "default")
    if isinstance(x, Mapping):
        repo = x.get("repo")
        proj = x.get("project") or "default"
        rtype = x.get("repo_type") or x.get("type") or USER_TYPE
        if isinstance(repo, Mapping):  # protojson-ish {"repo": {"name", "type", "project"}}
            proj = _name(repo.get("project")) or proj
            rtype = repo.get("type") or rtype
            repo = repo.get("name")
        return CommitRef(repo, x.get("id"), _name(proj), str(rtype).lower())
    raise TypeError(f"not a commit reference: {x!r}")


def _name(p: Any) -> str:
    return p.get("name", "default") if isinstance(p, Mapping) else p


def data_key(ref: Any) -> str:
    r = as_ref(ref)
    return f"data:{r.project}/{r.repo}@{r.id}"


def run_key(project: str, pipeline: str, job_id: str) -> str:
    return f"run:{project}/{pipeline}@{job_id}"


FetchCommit = Callable[[CommitRef], "Mapping[str, Any] | None"]
FetchJob = Callable[[str, str, str], "Mapping[str, Any] | None"]

_DATA_FIELDS = ("branch", "origin", "finished", "started", "error", "size", "description")
_JOB_FIELDS = ("state", "reason", "data_processed", "data_skipped", "data_failed",
               "data_recovered", "data_total", "started", "finished")


class _Walker:
    def __init__(self, fetch_commit: FetchCommit, fetch_job: FetchJob):
        self.fetch_commit, self.fetch_job = fetch_commit, fetch_job
        self.g = nx.DiGraph()
        self.commits: dict[CommitRef, Mapping | None] = {}
        self.jobs: dict[CommitRef, str | None] = {}  # output commit -> run node (None: no run)

    def commit(self, ref: CommitRef) -> Mapping | None:
        if ref not in self.commits:
            self.commits[ref] = self.fetch_commit(ref)
        return self.commits[ref]

    def data(self, ref: CommitRef) -> str:
        key = data_key(ref)
        if key not in self.g:
            rec = self.commit(ref)
            attrs = {"kind": "data", "project": ref.project, "repo": ref.repo, "id": ref.id,
                     "start": False, "missing": rec is None}
            for f in _DATA_FIELDS:
                attrs[f] = (rec or {}).get(f)
            attrs["origin"] = str(attrs["origin"] or "").upper()
            self.g.add_node(key, **attrs)
        return key

    @staticmethod
    def provenance(rec: Mapping | None, field: str) -> list[CommitRef]:
        return [as_ref(p) for p in (rec or {}).get(field) or ()]

    def run_of(self, ref: CommitRef) -> str | None:
        """The run node producing `ref` (added with its edges), or None for a source commit."""
        if ref in self.jobs:
            return self.jobs[ref]
        rec = self.commit(ref)
        origin = str((rec or {}).get("origin") or "").upper()
        job = None if rec is None or origin == "USER" else self.fetch_job(ref.project, ref.repo, ref.id)
        if job is None and origin != "AUTO":
            self.jobs[ref] = None
            return None
        job = dict(job or {"state": "JOB_STATE_UNKNOWN"})
        key = run_key(ref.project, ref.repo, job.get("id") or ref.id)
        self.jobs[ref] = key
        prov = self.provenance(rec, "direct_provenance")
        spec = next((p.id for p in prov if p.type == SPEC_TYPE), "")
        attrs = {"kind": "run", "project": ref.project, "pipeline": job.get("pipeline") or ref.repo,
                 "id": job.get("id") or ref.id, "spec_commit": spec}
        for f in _JOB_FIELDS:
            attrs[f] = job.get(f)
        attrs["state"] = str(attrs["state"] or "JOB_STATE_UNKNOWN").upper()
        self.g.add_node(key, **attrs)
        self.g.add_edge(key, self.data(ref), label="/pfs/out")
        names = job.get("input_names") or {}
        for p in prov:
            if p.type == USER_TYPE:
                self.g.add_edge(self.data(p), key, label=f"/pfs/{names.get(p.repo, p.repo)}")
        return key

    def upstream(self, start: CommitRef, depth: int | None) -> None:
        frontier, seen, level = [start], {start}, 0
        while frontier and (depth is None or level < depth):
            nxt = []
            for ref in frontier:
                if self.run_of(ref) is None:
                    continue
                for p in self.provenance(self.commit(ref), "direct_provenance"):
                    if p.type == USER_TYPE and p not in seen:
                        seen.add(p)
                        nxt.append(p)
            frontier, level = nxt, level + 1

    def downstream(self, start: CommitRef, depth: int | None) -> None:
        frontier, seen, level = [start], {start}, 0
        while frontier and (depth is None or level < depth):
            nxt = []
            for ref in frontier:
                self.data(ref)
                for s in self.provenance(self.commit(ref), "direct_subvenance"):
                    if s.type != USER_TYPE or self.run_of(s) is None:
                        continue
                    if s not in seen:
                        seen.add(s)
                        nxt.append(s)
            frontier, level = nxt, level + 1


def build_lineage(start: Any, fetch_commit: FetchCommit, fetch_job: FetchJob, *,
                  upstream: bool = True, downstream: bool = False,
                  depth: int | None = None) -> nx.DiGraph:
    """Walk the lineage of `start` (a CommitRef, ref-like value or commit record).

    fetch_commit(CommitRef) -> commit record | None; a record is a mapping with `repo`, `id`,
      optional `project`, `repo_type` ("user"/"spec"/"meta"), `branch`, `origin`
      ("USER"/"AUTO"/"ALIAS"), `started`/`finished` (datetime, epoch seconds or None),
      `error` (str), `size` (bytes or None), `direct_provenance` and `direct_subvenance`
      (lists of CommitRef, {"repo","id","project"?,"type"?} or "repo@id").
    fetch_job(project, pipeline, job_id) -> job record | None; a job record has `state`
      (`JOB_SUCCESS`...), `data_processed`, `data_skipped`, `data_failed`, `data_total`,
      optional `id`, `pipeline`, `reason`, `started`, `finished`, and `input_names`
      ({repo: input name} when inputs are renamed; the edge label is `/pfs/<name>`).
    """
    if depth is not None and depth < 1:
        raise ValueError("depth should be a natural number or None (all)")
    ref = as_ref(start)
    w = _Walker(fetch_commit, fetch_job)
    if isinstance(start, Mapping) and "direct_provenance" in start:  # a full record: no refetch
        w.commits[ref] = start
    if w.commit(ref) is None:
        raise LookupError(f"commit {ref} not found")
    w.g.graph.update(start=w.data(ref), project=ref.project)
    w.g.nodes[w.g.graph["start"]]["start"] = True
    if upstream:
        w.upstream(ref, depth)
    if downstream:
        w.downstream(ref, depth)
    return w.g


def parse_depth(text: str) -> int | None:
    """`-n` flag value: a positive integer, or `all` -> None (Knitfab's convention)."""
    if text == "all":
        return None
    try:
        n = int(text)
    except ValueError:
        raise ValueError(f"invalid number {text}") from None
    if n <= 0:
        raise ValueError("depth should be natural number")
    return n
