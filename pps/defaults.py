"""Cluster and project pipeline defaults (Pachyderm 2.12's Set/Get{Cluster,Project}Defaults).

Invariants:
- Stored as the JSON text the client sent (`{"createPipelineRequest": {...}}`), one record
  for the cluster and one per project, in pfs's metadata store (pachd-level keys).
- A new or updated pipeline's spec is the user's spec merged over the project defaults
  merged over the cluster defaults (JSON merge patch, RFC 7386: objects merge key by key,
  anything else replaces; null deletes). The user's own text stays `user_spec_json`.
"""
from __future__ import annotations

import json
from typing import Optional

from google.protobuf import json_format

from pfs.core.keys import pachd_key
from proto.pps_v2 import pps_pb2 as pb

CLUSTER = "cluster-defaults"


def key(project: str = "") -> bytes:
    return pachd_key("pps-defaults", project or CLUSTER)


def load(meta, project: str = "") -> Optional[str]:
    raw = meta.get(key(project))
    return raw.decode() if raw else None


def _cpr(text: Optional[str]) -> dict:
    """The createPipelineRequest of a defaults document, with proto field names."""
    if not text:
        return {}
    doc = json.loads(text)
    cpr = doc.get("createPipelineRequest", doc.get("create_pipeline_request")) or {}
    msg = pb.CreatePipelineRequest()
    json_format.ParseDict(cpr, msg)
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def merge_patch(base: dict, patch: dict) -> dict:
    out = dict(base)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge_patch(out[k], v)
        else:
            out[k] = v
    return out


def apply(meta, project: str, spec: dict) -> dict:
    """The spec with the cluster's and the project's defaults under it."""
    return apply_texts(load(meta), load(meta, project), spec)


def apply_texts(cluster_text: Optional[str], project_text: Optional[str], spec: dict) -> dict:
    """The spec with the given cluster and project defaults documents under it."""
    merged = merge_patch(_cpr(cluster_text), _cpr(project_text))
    return merge_patch(merged, spec) if merged else spec
