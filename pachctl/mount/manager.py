"""The mount server's state: what is mounted under the mount directory, and datum mode.

One FUSE file system (a `Session` with `dynamic=True`) is mounted at the mount directory for
the server's life; mounting and unmounting a repo adds or removes a view (a top-level
directory) in it. JSON shapes follow Pachyderm's mount-server (`MountInfo`, `MountState`,
`RepoResponse`, `MountDatumResponse`, `DatumsResponse`).

Invariants:
- Every change to the file system's views runs on its trio thread (`_on_fs`); the gRPC checks
  before it run on the caller's (HTTP) thread. One lock orders requests, so two requests
  never interleave their changes.
- Unmounting a writable mount commits it first; if that fails it stays mounted with its
  changes staged, and the request fails with the reason.
- Datum mode mounts the current datum's files of each pfs input at `<input name>` (the name
  a worker sees under /pfs, `name` or else the repo), pinned to the datum's commit, plus a
  local-only writable `out`; nothing else can be mounted meanwhile.
- A request that adds or removes a view answers only after the kernel has dropped its cached
  entry for that name (`_forget`), so the caller's next access sees the new view, never the
  old one.
"""
from __future__ import annotations

import json
import threading
from typing import Optional

import grpc
import pyfuse3
import trio
from google.protobuf import json_format

from pachctl.mount.views import MountError, View, datum_view, _repo_msg
from proto.pfs_v2 import pfs_pb2 as pfs
from proto.pps_v2 import pps_pb2 as pps


SERVER_COMMIT_RETRIES = 3


async def _forget(name: str) -> None:
    """Make the kernel drop its cached entry for the top-level `name`, and wait until it has.
    The blocking call runs on a worker thread: the kernel may first need an answer to a
    request for that directory, which this file system's trio thread must stay free to give
    (invalidate_entry_async would return before the kernel acted, and a listing right after
    the HTTP answer could still reach the old view)."""
    def forget() -> None:
        try:
            pyfuse3.invalidate_entry(pyfuse3.ROOT_INODE, name.encode())
        except FileNotFoundError:
            pass  # the kernel had no entry for it
    await trio.to_thread.run_sync(forget)


class RequestError(Exception):
    """A request the server refuses: HTTP status and Pachyderm's message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _details(e: grpc.RpcError) -> str:
    return (e.details() if hasattr(e, "details") else "") or str(e)


class Manager:
    def __init__(self, session, mount_dir: str):
        self.session = session
        self.mount_dir = mount_dir.rstrip("/") or "/"
        self.lock = threading.RLock()
        self.infos: dict[str, dict] = {}    # name -> MountInfo of what is mounted
        self.datums: list = []              # datum mode: DatumInfo messages
        self.datum_input: Optional[dict] = None
        self.datum_idx = -1
        self.datum_names: dict[str, list[str]] = {}

    @property
    def client(self):
        return self.session.client

    # ---- running on the file system's thread ------------------------------------------------
    def _on_fs(self, fn, *args):
        return trio.from_thread.run(fn, *args, trio_token=self.session.trio_token)

    async def _add(self, view: View) -> None:
        self.session.fs.add_view(view)
        self.session.attach_journal(view)
        await _forget(view.name)

    async def _remove(self, name: str) -> None:
        self.session.fs.remove_view(name)
        await _forget(name)

    async def _commit(self, name: str):
        view = self.session.fs.views.get(name)
        if view is None or not view.writable or view.local_only:
            return None
        self.session.failed = False
        # a few quick retries (1, 2, 4 s): after pachd comes back, the channel reconnects
        # within its backoff, and the first calls fail fast meanwhile
        await self.session.commit_one(view, retries=SERVER_COMMIT_RETRIES)
        if self.session.failed:
            self.session.failed = False
            raise RequestError(500, self.session.report[-1]["error"] if self.session.report else "commit failed")
        return True

    # ---- listing ----------------------------------------------------------------------------
    def list_repos(self) -> list[dict]:
        out = []
        for ri in self.client.pfs.ListRepo(pfs.ListRepoRequest(type="user")):
            project = ri.repo.project.name or "default"
            branches = [bi.branch.name for bi in self.client.pfs.ListBranch(pfs.ListBranchRequest(repo=ri.repo))]
            out.append({"project": project, "repo": ri.repo.name, "branches": branches, "authorization": "off"})
        return out

    def list_projects(self) -> list[dict]:
        out = []
        for pi in self.client.pfs.ListProject(pfs.ListProjectRequest()):
            d = {"project": {"name": pi.project.name}}
            if pi.description:
                d["description"] = pi.description
            if pi.HasField("created_at"):
                d["created_at"] = {"seconds": pi.created_at.seconds, "nanos": pi.created_at.nanos}
            out.append(d)
        return out

    def _state(self, name: str, info: dict) -> dict:
        st = dict(info)
        st.update(state="mounted", status="", mountpoint=f"{self.mount_dir}/{name}".replace("//", "/"),
                  latest_commit="", how_many_commits_behind=0)
        if not info.get("repo"):
            return st
        repo = _repo_msg(info["project"], info["repo"])
        current = info.get("commit") or ""
        try:
            if info.get("branch"):
                bi = self.client.pfs.InspectBranch(pfs.InspectBranchRequest(
                    branch=pfs.Branch(repo=repo, name=info["branch"])))
                latest = bi.head.id
            else:
                latest = current
        except grpc.RpcError:
            latest = current
        if not info.get("pinned"):  # a branch mount follows its head: always up to date
            current = latest
        st["commit"] = current
        st["latest_commit"] = latest
        if not latest:
            st["status"] = "branch does not contain any commits"
            return st
        behind = 0
        if current != latest and current:
            for ci in self.client.pfs.ListCommit(pfs.ListCommitRequest(repo=repo, to=pfs.Commit(repo=repo, id=latest))):
                if ci.commit.id == current:
                    break
                behind += 1
        st["how_many_commits_behind"] = behind
        st["status"] = (f"{behind} commits behind latest; current = {current[:8]}, latest = {latest[:8]}" if behind
                        else f"up to date on latest commit {latest[:8]}")
        return st

    def list_mounts(self) -> dict:
        with self.lock:
            mounted = [self._state(n, i) for n, i in sorted(self.infos.items())]
        for m in mounted:
            m.pop("pinned", None)
        return {"mounted": mounted, "unmounted": self.list_repos()}

    # ---- mounting ---------------------------------------------------------------------------
    def _check(self, mi: dict) -> View:
        if not isinstance(mi, dict):
            raise RequestError(400, f"mount request {mi!r}: not an object")
        name = mi.get("name") or ""
        if not name:
            raise RequestError(400, f"mount request {json.dumps(mi)}: no name specified")
        if "/" in name or name in (".", ".."):
            raise RequestError(400, f"mount request {json.dumps(mi)}: invalid name {name!r}")
        project = mi.get("project") or "default"
        repo = mi.get("repo") or ""
        if not repo:
            raise RequestError(400, f"mount request {json.dumps(mi)}: no repo specified")
        mode = mi.get("mode") or "ro"
        if mode not in ("ro", "rw"):
            raise RequestError(400, f"mount request {json.dumps(mi)}: mount mode can only be 'ro' or 'rw'")
        branch, commit = mi.get("branch") or "", mi.get("commit") or ""
        paths = [p for p in (mi.get("paths") or []) if p] or ["/"]
        rmsg = _repo_msg(project, repo)
        try:
            self.client.pfs.InspectRepo(pfs.InspectRepoRequest(repo=rmsg))
        except grpc.RpcError as e:
            raise RequestError(400, f"mount request {json.dumps(mi)}: {_details(e)}") from None
        if mode == "rw":
            branch = branch or "master"
            try:
                bi = self.client.pfs.InspectBranch(pfs.InspectBranchRequest(branch=pfs.Branch(repo=rmsg, name=branch)))
                if bi.direct_provenance or bi.provenance:
                    raise RequestError(400, f"mount request {json.dumps(mi)}: {repo}@{branch} is a pipeline's "
                                            "output branch; mount it read-only")
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.NOT_FOUND:
                    raise RequestError(500, _details(e)) from None
                self.client.pfs.CreateBranch(pfs.CreateBranchRequest(branch=pfs.Branch(repo=rmsg, name=branch)))
            v = View(name=name, project=project, repo=repo, branch=branch, writable=True)
            info = {"name": name, "project": project, "repo": repo, "branch": branch, "commit": "",
                    "paths": paths, "mode": "rw"}
        else:
            if commit and not (len(commit) == 32 and all(c in "0123456789abcdef" for c in commit)):
                raise RequestError(400, f"mount request {json.dumps(mi)}: invalid commit ID")
            if not branch and not commit:
                branch = "master"
            c = pfs.Commit(repo=rmsg, id=commit)
            if branch:
                c.branch.CopyFrom(pfs.Branch(repo=rmsg, name=branch))
            try:
                ci = self.client.pfs.InspectCommit(pfs.InspectCommitRequest(commit=c))
            except grpc.RpcError as e:
                raise RequestError(400, f"mount request {json.dumps(mi)}: {_details(e)}") from None
            if ci.commit.branch.name:
                branch = ci.commit.branch.name
            v = View(name=name, project=project, repo=repo, branch=branch, commit=commit)
            if paths != ["/"]:
                v = datum_view(name, project, repo, branch, commit, paths)
            info = {"name": name, "project": project, "repo": repo, "branch": branch, "commit": ci.commit.id,
                    "paths": paths, "mode": "ro", "pinned": bool(commit)}
        return v, info

    def mount(self, mounts: list) -> None:
        if self.datums:
            raise RequestError(400, "can't mount repos while in mounted datum mode")
        with self.lock:
            checked = [self._check(mi) for mi in mounts]
            for v, info in checked:
                if v.name in self.infos:
                    raise RequestError(500, f"mount at {v.name!r} already exists")
            for v, info in checked:
                self._on_fs(self._add, v)
                self.infos[v.name] = info

    def unmount(self, names: list, datum_mode_ok: bool = False) -> None:
        if self.datums and not datum_mode_ok:
            raise RequestError(400, "can't unmount repos while in mounted datum mode")
        with self.lock:
            for name in names:
                if name not in self.infos:
                    raise RequestError(500, f"{name} is not mounted")
                self._on_fs(self._commit, name)  # a writable mount is committed first
                self._on_fs(self._remove, name)
                self.infos.pop(name, None)

    def commit(self, name: str) -> None:
        with self.lock:
            if name not in self.infos:
                raise RequestError(500, f"{name} is not mounted")
            if self.infos[name].get("mode") != "rw":
                raise RequestError(500, f"{name} is mounted read-only: nothing to commit")
            self._on_fs(self._commit, name)

    def unmount_all(self) -> None:
        with self.lock:
            self.unmount(sorted(self.infos), datum_mode_ok=True)
            self._reset_datums()

    # ---- datum mode -------------------------------------------------------------------------
    def _reset_datums(self) -> None:
        if self.datums or self.datum_input is not None:
            self._on_fs(self._remove, "out")
        self.datums, self.datum_input, self.datum_idx, self.datum_names = [], None, -1, {}

    def _walk_pfs(self, inp: dict, out: list) -> None:
        if not isinstance(inp, dict):
            return
        if inp.get("pfs"):
            out.append(inp["pfs"])
        for k in ("cross", "union", "join", "group"):
            for child in inp.get(k) or []:
                self._walk_pfs(child, out)

    def mount_datums(self, body: bytes) -> dict:
        import yaml
        try:
            spec = yaml.safe_load(body.decode("utf-8")) if body.strip() else None
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise RequestError(400, f"error reading the request: {e}") from None
        if not isinstance(spec, dict) or not spec.get("input"):
            raise RequestError(400, "error converting datum inputs to mounts: datum input is not specified")
        inp = spec["input"]
        with self.lock:
            self.unmount_all()
            pfs_inputs: list = []
            self._walk_pfs(inp, pfs_inputs)
            names: dict[str, list[str]] = {}
            for p in pfs_inputs:
                if p.get("commit"):
                    raise RequestError(400, "error converting datum inputs to mounts: cannot specify commit in "
                                            "mounting datums Input")
                p.setdefault("project", "default")
                p.setdefault("branch", "master")
                p.setdefault("name", p.get("repo", ""))
                names.setdefault(f"{p['project']}/{p['repo']}@{p['branch']}", []).append(p["name"])
            try:
                req = pps.ListDatumRequest(input=json_format.ParseDict(inp, pps.Input()))
            except json_format.ParseError as e:
                raise RequestError(400, f"error reading the input spec: {e}") from None
            try:
                datums = list(self.client.pps.ListDatum(req))
            except grpc.RpcError as e:
                raise RequestError(500, f"error listing spec's datums: {_details(e)}") from None
            if not datums:
                raise RequestError(500, "error listing spec's datums: no datums to mount")
            self.datums, self.datum_input, self.datum_names = datums, inp, names
            self._show(0)
            return self.datum_response()

    def _show(self, idx: int) -> None:
        for name in sorted(self.infos):
            self._on_fs(self._remove, name)
        self.infos.clear()
        self._on_fs(self._remove, "out")
        self.datum_idx = idx
        d = self.datums[idx]
        queues = {k: list(v) for k, v in self.datum_names.items()}
        by_name: dict[str, dict] = {}
        for fi in d.data:
            c = fi.file.commit
            project = c.repo.project.name or c.branch.repo.project.name or "default"
            repo = c.repo.name or c.branch.repo.name
            key = f"{project}/{repo}@{c.branch.name}"
            q = queues.get(key) or [repo]
            name = q[0]
            if len(q) > 1:
                queues[key] = q[1:]
            got = by_name.setdefault(name, {"name": name, "project": project, "repo": repo, "branch": c.branch.name,
                                            "commit": c.id, "paths": [], "mode": "ro", "pinned": True})
            got["paths"].append(fi.file.path or "/")
        for name, info in sorted(by_name.items()):
            v = datum_view(name, info["project"], info["repo"], info["branch"], info["commit"], info["paths"])
            self._on_fs(self._add, v)
            self.infos[name] = info
        self._on_fs(self._add, View(name="out", writable=True, local_only=True))

    def step(self, delta: int) -> dict:
        with self.lock:
            if not self.datums:
                raise RequestError(400, "no datums mounted")
            idx = self.datum_idx + delta
            if idx < 0:
                raise RequestError(400, "already at first datum")
            if idx >= len(self.datums):
                raise RequestError(400, "already at last datum")
            self._show(idx)
            return self.datum_response()

    def datum_response(self) -> dict:
        d = self.datums[self.datum_idx]
        return {"id": d.datum.id, "idx": self.datum_idx, "num_datums": len(self.datums), "all_datums_received": True}

    def datums_state(self) -> dict:
        if not self.datums:
            return {"num_datums": 0, "input": None, "idx": 0, "all_datums_received": False}
        return {"num_datums": len(self.datums), "input": self.datum_input, "idx": self.datum_idx,
                "all_datums_received": True}


__all__ = ["Manager", "RequestError", "MountError"]
