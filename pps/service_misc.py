"""The rest of pps_v2.API: cluster/project defaults, RenderTemplate, ListTask, and the calls
that need Kubernetes/Loki (GetKubeEvents, QueryLoki) or Pachyderm's pps load-test DAGs.
A mixin of PpsServicer.

Invariants:
- Cluster and project defaults are JSON objects of Pachyderm's shape
  (`{"createPipelineRequest": {...}}`), validated against CreatePipelineRequest and stored
  (pps.defaults); Get returns what Set stored. New and updated pipelines get them merged
  under their spec (pps.defaults.apply). Existing pipelines are not regenerated:
  `regenerate`/`reprocess` are not acted on and `affected_pipelines` is empty.
- RenderTemplate evaluates a jsonnet template with its args (as top-level arguments) and
  returns the JSON and the pipeline specs in it.
- RunPipeline answers as Pachyderm 2.x does: UNKNOWN "unimplemented".
"""
from __future__ import annotations

import json

from google.protobuf import json_format

from pfs.errors import FailedPrecondition, InvalidArgument, PfsError
from pfs.service.errors import rpc
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

    @rpc
    def SetClusterDefaults(self, req, ctx):
        text = _check_defaults(req.cluster_defaults_json, "cluster defaults")
        if not req.dry_run:
            self.m.pfs.meta.put(self._defaults_key(), text.encode())
        return pb.SetClusterDefaultsResponse()

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
        if not req.dry_run:
            self.m.pfs.meta.put(self._defaults_key(project), text.encode())
        return pb.SetProjectDefaultsResponse()

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
        for d in docs:
            msg = pb.CreatePipelineRequest()
            json_format.ParseDict(d, msg, ignore_unknown_fields=True)
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
