"""The rest of pps_v2.API: cluster/project defaults, RenderTemplate, ListTask, and the calls
that need Kubernetes/Loki (GetKubeEvents, QueryLoki) or Pachyderm's pps load-test DAGs.
A mixin of PpsServicer.

Invariants:
- Cluster and project defaults are JSON objects of Pachyderm's shape
  (`{"createPipelineRequest": {...}}`), validated against CreatePipelineRequest and stored
  (pps.defaults); Get returns what Set stored. New and updated pipelines get them merged
  under their spec (pps.defaults.apply). With `regenerate`, existing pipelines whose
  effective spec changes are updated and named in `affected_pipelines` (pps.regenerate).
- RenderTemplate evaluates a jsonnet template with its args (as top-level arguments) and
  returns the JSON and the pipeline specs in it.
- RunPipeline answers as Pachyderm 2.x does: UNKNOWN "unimplemented".
"""
from __future__ import annotations

import json

from google.protobuf import json_format

from pfs.errors import FailedPrecondition, InvalidArgument, PfsError
from pfs.service.errors import rpc
from proto.pfs_v2 import pfs_pb2 as pfs_pb
from proto.pps_v2 import pps_pb2 as pb



def _check_defaults(text: str, what: str) -> str:
    try:
        doc = json.loads(text or "{}")
    except ValueError as e:
        raise InvalidArgument(f"invalid {what} JSON: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{what} must be a JSON object")
    cpr = doc.get("createPipelineRequest", doc.get("create_pipeline_request", {}))
    try:
        json_format.ParseDict(cpr or {}, pb.CreatePipelineRequest())
    except json_format.ParseError as e:
        raise InvalidArgument(f"invalid {what}: createPipelineRequest: {e}") from None
    return json.dumps(doc)


class PpsMiscMixin:
    m = None

    def _defaults_key(self, project: str = ""):
        from pps import defaults
        return defaults.key(project)

    @rpc
    def GetClusterDefaults(self, req, ctx):
        raw = self.m.pfs.meta.get(self._defaults_key())
        return pb.GetClusterDefaultsResponse(
            cluster_defaults_json=raw.decode() if raw else json.dumps({"createPipelineRequest": {}}))

    def _set_defaults(self, key: bytes, text: str, req, **which) -> list:
        """Store the defaults (unless dry_run) and regenerate what they change (if asked)."""
        from pps import regenerate
        affected = (regenerate.affected_pipelines(self.m.pfs.meta, self.m.store, **which)
                    if req.regenerate else [])
        if not req.dry_run:
            self.m.pfs.meta.put(key, text.encode())
            regenerate.regenerate(self.m, affected, reprocess=req.reprocess)
        return [pb.Pipeline(project=pfs_pb.Project(name=a.project), name=a.name) for a in affected]

    @rpc
    def SetClusterDefaults(self, req, ctx):
        text = _check_defaults(req.cluster_defaults_json, "cluster defaults")
        affected = self._set_defaults(self._defaults_key(), text, req, new_cluster=text)
        return pb.SetClusterDefaultsResponse(affected_pipelines=affected)

    @rpc
    def GetProjectDefaults(self, req, ctx):
        project = req.project.name or "default"
        self.m.pfs.inspect_project(project)
        raw = self.m.pfs.meta.get(self._defaults_key(project))
        return pb.GetProjectDefaultsResponse(project_defaults_json=raw.decode() if raw else "{}")

    @rpc
    def SetProjectDefaults(self, req, ctx):
        project = req.project.name or "default"
        self.m.pfs.inspect_project(project)
        text = _check_defaults(req.project_defaults_json, f"project {project} defaults")
        affected = self._set_defaults(self._defaults_key(project), text, req,
                                      project=project, new_project=text)
        return pb.SetProjectDefaultsResponse(affected_pipelines=affected)

    @rpc
    def RenderTemplate(self, req, ctx):
        try:
            import _jsonnet  # type: ignore[import-not-found]
        except ImportError:
            raise FailedPrecondition("rendering jsonnet templates needs the `jsonnet` Python package, "
                                     "which this pachd does not have installed") from None
        try:
            text = _jsonnet.evaluate_snippet("template", req.template, tla_vars=dict(req.args))
        except RuntimeError as e:
            raise InvalidArgument(f"could not evaluate the template: {e}") from None
        doc = json.loads(text)
        docs = doc if isinstance(doc, list) else [doc]
        specs = []
        for i, d in enumerate(docs):
            if not isinstance(d, dict):
                raise InvalidArgument(f"the template must render to a pipeline spec (a JSON object) or a list "
                                      f"of them; item {i} is {type(d).__name__}")
            msg = pb.CreatePipelineRequest()
            try:
                json_format.ParseDict(d, msg, ignore_unknown_fields=True)
            except json_format.ParseError as e:
                raise InvalidArgument(f"the template rendered an invalid pipeline spec (item {i}): {e}") from None
            specs.append(msg)
        return pb.RenderTemplateResponse(json=text, specs=specs)

    @rpc
    def ListTask(self, req, ctx):
        # datums are handed to workers through the master's task board, not Pachyderm's task
        # service; there are no task-service tasks to list
        return iter(())

    @rpc
    def GetKubeEvents(self, req, ctx):
        raise FailedPrecondition("Kubernetes events need pachd to run pipelines on Kubernetes "
                                 "(PACHD_EXECUTOR=kubernetes); use `kubectl get events` there")

    @rpc
    def QueryLoki(self, req, ctx):
        raise FailedPrecondition("this pachd keeps pipeline logs itself and has no Loki to query: "
                                 "use GetLogs (pachctl logs)")

    @rpc
    def RunLoadTest(self, req, ctx):
        raise FailedPrecondition("pps load tests (DAG and load specs run by Pachyderm's pachd) are not "
                                 "supported here; use debug_v2 RunPFSLoadTest for pfs load tests")

    @rpc
    def RunLoadTestDefault(self, req, ctx):
        raise FailedPrecondition("pps load tests are not supported here; use debug_v2 RunPFSLoadTestDefault")

    @rpc
    def RunPipeline(self, req, ctx):
        raise PfsError("unimplemented")  # Pachyderm 2.x's own answer
