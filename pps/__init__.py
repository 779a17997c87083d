"""pps: Pachyderm's pipeline system, reimplemented.

Server-free core (no grpc, protobuf, boto3 or kubernetes imports):
- `pps.spec`   — parse JSON/YAML pipeline specs into frozen dataclasses mirroring
  `pps_v2.CreatePipelineRequest` (inputs as a real sum type), validate them and fill
  Pachyderm's defaults; back to a canonical dict for `effective_spec_json`.
- `pps.datums` — the input algebra (pfs, cross, union, join, group, cron) as pure functions
  from glob listings to datums; DatumID (which files) vs datum hash (their content + salt)
  decides what a job processes, skips or deletes; the per-datum worker environment.
- `pps.planning` — which datums changed between a job and its base job, from the diff of
  each input's commits (and, for joins and groups, a key index carried from job to job),
  with the same answer as classifying every datum.
- `pps.cron`   — cron schedules (robfig/cron standard specs, descriptors, @every, @never),
  tick file names, and Go duration strings.
Glob matching itself lives in `pfs.glob` (shared with GlobFile).
"""
