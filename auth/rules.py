"""The explicit map from every gRPC method pachd serves to what a caller needs for it.

Invariants:
- RULES names every method of every service pachd registers; the interceptor refuses a
  method missing from it while auth is active (fail closed), and tests/auth checks that
  every registered method is listed.
- A rule says: open (no token), or authenticated plus the (resource, permission) pairs the
  request needs, checked before the call; `each` checks every message of a client stream
  (ModifyFile's set_commit); `keep` drops streamed results the caller may not read (list
  calls never reveal repos, pipelines or jobs the caller cannot see); `after` records what a
  successful call changes for auth (the creator of a repo becomes its repoOwner, a pipeline
  gets read on its inputs and write on its output).
- Resources: repo `project/repo`, project `project`, the cluster. An empty project means
  "default", as the clients send it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

from auth.model import (CLUSTER_RESOURCE, InvalidArgument, Resource, pipeline_subject, project_resource,
                        repo_resource)

Need = list[tuple[Resource, str]]


@dataclass(frozen=True)
class Rule:
    open: bool = False
    need: Optional[Callable] = None        # (call, request) -> Need
    each: Optional[Callable] = None        # (call, message) -> Need, client streams
    keep: Optional[Callable] = None        # (call, response) -> response or None
    after: Optional[Callable] = None       # (call, request) -> None, after success
    # set by pachd for calls whose `after` must survive a crash (pachd.auth_wiring
    # PipelineGrants): before runs once the checks passed, just before the servicer;
    # abandon if the servicer then fails
    before: Optional[Callable] = None      # (call, request) -> None
    abandon: Optional[Callable] = None     # (call, request) -> None
    pipeline_only: bool = False            # only a pipeline's own token (or an admin)


OPEN = Rule(open=True)
AUTHENTICATED = Rule()


# ---- resources out of requests ---------------------------------------------------------------
def _proj(p) -> str:
    return p.name or "default"


def repo_of(r) -> Resource:
    return repo_resource(_proj(r.project), r.name, r.type)


def commit_repo(c) -> Resource:
    return repo_of(c.repo if c.repo.name else c.branch.repo)


def file_repo(f) -> Resource:
    return commit_repo(f.commit)


def pipeline_repo(p) -> Resource:
    return repo_resource(_proj(p.project), p.name)


def on(perm: str, where: Callable, **kw) -> Rule:
    return Rule(need=lambda call, req: [(where(req), perm)], **kw)


def cluster(perm: str, **kw) -> Rule:
    return Rule(need=lambda call, req: [(CLUSTER_RESOURCE, perm)], **kw)


ADMIN = "CLUSTER_DELETE_ALL"  # internal/maintenance RPCs: clusterAdmin only


# ---- filters ---------------------------------------------------------------------------------
def _can(call, resource: Resource, perm: str) -> bool:
    return call.auth.has(call.subject, perm, resource)


def keep_repo_info(call, info):
    res = repo_of(info.repo)
    if not call.auth.has(call.subject, "REPO_READ", res):
        return None
    call.decorate(info.auth_info, *call.auth.reported(call.subject, res))
    return info


def keep_project_info(call, info):
    call.decorate(info.auth_info, *call.auth.reported(call.subject, project_resource(info.project.name)))
    return info


def keep_commit(call, ci):
    return ci if _can(call, commit_repo(ci.commit), "REPO_INSPECT_COMMIT") else None


def keep_branch(call, bi):
    return bi if _can(call, repo_of(bi.branch.repo), "REPO_LIST_BRANCH") else None


def keep_commit_set(call, csi):
    kept = [c for c in csi.commits if keep_commit(call, c) is not None]
    if not kept:
        return None
    del csi.commits[:]
    csi.commits.extend(kept)
    return csi


def keep_pipeline(call, pi):
    return pi if _can(call, pipeline_repo(pi.pipeline), "REPO_READ") else None


def keep_job(call, ji):
    return ji if _can(call, pipeline_repo(ji.job.pipeline), "PIPELINE_LIST_JOB") else None


def keep_job_set(call, jsi):
    kept = [j for j in jsi.jobs if keep_job(call, j) is not None]
    if not kept:
        return None
    del jsi.jobs[:]
    jsi.jobs.extend(kept)
    return jsi


def keep_secret_list(call, infos):
    return infos


# ---- pfs -------------------------------------------------------------------------------------
def need_create_repo(call, req) -> Need:
    res = repo_of(req.repo)
    call.state["repo_existed"] = call.hooks.repo_exists(res)
    if call.state["repo_existed"]:
        return [(res, "REPO_WRITE")] if req.update else []  # the servicer answers "already exists"
    return [(project_resource(_proj(req.repo.project)), "PROJECT_CREATE_REPO")]


def after_create_repo(call, req) -> None:
    """Only a new repo's creator becomes its owner (an update of an existing repo grants nothing)."""
    if req.repo.type in ("", "user") and not call.state.get("repo_existed"):
        call.auth.grant(repo_of(req.repo), call.subject, ["repoOwner"])


def after_delete_repo(call, req) -> None:
    if req.repo.type in ("", "user"):  # a meta or spec repo shares the user repo's bindings
        call.auth.drop_resource(repo_of(req.repo))


def keep_deleted_repos(call, resp):
    """DeleteRepos deleted what the caller may delete (the servicer skips the rest, as
    Pachyderm's): their bindings go with them."""
    for r in resp.repos:
        if r.type in ("", "user"):
            call.auth.drop_resource(repo_of(r))
    return resp


def need_start_commit(call, req) -> Need:
    return [(repo_of(req.branch.repo if req.branch.repo.name else
                     (req.parent.repo if req.parent.repo.name else req.parent.branch.repo)), "REPO_WRITE")]


def need_commit_set(perm: str):
    def need(call, req) -> Need:
        repos = call.hooks.commit_set_repos(req.commit_set.id)
        # an unknown set: nothing to touch, but say no more to a stranger than to an admin
        return [(r, perm) for r in repos] or [(CLUSTER_RESOURCE, ADMIN)]
    return need


def need_create_branch(call, req) -> Need:
    out = [(repo_of(req.branch.repo), "REPO_CREATE_BRANCH")]
    if req.head.id or req.head.branch.name:
        out.append((commit_repo(req.head), "REPO_READ"))
    out += [(repo_of(b.repo), "REPO_READ") for b in req.provenance]
    return out


def need_list_branch(call, req) -> Need:
    return [(repo_of(req.repo), "REPO_LIST_BRANCH")] if req.repo.name else []


def each_modify_file(call, msg) -> Need:
    if msg.HasField("set_commit"):
        return [(commit_repo(msg.set_commit), "REPO_WRITE")]
    if msg.HasField("copy_file"):
        return [(file_repo(msg.copy_file.src), "REPO_READ")]
    return []


def need_diff_file(call, req) -> Need:
    out = [(file_repo(req.new_file), "REPO_READ")]
    if req.old_file.commit.id or req.old_file.commit.branch.name:
        out.append((file_repo(req.old_file), "REPO_READ"))
    return out


def after_create_project(call, req) -> None:
    if not req.update:
        call.auth.grant(project_resource(_proj(req.project)), call.subject, ["projectOwner"])


def after_delete_project(call, req) -> None:
    call.auth.drop_resource(project_resource(_proj(req.project)))


def need_list_commit(call, req) -> Need:
    return [(repo_of(req.repo), "REPO_LIST_COMMIT")]


PFS = {
    "CreateRepo": Rule(need=need_create_repo, after=after_create_repo),
    "InspectRepo": on("REPO_READ", lambda r: repo_of(r.repo), keep=keep_repo_info),
    "ListRepo": Rule(keep=keep_repo_info),
    "DeleteRepo": on("REPO_DELETE", lambda r: repo_of(r.repo), after=after_delete_repo),
    "DeleteRepos": Rule(keep=keep_deleted_repos),
    "StartCommit": Rule(need=need_start_commit),
    "FinishCommit": on("REPO_WRITE", lambda r: commit_repo(r.commit)),
    "ClearCommit": on("REPO_WRITE", lambda r: commit_repo(r.commit)),
    "InspectCommit": on("REPO_INSPECT_COMMIT", lambda r: commit_repo(r.commit)),
    "ListCommit": Rule(need=need_list_commit),
    "SubscribeCommit": Rule(need=need_list_commit),
    "SquashCommit": on("REPO_DELETE_COMMIT", lambda r: commit_repo(r.commit)),
    "DropCommit": on("REPO_DELETE_COMMIT", lambda r: commit_repo(r.commit)),
    "InspectCommitSet": Rule(keep=keep_commit),
    "ListCommitSet": Rule(keep=keep_commit_set),
    "SquashCommitSet": Rule(need=need_commit_set("REPO_DELETE_COMMIT")),
    "DropCommitSet": Rule(need=need_commit_set("REPO_DELETE_COMMIT")),
    "FindCommits": on("REPO_LIST_COMMIT", lambda r: commit_repo(r.start)),
    "WalkCommitProvenance": Rule(keep=keep_commit),
    "WalkCommitSubvenance": Rule(keep=keep_commit),
    "CreateBranch": Rule(need=need_create_branch),
    "InspectBranch": on("REPO_LIST_BRANCH", lambda r: repo_of(r.branch.repo)),
    "ListBranch": Rule(need=need_list_branch, keep=keep_branch),
    "DeleteBranch": on("REPO_DELETE_BRANCH", lambda r: repo_of(r.branch.repo)),
    "WalkBranchProvenance": Rule(keep=keep_branch),
    "WalkBranchSubvenance": Rule(keep=keep_branch),
    "ModifyFile": Rule(each=each_modify_file),
    "GetFile": on("REPO_READ", lambda r: file_repo(r.file)),
    "GetFileTAR": on("REPO_READ", lambda r: file_repo(r.file)),
    "InspectFile": on("REPO_INSPECT_FILE", lambda r: file_repo(r.file)),
    "ListFile": on("REPO_LIST_FILE", lambda r: file_repo(r.file)),
    "WalkFile": on("REPO_LIST_FILE", lambda r: file_repo(r.file)),
    "GlobFile": on("REPO_LIST_FILE", lambda r: commit_repo(r.commit)),
    "DiffFile": Rule(need=need_diff_file),
    "ActivateAuth": AUTHENTICATED,
    "DeleteAll": cluster("CLUSTER_DELETE_ALL"),
    "Fsck": cluster(ADMIN),
    "CreateFileSet": AUTHENTICATED,  # a file set belongs to no repo until AddFileSet
    "GetFileSet": on("REPO_READ", lambda r: commit_repo(r.commit)),
    "AddFileSet": on("REPO_WRITE", lambda r: commit_repo(r.commit)),
    "RenewFileSet": AUTHENTICATED,
    "ComposeFileSet": AUTHENTICATED,
    "ShardFileSet": AUTHENTICATED,
    "CheckStorage": cluster(ADMIN),
    "PutCache": cluster(ADMIN),
    "GetCache": cluster(ADMIN),
    "ClearCache": cluster(ADMIN),
    "RunLoadTest": cluster(ADMIN),
    "RunLoadTestDefault": cluster(ADMIN),
    "ListTask": cluster(ADMIN),
    "Egress": on("REPO_READ", lambda r: commit_repo(r.commit)),
    "CreateProject": Rule(need=lambda call, req: [(project_resource(_proj(req.project)), "PROJECT_MODIFY_BINDINGS")]
                          if req.update else [(CLUSTER_RESOURCE, "PROJECT_CREATE")], after=after_create_project),
    "InspectProject": Rule(keep=keep_project_info),
    "InspectProjectV2": AUTHENTICATED,
    "ListProject": Rule(keep=keep_project_info),
    "DeleteProject": on("PROJECT_DELETE", lambda r: project_resource(_proj(r.project)), after=after_delete_project),
    "ReposSummary": AUTHENTICATED,  # the servicer counts only repos the caller may read
    "ForgetCommit": cluster(ADMIN),
}


# ---- pps -------------------------------------------------------------------------------------
def walk_input(inp, project: str, pipeline: str) -> tuple[list, list]:
    """(pfs input repos, cron repos) of a pps_v2.Input, as (project, repo) pairs."""
    pfs, cron = [], []

    def walk(node):
        if node is None:
            return
        if node.HasField("pfs"):
            item = (node.pfs.project or project, node.pfs.repo)
            if item not in pfs:
                pfs.append(item)
        elif node.HasField("cron"):
            cron.append((node.cron.project or project, node.cron.repo or f"{pipeline}_{node.cron.name}"))
        for kids in (node.cross, node.union, node.join, node.group):
            for k in kids:
                walk(k)
    walk(inp)
    return pfs, cron


def pipeline_request(req):
    """A CreatePipeline request, or the one carried as JSON by CreatePipelineV2."""
    if not hasattr(req, "create_pipeline_request_json"):
        return req
    from google.protobuf import json_format
    from proto.pps_v2 import pps_pb2
    try:
        d = json.loads(req.create_pipeline_request_json or "{}")
        return json_format.ParseDict(d, pps_pb2.CreatePipelineRequest(), ignore_unknown_fields=True)
    except (ValueError, json_format.ParseError) as e:
        raise InvalidArgument(f"the pipeline spec could not be read: {e}") from None


def need_create_pipeline(call, req) -> Need:
    spec = pipeline_request(req)
    project = _proj(spec.pipeline.project)
    inputs, _cron = walk_input(spec.input, project, spec.pipeline.name)
    out = [(repo_resource(p, r), "REPO_READ") for p, r in inputs]
    output = repo_resource(project, spec.pipeline.name)
    call.state["output_existed"] = call.hooks.repo_exists(output)
    if call.state["output_existed"]:
        out.append((output, "REPO_WRITE"))
    else:
        out.append((project_resource(project), "PROJECT_CREATE_REPO"))
    return out


def after_create_pipeline(call, req) -> None:
    spec = pipeline_request(req)
    if getattr(spec, "dry_run", False) or getattr(req, "dry_run", False):
        return
    project = _proj(spec.pipeline.project)
    inputs, cron = walk_input(spec.input, project, spec.pipeline.name)
    if not call.state.get("output_existed"):
        call.auth.grant(repo_resource(project, spec.pipeline.name), call.subject, ["repoOwner"])
    call.auth.setup_pipeline(project, spec.pipeline.name, inputs + cron)


def after_delete_pipeline(call, req) -> None:
    if req.all:
        return
    project, name = _proj(req.pipeline.project), req.pipeline.name
    call.auth.remove_pipeline(project, name)
    if not req.keep_repo:
        call.auth.drop_resource(repo_resource(project, name))


def need_delete_pipelines(call, req) -> Need:
    if req.all or not req.projects:
        return [(CLUSTER_RESOURCE, ADMIN)]
    return [(project_resource(_proj(p)), "PROJECT_DELETE") for p in req.projects]


def need_list_datum(call, req) -> Need:
    if req.job.pipeline.name:
        return [(pipeline_repo(req.job.pipeline), "REPO_READ")]
    inputs, cron = walk_input(req.input, "default", "")
    return [(repo_resource(p, r), "REPO_READ") for p, r in inputs + cron]


def need_get_logs(call, req) -> Need:
    p = req.pipeline if req.pipeline.name else req.job.pipeline if req.job.pipeline.name else \
        req.datum.job.pipeline if req.datum.job.pipeline.name else None
    if p is None:
        return [(CLUSTER_RESOURCE, "CLUSTER_GET_PACHD_LOGS")]
    return [(pipeline_repo(p), "REPO_READ")]


def need_list_job(call, req) -> Need:
    return [(pipeline_repo(req.pipeline), "PIPELINE_LIST_JOB")] if req.pipeline.name else []


PPS = {
    "InspectJob": on("PIPELINE_LIST_JOB", lambda r: pipeline_repo(r.job.pipeline)),
    "InspectJobSet": Rule(keep=keep_job),
    "ListJob": Rule(need=need_list_job, keep=keep_job),
    "ListJobSet": Rule(keep=keep_job_set),
    "SubscribeJob": on("PIPELINE_LIST_JOB", lambda r: pipeline_repo(r.pipeline)),
    "DeleteJob": on("REPO_WRITE", lambda r: pipeline_repo(r.job.pipeline)),
    "StopJob": on("REPO_WRITE", lambda r: pipeline_repo(r.job.pipeline)),
    "InspectDatum": on("REPO_READ", lambda r: pipeline_repo(r.datum.job.pipeline)),
    "ListDatum": Rule(need=need_list_datum),
    "CreateDatum": cluster(ADMIN),
    "RestartDatum": on("REPO_WRITE", lambda r: pipeline_repo(r.job.pipeline)),
    "RerunPipeline": on("REPO_WRITE", lambda r: pipeline_repo(r.pipeline)),
    "CreatePipeline": Rule(need=need_create_pipeline, after=after_create_pipeline),
    "CreatePipelineV2": Rule(need=need_create_pipeline, after=after_create_pipeline),
    "InspectPipeline": on("REPO_READ", lambda r: pipeline_repo(r.pipeline)),
    "ListPipeline": Rule(keep=keep_pipeline),
    "DeletePipeline": Rule(need=lambda call, req: [(CLUSTER_RESOURCE, ADMIN)] if req.all else
                           [(pipeline_repo(req.pipeline), "REPO_DELETE")], after=after_delete_pipeline),
    "DeletePipelines": Rule(need=need_delete_pipelines),
    "StartPipeline": on("REPO_WRITE", lambda r: pipeline_repo(r.pipeline)),
    "StopPipeline": on("REPO_WRITE", lambda r: pipeline_repo(r.pipeline)),
    "RunPipeline": on("REPO_WRITE", lambda r: pipeline_repo(r.pipeline)),
    "RunCron": on("REPO_WRITE", lambda r: pipeline_repo(r.pipeline)),
    "CheckStatus": cluster(ADMIN),
    "CreateSecret": cluster("CLUSTER_CREATE_SECRET"),
    "DeleteSecret": cluster("SECRET_DELETE"),
    "ListSecret": cluster("CLUSTER_LIST_SECRETS"),
    "InspectSecret": cluster("SECRET_INSPECT"),
    "DeleteAll": cluster("CLUSTER_DELETE_ALL"),
    "GetLogs": Rule(need=need_get_logs),
    "ActivateAuth": AUTHENTICATED,
    "UpdateJobState": on("REPO_WRITE", lambda r: pipeline_repo(r.job.pipeline)),
    "RunLoadTest": cluster(ADMIN),
    "RunLoadTestDefault": cluster(ADMIN),
    "RenderTemplate": AUTHENTICATED,
    "ListTask": cluster(ADMIN),
    "GetKubeEvents": cluster("CLUSTER_GET_LOKI_LOGS"),
    "QueryLoki": cluster("CLUSTER_GET_LOKI_LOGS"),
    "GetClusterDefaults": AUTHENTICATED,
    "SetClusterDefaults": cluster("CLUSTER_SET_DEFAULTS"),
    "GetProjectDefaults": AUTHENTICATED,
    "SetProjectDefaults": on("PROJECT_SET_DEFAULTS", lambda r: project_resource(_proj(r.project))),
    "PipelinesSummary": AUTHENTICATED,  # the servicer counts only pipelines the caller may read
}


# ---- workers (pachd's internal task board) ----------------------------------------------------
def need_own_pipeline(call, req) -> Need:
    """A worker asks for its own pipeline's tasks: the pipeline's token, or clusterAdmin."""
    if call.subject == pipeline_subject(req.project, req.pipeline):
        return []
    return [(CLUSTER_RESOURCE, ADMIN)]


def need_pipeline_subject(call, req) -> Need:
    return [] if call.subject.startswith("pipeline:") else [(CLUSTER_RESOURCE, ADMIN)]


TASKS = {"NextTask": Rule(need=need_own_pipeline), "Heartbeat": Rule(need=need_own_pipeline),
         "CompleteTask": Rule(need=need_pipeline_subject)}


# ---- auth --------------------------------------------------------------------------------------
def need_binding(call, req) -> Need:
    from auth.service import resource_from_proto
    res = resource_from_proto(req.resource)
    perm = {"CLUSTER": "CLUSTER_MODIFY_BINDINGS", "PROJECT": "PROJECT_MODIFY_BINDINGS",
            "REPO": "REPO_MODIFY_BINDINGS"}[res.type]
    return [(res, perm)]


AUTH = {
    "Activate": OPEN,  # the servicer answers "already activated"
    "Deactivate": cluster("CLUSTER_AUTH_DEACTIVATE"),
    "GetConfiguration": cluster("CLUSTER_AUTH_GET_CONFIG"),
    "SetConfiguration": cluster("CLUSTER_AUTH_SET_CONFIG"),
    "Authenticate": OPEN,
    "Authorize": AUTHENTICATED,
    "GetPermissions": AUTHENTICATED,
    "GetPermissionsForPrincipal": cluster("CLUSTER_AUTH_GET_PERMISSIONS_FOR_PRINCIPAL"),
    "WhoAmI": AUTHENTICATED,
    "GetRolesForPermission": AUTHENTICATED,
    "ModifyRoleBinding": Rule(need=need_binding),
    "GetRoleBinding": AUTHENTICATED,
    "GetOIDCLogin": OPEN,
    "GetRobotToken": cluster("CLUSTER_AUTH_GET_ROBOT_TOKEN"),
    "RevokeAuthToken": AUTHENTICATED,  # your own token; any token with CLUSTER_AUTH_REVOKE_USER_TOKENS
    "RevokeAuthTokensForUser": cluster("CLUSTER_AUTH_REVOKE_USER_TOKENS"),
    "SetGroupsForUser": cluster("CLUSTER_AUTH_MODIFY_GROUP_MEMBERS"),
    "ModifyMembers": cluster("CLUSTER_AUTH_MODIFY_GROUP_MEMBERS"),
    "GetGroups": AUTHENTICATED,
    "GetGroupsForPrincipal": cluster("CLUSTER_AUTH_GET_GROUPS"),
    "GetUsers": cluster("CLUSTER_AUTH_GET_GROUP_USERS"),
    "ExtractAuthTokens": cluster("CLUSTER_AUTH_EXTRACT_TOKENS"),
    "RestoreAuthToken": cluster("CLUSTER_AUTH_RESTORE_TOKEN"),
    "DeleteExpiredAuthTokens": cluster("CLUSTER_AUTH_DELETE_EXPIRED_TOKENS"),
    "RotateRootToken": cluster("CLUSTER_AUTH_ROTATE_ROOT_TOKEN"),
}

# ---- the services an unlicensed Pachyderm answers, and the rest of pachd's ----------------------
def _cluster_each(perms: dict[str, str]) -> dict[str, Rule]:
    return {m: cluster(p) for m, p in perms.items()}


IDENTITY = _cluster_each({
    "SetIdentityServerConfig": "CLUSTER_IDENTITY_SET_CONFIG", "GetIdentityServerConfig": "CLUSTER_IDENTITY_GET_CONFIG",
    "CreateIDPConnector": "CLUSTER_IDENTITY_CREATE_IDP", "UpdateIDPConnector": "CLUSTER_IDENTITY_UPDATE_IDP",
    "ListIDPConnectors": "CLUSTER_IDENTITY_LIST_IDPS", "GetIDPConnector": "CLUSTER_IDENTITY_GET_IDP",
    "DeleteIDPConnector": "CLUSTER_IDENTITY_DELETE_IDP", "CreateOIDCClient": "CLUSTER_IDENTITY_CREATE_OIDC_CLIENT",
    "UpdateOIDCClient": "CLUSTER_IDENTITY_UPDATE_OIDC_CLIENT", "GetOIDCClient": "CLUSTER_IDENTITY_GET_OIDC_CLIENT",
    "ListOIDCClients": "CLUSTER_IDENTITY_LIST_OIDC_CLIENTS", "DeleteOIDCClient": "CLUSTER_IDENTITY_DELETE_OIDC_CLIENT",
    "DeleteAll": ADMIN})
LICENSE = {**_cluster_each({
    "Activate": "CLUSTER_LICENSE_ACTIVATE", "GetActivationCode": "CLUSTER_LICENSE_GET_CODE", "DeleteAll": ADMIN,
    "AddCluster": "CLUSTER_LICENSE_ADD_CLUSTER", "DeleteCluster": "CLUSTER_LICENSE_DELETE_CLUSTER",
    "ListClusters": "CLUSTER_LICENSE_LIST_CLUSTERS", "UpdateCluster": "CLUSTER_LICENSE_UPDATE_CLUSTER"}),
    "Heartbeat": OPEN, "ListUserClusters": AUTHENTICATED}
ENTERPRISE = {**_cluster_each({
    "Activate": "CLUSTER_ENTERPRISE_ACTIVATE", "GetActivationCode": "CLUSTER_ENTERPRISE_GET_CODE",
    "Heartbeat": "CLUSTER_ENTERPRISE_HEARTBEAT", "Deactivate": "CLUSTER_ENTERPRISE_DEACTIVATE",
    "Pause": "CLUSTER_ENTERPRISE_PAUSE", "Unpause": "CLUSTER_ENTERPRISE_PAUSE"}),
    "GetState": OPEN, "PauseStatus": AUTHENTICATED}
# debug dumps show every repo and pipeline; load tests write: clusterAdmin's
DEBUG = {**_cluster_each({m: "CLUSTER_DEBUG_DUMP" for m in ("Profile", "Binary", "Dump", "DumpV2", "Trace",
                                                              "GetDumpV2Template")}),
         **_cluster_each({m: ADMIN for m in ("SetLogLevel", "RunPFSLoadTest", "RunPFSLoadTestDefault")})}
# ---- logs.API, metadata.API (Pachyderm 2.12) ------------------------------------------------
def need_logs(call, req) -> Need:
    """Admin queries (Loki, pods) are cluster-wide; a query naming a pipeline needs read on
    its output repo, as pps GetLogs; project, job and datum queries need only a token: the
    servicer returns lines of pipelines whose output the caller may read, and nothing else
    (filtered before any limit, so counts tell nothing either)."""
    q = req.query
    if q.WhichOneof("query_type") == "admin":
        return [(CLUSTER_RESOURCE, "CLUSTER_GET_LOKI_LOGS")]
    u = q.user
    kind = u.WhichOneof("user_type")
    p = {"pipeline": u.pipeline, "pipeline_job": u.pipeline_job.pipeline,
         "pipeline_datum": u.pipeline_datum.pipeline}.get(kind)
    if p is not None and p.pipeline:
        return [(repo_resource(p.project or "default", p.pipeline), "REPO_READ")]
    return []


def _picked_project(p) -> str:
    return (p.name if p.WhichOneof("picker") == "name" else "") or "default"


def _picked_repo(p) -> Resource:
    n = p.name
    return repo_resource(_picked_project(n.project), n.name, n.type or "user")


def _picked_commit_repo(p) -> Resource:
    kind = p.WhichOneof("picker")
    if kind == "branch_head":
        return _picked_repo(p.branch_head.name.repo)
    if kind == "id":
        return _picked_repo(p.id.repo)
    if kind == "ancestor":
        return _picked_commit_repo(p.ancestor.start)
    if kind == "branch_root":
        return _picked_repo(p.branch_root.branch.name.repo)
    raise InvalidArgument("commit picker names no commit")


def need_edit_metadata(call, req) -> Need:
    """Each edit as Pachyderm's metadata server checks it: a repo's needs REPO_WRITE, a
    branch's REPO_CREATE_BRANCH, the cluster's CLUSTER_EDIT_CLUSTER_METADATA, a project's
    only a token (Pachyderm: "same as editing a project's description"). A commit's needs
    REPO_WRITE on its repo: Pachyderm's comment says "same as starting commits" though its
    code checks nothing; we check what the comment says."""
    out: Need = []
    for e in req.edits:
        target = e.WhichOneof("target")
        if target == "repo":
            out.append((_picked_repo(e.repo), "REPO_WRITE"))
        elif target == "branch":
            out.append((_picked_repo(e.branch.name.repo), "REPO_CREATE_BRANCH"))
        elif target == "commit":
            out.append((_picked_commit_repo(e.commit), "REPO_WRITE"))
        elif target == "cluster":
            out.append((CLUSTER_RESOURCE, "CLUSTER_EDIT_CLUSTER_METADATA"))
        elif target == "pipeline":
            n = e.pipeline.name
            out.append((repo_resource(_picked_project(n.project), n.name), "REPO_WRITE"))
    return out


LOGS = {"GetLogs": Rule(need=need_logs)}
METADATA = {"EditMetadata": Rule(need=need_edit_metadata)}
PJS = {m: cluster(ADMIN) for m in ("CreateJob", "CancelJob", "DeleteJob", "ListJob", "WalkJob", "InspectJob",
                                    "ProcessQueue", "ListQueue", "InspectQueue", "AwaitJob")}
SNAPSHOT = {m: cluster(ADMIN) for m in ("CreateSnapshot", "DeleteSnapshot", "InspectSnapshot", "ListSnapshot")}
# file sets are scratch objects named by unguessable ids, as pfs's CreateFileSet
STORAGE = {m: AUTHENTICATED for m in ("CreateFileset", "ReadFileset", "ReadFilesetCDR", "RenewFileset",
                                       "ComposeFileset", "ShardFileset")}
# ---- transactions ---------------------------------------------------------------------------
# A call made inside a transaction is checked as its caller makes it (the interceptor runs
# before the transaction queues it), but what it changes for auth (`after`: the creator's
# repoOwner, a pipeline's bindings, a deleted repo's bindings dropped) happens only when the
# transaction applies it, never when it is queued (pachd.transactions records who queued each
# request and calls `after` at finish). A batch carries its requests inline: each is checked
# by the rule of the RPC it stands for, in order. In both, a repo that an earlier request of
# the same transaction by the same caller creates counts as the caller's (its repoOwner) for
# the requests after it, as in Pachyderm, where the creator's binding is written in the same
# transaction.
LEGACY_CREATE_PIPELINE = 9  # python-pachyderm 7.6's TransactionRequest.create_pipeline


def transaction_rule(kind: str) -> Optional[Rule]:
    """The rule of the RPC a TransactionRequest field stands for (`create_pipeline`: any
    CreatePipelineRequest, however the transaction carries it)."""
    return {"create_repo": PFS["CreateRepo"], "delete_repo": PFS["DeleteRepo"],
            "start_commit": PFS["StartCommit"], "finish_commit": PFS["FinishCommit"],
            "squash_commit_set": PFS["SquashCommitSet"], "create_branch": PFS["CreateBranch"],
            "delete_branch": PFS["DeleteBranch"], "update_job_state": PPS["UpdateJobState"],
            "stop_job": PPS["StopJob"], "create_pipeline": PPS["CreatePipeline"]}.get(kind)


def _need_with_made(rule: Rule, made: set) -> Callable:
    """rule.need, where what repoOwner grants on a repo in `made` needs no binding."""
    from auth.roles import grants

    def need(call, req) -> Need:
        return [(res, perm) for res, perm in (rule.need(call, req) if rule.need is not None else [])
                if not (res in made and grants("repoOwner", perm))]
    return need


def queued_rule(rule: Rule, made: set) -> Rule:
    """The rule for a call that a transaction queues: checked now (repos in `made`, created
    by the caller earlier in the transaction, count as the caller's), no `after` now."""
    return Rule(need=_need_with_made(rule, made), each=rule.each, keep=rule.keep,
                pipeline_only=rule.pipeline_only)


def prepare_after(rule: Rule, call, req) -> None:
    """Record in call.state what rule.after will read (whether the repo existed before), as
    the rule's `need` does; for a request applied later than it was checked."""
    if rule.need is not None:
        rule.need(call, req)


def _batch_items(req):
    """(rule, inner request) of each request of a BatchTransaction, in order."""
    by_field = {"create_repo": PFS["CreateRepo"], "delete_repo": PFS["DeleteRepo"],
                "start_commit": PFS["StartCommit"], "finish_commit": PFS["FinishCommit"],
                "squash_commit_set": PFS["SquashCommitSet"], "create_branch": PFS["CreateBranch"],
                "delete_branch": PFS["DeleteBranch"], "update_job_state": PPS["UpdateJobState"],
                "stop_job": PPS["StopJob"]}
    for r in req.requests:
        field = next((f for f in by_field if r.HasField(f)), None)
        if field is not None:
            yield by_field[field], getattr(r, field)
        elif r.HasField("create_pipeline_v2"):
            yield PPS["CreatePipeline"], r.create_pipeline_v2.create_pipeline_request
        else:
            from google.protobuf import unknown_fields
            from proto.pps_v2 import pps_pb2
            legacy = [f for f in unknown_fields.UnknownFieldSet(r) if f.field_number == LEGACY_CREATE_PIPELINE]
            if legacy:
                yield PPS["CreatePipeline"], pps_pb2.CreatePipelineRequest.FromString(legacy[0].data)
            # an empty request: the servicer refuses it by name


def need_batch(call, req) -> Need:
    from auth.roles import grants
    made: set[Resource] = set()
    subs = []
    for rule, inner in _batch_items(req):
        sub = type(call)(call.auth, call.hooks, call.subject)
        for res, perm in (rule.need(sub, inner) if rule.need is not None else []):
            if res in made and grants("repoOwner", perm):
                continue
            call.auth.check(call.subject, res, perm)
        created = _created_repo(inner)
        if created is not None and not call.hooks.repo_exists(created):
            made.add(created)
        subs.append((rule, sub, inner))
    call.state["batch"] = subs
    return []


def _created_repo(inner) -> Optional[Resource]:
    """The repo a CreateRepo or CreatePipeline request makes."""
    from proto.pfs_v2 import pfs_pb2
    from proto.pps_v2 import pps_pb2
    if isinstance(inner, pfs_pb2.CreateRepoRequest):
        return repo_of(inner.repo)
    if isinstance(inner, pps_pb2.CreatePipelineRequest):
        return repo_resource(_proj(inner.pipeline.project), inner.pipeline.name)
    return None


TRANSACTION = {"StartTransaction": AUTHENTICATED, "InspectTransaction": AUTHENTICATED,
               "DeleteTransaction": AUTHENTICATED, "ListTransaction": AUTHENTICATED,
               "FinishTransaction": AUTHENTICATED, "BatchTransaction": Rule(need=need_batch),
               "DeleteAll": cluster(ADMIN)}

RULES: dict[str, Rule] = {
    **{f"/pfs_v2.API/{m}": r for m, r in PFS.items()},
    **{f"/pps_v2.API/{m}": r for m, r in PPS.items()},
    **{f"/worker_v1.Tasks/{m}": r for m, r in TASKS.items()},
    **{f"/auth_v2.API/{m}": r for m, r in AUTH.items()},
    **{f"/identity_v2.API/{m}": r for m, r in IDENTITY.items()},
    **{f"/license_v2.API/{m}": r for m, r in LICENSE.items()},
    **{f"/enterprise_v2.API/{m}": r for m, r in ENTERPRISE.items()},
    **{f"/debug_v2.Debug/{m}": r for m, r in DEBUG.items()},
    **{f"/logs.API/{m}": r for m, r in LOGS.items()},
    **{f"/metadata.API/{m}": r for m, r in METADATA.items()},
    **{f"/pjs.API/{m}": r for m, r in PJS.items()},
    **{f"/snapshot.API/{m}": r for m, r in SNAPSHOT.items()},
    **{f"/storage.Fileset/{m}": r for m, r in STORAGE.items()},
    **{f"/transaction_v2.API/{m}": r for m, r in TRANSACTION.items()},
    "/versionpb_v2.API/GetVersion": OPEN,
    "/admin_v2.API/InspectCluster": OPEN,
    "/admin_v2.API/RestartPachyderm": cluster(ADMIN),
    # storage maintenance (pachd.maintenance): garbage collection, metadata shipping, backups
    "/maintenance_v1.API/GarbageCollect": cluster(ADMIN),
    "/maintenance_v1.API/ShipMetadata": cluster(ADMIN),
    "/maintenance_v1.API/Backup": cluster(ADMIN),
    # the name of pachd's local-read socket (pfs.service.local_read); the reads themselves are
    # GetFile calls, checked as GetFile
    "/pachd_local.LocalRead/Socket": AUTHENTICATED,
    # batched listings for our own clients (pfs.service.pfs_batch): ListFile's rule
    "/pfs_batch_v1.API/ListFile": PFS["ListFile"],
    # a byte range of a file (pfs.service.pfs_batch): GetFile's rule
    "/pfs_batch_v1.API/ReadRange": PFS["GetFile"],
    "/grpc.health.v1.Health/Check": OPEN,
    "/grpc.health.v1.Health/Watch": OPEN,
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": OPEN,
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": OPEN,
}


def methods_without_rule(methods: Iterable[str]) -> list[str]:
    return sorted(m for m in methods if m not in RULES)
