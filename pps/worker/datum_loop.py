"""Running a task's datums one at a time (the part of the Worker that touches /pfs and user code).

Invariants:
- Per datum and attempt: inputs freshly materialized, `/pfs/out` present and empty,
  `/pfs/.env` written; env = worker env + transform.env + PPS_* + per-datum vars
  (pps.datums.datum_env). Between datums /pfs holds nothing of the previous one.
- Attempts: up to `datum_tries` (Task, else spec, else 3). After EACH failed attempt `err_cmd`
  (with `err_stdin`) runs with the same env; if it succeeds the datum is marked recovered.
  Attempts continue; the datum is SUCCESS if any attempt succeeds, else RECOVERED if err_cmd
  ever succeeded, else FAILED with the last attempt's reason (pps-semantics §5).
- Exit codes in `accept_return_code` count as success. `datum_timeout` kills the attempt's
  process group; so does restart_datums (a failed attempt) and a cancel (nothing uploaded,
  every datum of the task reported CANCELLED).
- Only successful datums upload, and only their last attempt's /pfs/out.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

from pps.datums import Datum, InputFile, datum_env
from pps.worker.datum_io import Prefetcher, Staged, commit_pb
from pps.worker.upload import Uploader
from pps.worker.usercode import UserProcess, describe_exit, stdin_bytes
from proto.worker_v1 import tasks_pb2 as wpb

INTERNAL_ENV = ("PACHD_AUTH_TOKEN",)  # the worker's own credentials, never passed to user code


def _dur(seconds: float, msg) -> None:
    msg.FromNanoseconds(int(max(0.0, seconds) * 1e9))


def to_datum(d: wpb.Datum) -> Datum:
    datum = Datum(tuple(InputFile(name=i.name, project=i.project, repo=i.repo, branch=i.branch,
                                  commit=i.commit, path=i.path, file_hash=i.hash, size=i.size_bytes,
                                  join_on=i.join_on, group_by=i.group_by) for i in d.inputs))
    if d.id:
        datum.__dict__["id"] = d.id  # the master's id; spares recomputing the cached property
    return datum


class DatumRunner:
    """Mixed into Worker: needs cfg, spec, io, dirs, pfs, scratch, rewrite, logs, cancelled,
    batch_server, current_proc and set_current()."""

    # ---- /pfs ---------------------------------------------------------------------------
    def clear_pfs(self) -> None:
        """Everything but .scratch out of /pfs; staging areas emptied."""
        self._out_ready = False
        for e in os.scandir(self.pfs):
            if e.name != ".scratch":
                self.dirs.discard(Path(e.path))
        for e in os.scandir(self.scratch):
            if e.name != "pool":
                self.dirs.discard(Path(e.path))

    def mount(self, staged: Staged, env: dict[str, str]) -> None:
        """Inputs renamed into /pfs, /pfs/out present and empty, /pfs/.env written."""
        for name, d in staged.dirs.items():
            os.rename(d, self.pfs / name)
        staged.mounted = True
        if not self._out_ready:
            self.dirs.make(self.pfs / "out")
            self._out_ready = True
        self.write_env(env)

    def write_env(self, env: dict[str, str]) -> None:
        """/pfs/.env rewritten in place (no truncate to zero: freeing blocks is slow here)."""
        data = "".join(f"{k}={v}\n" for k, v in env.items()).encode()
        fd = os.open(self.pfs / ".env", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)

    def unmount(self, staged: Staged, out_empty: bool = False) -> None:
        """Inputs away; /pfs/out dropped unless the caller emptied it (Uploader.stage)."""
        for name, d in staged.dirs.items():  # files only the worker wrote: their inodes are reused
            self.dirs.discard(self.pfs / name if staged.mounted else d, reuse_files=True)
        staged.mounted = False
        if not out_empty:
            self.dirs.discard(self.pfs / "out")
            self._out_ready = False

    # ---- env ----------------------------------------------------------------------------
    def job_env(self, task: wpb.Task) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in INTERNAL_ENV}
        env.update(self.spec.transform.env)
        host, _, port = self.cfg.pachd.rpartition(":")
        env.update({"PPS_PIPELINE_NAME": self.cfg.pipeline, "PPS_PROJECT_NAME": self.cfg.project,
                    "PPS_POD_NAME": self.cfg.worker_id, "PPS_WORKER_IP": "127.0.0.1",
                    "PACH_IN_WORKER": "true", "PACHD_PEER_SERVICE_HOST": host or "localhost",
                    "PACHD_PEER_SERVICE_PORT": port, "PACH_JOB_ID": task.job_id,
                    "PACH_OUTPUT_COMMIT_ID": task.output_commit})
        env.update(task.env)  # from the master: e.g. S3_ENDPOINT and keys for s3 inputs/outputs
        if self.batch_server is not None:
            env["PPS_WORKER_GRPC_PORT"] = str(self.batch_server.port)
        return env

    def datum_env(self, task: wpb.Task, d: wpb.Datum) -> dict[str, str]:
        return self.rewrite.env(datum_env(to_datum(d), task.job_id, task.output_commit))

    # ---- one task, one datum at a time --------------------------------------------------
    def tries(self, task: wpb.Task) -> int:
        return int(task.datum_tries or self.spec.datum_tries or 3)

    def timeout(self, task: wpb.Task) -> Optional[float]:
        t = task.datum_timeout.ToNanoseconds() / 1e9 if task.HasField("datum_timeout") else 0.0
        return t or self.spec.datum_timeout or None

    def uploader(self, task: wpb.Task) -> Uploader:
        commit = commit_pb(self.cfg.project, task.output_repo or self.cfg.pipeline,
                           task.output_commit, task.output_branch)
        return Uploader(self.io, commit, self.scratch / "up")

    def run_task(self, task: wpb.Task) -> list:
        base = self.job_env(task)
        up = self.uploader(task)
        prefetch = Prefetcher(self.io, task.datums, self.scratch / "in")
        results: list[wpb.DatumResult] = []
        try:
            for i, d in enumerate(task.datums):
                staged = prefetch.get(i) if not self.cancelled else None
                if staged is None or self.cancelled:
                    break
                results.append(self.run_datum(task, d, staged, base, up))
        finally:
            prefetch.close()
        if self.cancelled:
            up.discard()
            return [wpb.DatumResult(datum_id=d.id, outcome=wpb.CANCELLED) for d in task.datums]
        self.finish_uploads(up, results)
        return results

    @staticmethod
    def finish_uploads(up: Uploader, results: list) -> None:
        """Wait for the uploads; a datum whose batch failed becomes FAILED."""
        up.finish()
        for r in results:
            if r.datum_id in up.failed and r.outcome == wpb.SUCCESS:
                r.outcome, r.reason, r.upload_bytes = wpb.FAILED, up.failed[r.datum_id], 0
                del r.outputs[:]
            elif r.datum_id in up.times:
                _dur(up.times[r.datum_id], r.upload_time)

    def run_datum(self, task, d: wpb.Datum, staged: Staged, base: dict, up: Uploader) -> wpb.DatumResult:
        t = self.spec.transform
        env = self.datum_env(task, d)
        full = {**base, **env}
        cmd = [self.rewrite(a) for a in t.cmd]
        stdin = stdin_bytes([self.rewrite(s) for s in t.stdin])
        r = wpb.DatumResult(datum_id=d.id)
        dl_time, dl_bytes, proc_time = staged.seconds, staged.nbytes, 0.0
        recovered, reason, out_empty = False, "", False
        self.set_current(d.id)
        try:
            for attempt in range(1, self.tries(task) + 1):
                r.attempts = attempt
                if attempt > 1 or staged.error:
                    if attempt > 1:
                        self.logs.add(d.id, f"retrying datum (attempt {attempt} of {self.tries(task)})", False)
                        self.unmount(staged)
                        t0 = time.monotonic()
                        staged = self.io.download([d], self.scratch / "in", staged.index, f".{attempt}")[0]
                        dl_time += time.monotonic() - t0
                        dl_bytes += staged.nbytes
                    if staged.error:
                        reason = staged.error
                        self.logs.add(d.id, reason, False)
                        continue
                self.mount(staged, env)
                t0 = time.monotonic()
                ok, reason = self.run_user(d.id, cmd, stdin, full, self.timeout(task))
                proc_time += time.monotonic() - t0
                if self.cancelled:
                    r.outcome = wpb.CANCELLED
                    return r
                if ok:
                    try:
                        paths, nbytes = up.stage(d.id, self.pfs / "out")
                    except (ValueError, OSError) as e:
                        ok, reason = False, str(e)
                    else:
                        r.outcome, r.upload_bytes = wpb.SUCCESS, nbytes
                        r.outputs.extend(paths)
                        out_empty = True
                        return r
                self.logs.add(d.id, f"datum failed (attempt {attempt}): {reason}", False)
                if t.err_cmd:
                    err_ok, err_reason = self.run_user(d.id, [self.rewrite(a) for a in t.err_cmd],
                                                       stdin_bytes([self.rewrite(s) for s in t.err_stdin]),
                                                       full, self.timeout(task))
                    if err_ok:
                        recovered = True
                        self.logs.add(d.id, "err_cmd succeeded: datum recovered", False)
                    else:
                        self.logs.add(d.id, f"err_cmd failed: {err_reason}", False)
            r.outcome = wpb.RECOVERED if recovered else wpb.FAILED
            r.reason = reason
            return r
        finally:
            self.unmount(staged, out_empty)
            self.set_current("")
            _dur(dl_time, r.download_time)
            _dur(proc_time, r.process_time)
            r.download_bytes = dl_bytes

    def run_user(self, datum_id: str, argv, stdin: bytes, env: dict, timeout) -> tuple[bool, str]:
        """Run one user process to completion: (succeeded, reason)."""
        cwd = self.rewrite(self.spec.transform.working_dir) or None
        p = UserProcess(argv, env, cwd, stdin, lambda line: self.logs.add(datum_id, line, True),
                        pdeathsig=self.rewrite.active)
        self.current_proc = p
        try:
            if self.cancelled:
                p.kill("task cancelled")
            try:
                code = p.run(timeout)
            except OSError as e:
                return False, f"cannot start {argv[0] if argv else 'user code'}: {e}"
        finally:
            self.current_proc = None
        if p.killed:
            return False, p.killed
        if code == 0 or code in self.spec.transform.accept_return_code:
            return True, ""
        return False, describe_exit(code)
