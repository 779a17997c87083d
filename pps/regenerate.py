"""Regenerating existing pipelines when cluster or project defaults change
(Set{Cluster,Project}Defaults with `regenerate`, `reprocess`, `dry_run`, as Pachyderm 2.12).

Invariants:
- A pipeline is affected when its effective spec (its stored user spec merged over the
  defaults, then normalized) differs between the current defaults and the new ones. Both are
  normalized at the same instant, so values filled from the clock (cron start times) never
  count as a change. Cluster defaults reach every project; project defaults only their own.
- Every affected pipeline's new spec is computed (and so validated) before anything is
  stored: new defaults that would make one pipeline invalid are refused with that pipeline
  named, and change nothing.
- dry_run stores nothing and updates nothing, but still names the affected pipelines.
- Without `regenerate` only the defaults are stored (new and updated pipelines get them);
  no pipeline is named. With it, each affected pipeline is updated from its own user spec
  as `pachctl update pipeline` would: a new version, jobs of the old version stopped. Its
  datums are processed again only with `reprocess` (a new salt); otherwise already
  processed datums are skipped.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional

from pfs.errors import InvalidArgument, PfsError
from pps import defaults
from pps.spec import normalize_spec, spec_to_dict

_NOT_SPEC = ("update", "reprocess", "dry_run", "salt")


@dataclass(frozen=True)
class Affected:
    project: str
    name: str
    user_spec: dict
    user_json: str


def _user_spec(p) -> tuple[dict, str]:
    if p.user_spec_json:
        try:
            doc = json.loads(p.user_spec_json)
            if isinstance(doc, dict):
                return doc, p.user_spec_json
        except ValueError:
            pass
    spec = {k: v for k, v in p.spec.items() if k not in _NOT_SPEC}
    return spec, json.dumps(spec, sort_keys=True)


def _effective(cluster_text, project_text, user: dict, project: str, now: datetime) -> dict:
    merged = defaults.apply_texts(cluster_text, project_text, user)
    d = spec_to_dict(normalize_spec(merged, project=project, now=now))
    for k in _NOT_SPEC:
        d.pop(k, None)
    return d


def affected_pipelines(meta, store, new_cluster: Optional[str] = None,
                       project: Optional[str] = None,
                       new_project: Optional[str] = None) -> list[Affected]:
    """The pipelines whose effective spec changes when the cluster defaults become
    `new_cluster` (when given) or `project`'s defaults become `new_project`."""
    now = datetime.now(timezone.utc)
    old_cluster = defaults.load(meta)
    out = []
    for p in store.list_pipelines(project):
        if project is not None and p.project != project:
            continue
        user, user_json = _user_spec(p)
        old_project = defaults.load(meta, p.project)
        cluster_after = new_cluster if new_cluster is not None else old_cluster
        project_after = new_project if project is not None else old_project
        try:
            before = _effective(old_cluster, old_project, user, p.project, now)
        except PfsError:
            before = None  # no longer valid under today's defaults: anything new is a change
        try:
            after = _effective(cluster_after, project_after, user, p.project, now)
        except PfsError as e:
            raise InvalidArgument(f"with these defaults pipeline {p.project}/{p.name} would be "
                                  f"invalid: {e}") from None
        if before != after:
            out.append(Affected(p.project, p.name, user, user_json))
    out.sort(key=lambda a: (a.project, a.name))
    return out


def regenerate(master, affected: list[Affected], reprocess: bool) -> None:
    """Update each affected pipeline from its user spec under the (already stored) defaults."""
    for a in affected:
        master.create_pipeline(dict(a.user_spec), project=a.project, update=True,
                               reprocess=reprocess, user_json=a.user_json)
