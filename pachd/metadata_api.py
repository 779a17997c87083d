"""metadata.API/EditMetadata: user metadata of projects, repos, branches, commits (pfs core,
one transaction for the whole request) and of the cluster (a pachd record, shown by
InspectCluster) and of pipelines (PipelineInfo.metadata, as Pachyderm: the pipeline's own
map, not its spec's Kubernetes labels/annotations; editing it makes no new pipeline
version and restarts nothing).

All edits of a request are checked before anything is written; the pfs edits apply before
the pipelines' and the cluster's maps are written, so a failure leaves everything as it was.
"""
from __future__ import annotations

import json

from pfs.core.keys import pachd_key
from pfs.core.metadata import apply_op
from pfs.errors import FailedPrecondition, InvalidArgument
from pfs.service import pickers
from pfs.service.errors import rpc
from proto.metadata import metadata_pb2 as pb
from proto.metadata import metadata_pb2_grpc

CLUSTER_KEY = pachd_key("cluster-metadata")


class MetadataServicer(metadata_pb2_grpc.APIServicer):
    def __init__(self, pachd):
        self.pachd = pachd
        self.pfs = pachd.pfs
        pachd.admin.metadata_source = self.cluster_metadata

    def cluster_metadata(self) -> dict:
        raw = self.pfs.meta.get(CLUSTER_KEY)
        return json.loads(raw) if raw else {}

    @rpc
    def EditMetadata(self, req, ctx):
        pfs_edits, cluster_ops, pipeline_edits = [], [], []
        for e in req.edits:
            op = e.WhichOneof("op")
            if op is None:
                raise InvalidArgument("an edit needs an operation (replace, add_key, edit_key or delete_key)")
            body = getattr(e, op)
            args = (op, getattr(body, "key", ""), getattr(body, "value", ""),
                    dict(body.replacement) if op == "replace" else None)
            target = e.WhichOneof("target")
            if target == "project":
                pfs_edits.append(("project", pickers.project(e.project), *args))
            elif target == "repo":
                pfs_edits.append(("repo", pickers.repo(e.repo), *args))
            elif target == "branch":
                pfs_edits.append(("branch", pickers.branch(e.branch), *args))
            elif target == "commit":
                ci = pickers.commit(self.pfs, e.commit)
                pfs_edits.append(("commit", (ci.commit.repo, ci.commit.id), *args))
            elif target == "cluster":
                cluster_ops.append(args)
            elif target == "pipeline":
                if e.pipeline.WhichOneof("picker") != "name" or not e.pipeline.name.name:
                    raise InvalidArgument("pipeline picker names no pipeline")
                pipeline_edits.append((pickers.project(e.pipeline.name.project), e.pipeline.name.name, *args))
            else:
                raise InvalidArgument("an edit needs a target (project, repo, branch, commit, pipeline or cluster)")
        md = self.cluster_metadata()
        for op, key, value, repl in cluster_ops:  # checked before any write
            md = apply_op(md, op, key, value, repl, "the cluster")
        if pipeline_edits:
            pps = getattr(self.pachd, "pps", None)
            if pps is None:
                raise FailedPrecondition("this pachd runs without the pipeline system (pps), so it has no "
                                         "pipelines whose metadata could be edited")
            pps.master.edit_pipeline_metadata(
                pipeline_edits, then=(lambda: self.pfs.edit_metadata(pfs_edits)) if pfs_edits else None)
        elif pfs_edits:
            self.pfs.edit_metadata(pfs_edits)
        if cluster_ops:
            self.pfs.meta.put(CLUSTER_KEY, json.dumps(md).encode())
        return pb.EditMetadataResponse()
