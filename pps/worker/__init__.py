"""The pipeline worker: its own process (`python -m pps.worker`) that runs user code on datums.

A worker talks to pachd ONLY over gRPC, so a local sandboxed process and a Kubernetes pod run
the same program:
- worker_v1.Tasks (pachd's pipeline master): NextTask (long-poll), Heartbeat (~1 s while busy;
  answers cancel_task / restart_datums), CompleteTask (per-datum results + remaining logs);
- pfs_v2: GetFileTAR to download a datum's inputs, ModifyFile to add outputs to the job's OPEN
  output commit (every file tagged with its datum id);
- pps_v2 InspectPipeline only when it was not given the spec.

Invariants:
- Stateless: everything the master needs comes back in CompleteTask; a worker that dies
  leaves nothing but a task whose lease runs out (or that it handed back).
- While a datum runs, `/pfs` holds exactly: `/pfs/<input name>/<repo path>` for its inputs,
  an empty-at-start `/pfs/out`, `/pfs/.env` (the datum's env, `K=V` lines) and the worker's
  `/pfs/.scratch`. Everything else under /pfs is wiped between datums and between attempts.
- A datum that FAILED, was RECOVERED or CANCELLED uploads nothing; successful datums of a task
  are uploaded together in one ModifyFile stream before the task is reported complete.
- User processes never outlive the datum attempt (process groups) nor the worker (PID
  namespace under bwrap or userns.py, PDEATHSIG in the fallback).

Modules: `runner` (task loop, heartbeats, cancellation), `datum_loop` (one datum at a time:
/pfs, env, retries, err_cmd, timeouts), `usercode` (one user process), `datum_io` (batched
downloads, prefetching), `upload` (staging /pfs/out, batched ModifyFile), `scratch`
(directories recycled instead of removed), `batching` (datum_batching and the worker_v2
NextDatum API), `sandbox` (bwrap command line, local images, fallback path rewriting),
`userns` (a stdlib stand-in for bwrap that runs the same command line where it is missing).
"""
