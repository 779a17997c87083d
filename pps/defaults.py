"""Cluster and project pipeline defaults (Pachyderm 2.12's Set/Get{Cluster,Project}Defaults).

Invariants:
- Stored as the JSON text the client sent (`{"createPipelineRequest": {...}}`), one record
  for the cluster and one per project, in pfs's metadata store (pachd-level keys).
- A new or updated pipeline's spec is the user's spec merged over the project defaults
  merged over the cluster defaults (JSON merge patch, RFC 7386: objects merge key by key,
  anything else replaces; null deletes). The user's own text stays `user_spec_json`.
- Before merging, the user's keys are put in the defaults' spelling (proto field names:
  `datumTries` and `datum_tries` are one field), walking CreatePipelineRequest's fields;
  keys of map fields (env, labels...) are data and stay as written, and keys that are no
  field stay too (the spec parser names them).
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
    return merge_patch(merged, canonical(spec)) if merged else spec


def canonical(doc, desc=pb.CreatePipelineRequest.DESCRIPTOR):
    """`doc` with its keys spelled as `desc`'s proto field names (see the invariants)."""
    if not isinstance(doc, dict):
        return doc
    out = {}
    for k, v in doc.items():
        f = desc.fields_by_name.get(k) or _by_json_name(desc).get(k)
        if f is None:
            out[k] = v
            continue
        sub = f.message_type
        if sub is not None and sub.GetOptions().map_entry:
            vf = sub.fields_by_name["value"]
            out[f.name] = ({mk: canonical(mv, vf.message_type) for mk, mv in v.items()}
                           if vf.message_type is not None and isinstance(v, dict) else v)
        elif sub is not None and isinstance(v, list):
            out[f.name] = [canonical(x, sub) for x in v]
        elif sub is not None:
            out[f.name] = canonical(v, sub)
        else:
            out[f.name] = v
    return out


def _by_json_name(desc) -> dict:
    return {f.json_name: f for f in desc.fields}
