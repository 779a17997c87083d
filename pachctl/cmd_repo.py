"""Projects, repos and branches: `create|update|inspect|list|delete project|repo`,
`create|inspect|list|delete branch`.

Invariants:
- Output formats are pachctl 2.11's (pachctl.pfs_pretty); create/update/delete are silent on
  stdout except `delete repo` (`Repo deleted.` on stderr) and `delete project` (its prompts).
- Repo and branch arguments never carry a project; it comes from `--project` or the context.
"""
from __future__ import annotations

import sys

import click
import grpc

from pachctl import pb, pfs_pretty as pp
from pachctl.cli import (CliError, command, confirm, emit, encoder, get_app, project_option,
                         raw_options, timestamp_option)
from pachctl.pretty import TabWriter
from pachctl.refs import parse_branch, parse_commit, parse_head, parse_repo
from proto.pfs_v2 import pfs_pb2 as pfs


# ---- projects --------------------------------------------------------------------------------
@command("create", "project", arity=(1, 1), metavar="<project>", help="Create a new project.")
@click.option("-d", "--description", default="", help="The description of the newly-created project.")
def create_project(args, description):
    get_app().client().pfs.CreateProject(
        pfs.CreateProjectRequest(project=pb.project(args[0]), description=description))


@command("update", "project", arity=(1, 1), metavar="<project>", help="Update a project.")
@click.option("-d", "--description", default="", help="The description of the updated project.")
def update_project(args, description):
    get_app().client().pfs.CreateProject(
        pfs.CreateProjectRequest(project=pb.project(args[0]), description=description, update=True))


@command("inspect", "project", arity=(1, 1), metavar="<project>", help="Inspect a project.")
@raw_options
def inspect_project(args, raw, output):
    enc = encoder(raw, output)
    resp = get_app().client().pfs.InspectProjectV2(pfs.InspectProjectV2Request(project=pb.project(args[0])))
    if enc:
        emit(enc, resp.info)
        return
    sys.stdout.write(pp.detailed_project(resp.info))
    if resp.defaults_json and resp.defaults_json.strip() not in ("", "{}"):
        sys.stdout.write(f"Defaults: {resp.defaults_json}\n")


@command("list", "project", help="Return all projects.")
@raw_options
def list_project(raw, output):
    enc = encoder(raw, output)
    app = get_app()
    infos = app.client().pfs.ListProject(pfs.ListProjectRequest())
    if enc:
        for pi in infos:
            emit(enc, pi)
        return
    current = app.config.project(app.env)
    tw = TabWriter(sys.stdout, pp.PROJECT_HEADER)
    for pi in infos:
        tw.write(pp.project_row(pi, current))
    tw.flush()


@command("delete", "project", arity=(1, 1), metavar="<project>",
         help="Delete a project. When it still holds repos, asks for confirmation unless --force.")
@click.option("-f", "--force", is_flag=True, help="Remove the project regardless of errors; use with care.")
def delete_project(args, force):
    app = get_app()
    c = app.client()
    name = args[0]
    repos = list(c.pfs.ListRepo(pfs.ListRepoRequest(projects=[pb.project(name)], type="")))
    pipelines = _pipelines_in(c, name)
    if (repos or pipelines) and not force:
        for p in pipelines:
            sys.stdout.write(f"This will delete pipeline {p}\n")
        for r in repos:
            sys.stdout.write(f"This will delete repo {pp.repo_name(r.repo)}\n")
        if not confirm():
            return
        force = True
    c.pfs.DeleteProject(pfs.DeleteProjectRequest(project=pb.project(name), force=force))
    if name == app.config.project(app.env):
        sys.stderr.write(f"warning: deleted current project {name}; update context by running:\n"
                         "   pachctl config update context --project PROJECT\n")


def _pipelines_in(c, project: str) -> list[str]:
    try:
        from proto.pps_v2 import pps_pb2
        req = pps_pb2.ListPipelineRequest(projects=[pb.project(project)])
        return [pi.pipeline.name for pi in c.pps.ListPipeline(req)]
    except (grpc.RpcError, ImportError):
        return []


# ---- repos -----------------------------------------------------------------------------------
@command("create", "repo", arity=(1, 1), metavar="<repo>", help="Create a new repo.")
@click.option("-d", "--description", default="", help="A description of the repo.")
@project_option
def create_repo(args, description, project):
    app = get_app()
    repo = parse_repo(args[0], app.project(project))
    app.client().pfs.CreateRepo(pfs.CreateRepoRequest(repo=pb.repo(repo), description=description))


@command("update", "repo", arity=(1, 1), metavar="<repo>", help="Update a repo.")
@click.option("-d", "--description", default="", help="A description of the repo.")
@project_option
def update_repo(args, description, project):
    app = get_app()
    repo = parse_repo(args[0], app.project(project))
    app.client().pfs.CreateRepo(pfs.CreateRepoRequest(repo=pb.repo(repo), description=description, update=True))


@command("inspect", "repo", arity=(1, 1), metavar="<repo>", help="Return info about a repo.")
@raw_options
@timestamp_option
@project_option
def inspect_repo(args, raw, output, full_timestamps, project):
    enc = encoder(raw, output)
    app = get_app()
    repo = parse_repo(args[0], app.project(project))
    ri = app.client().pfs.InspectRepo(pfs.InspectRepoRequest(repo=pb.repo(repo)))
    if enc:
        emit(enc, ri)
    else:
        sys.stdout.write(pp.detailed_repo(ri, full_timestamps))


@command("list", "repo", help="Return a list of repos.")
@click.option("--all", "all_", is_flag=True, help="include system repos of all types")
@click.option("--type", "repo_type", default="user", help="only include repos of the given type")
@click.option("-A", "--all-projects", is_flag=True, help="Show repos from all projects.")
@raw_options
@timestamp_option
@project_option
def list_repo(all_, repo_type, all_projects, raw, output, full_timestamps, project):
    enc = encoder(raw, output)
    app = get_app()
    req = pfs.ListRepoRequest(type="" if all_ else repo_type)
    if not all_projects:
        req.projects.append(pb.project(app.project(project)))
    infos = app.client().pfs.ListRepo(req)
    if enc:
        for ri in infos:
            emit(enc, ri)
        return
    tw = TabWriter(sys.stdout, pp.REPO_HEADER)
    for ri in infos:
        tw.write(pp.repo_row(ri, full_timestamps))
    tw.flush()


@command("delete", "repo", arity=(0, 1), metavar="<repo>", help="Delete a repo.")
@click.option("-f", "--force", is_flag=True, help="remove the repo regardless of errors; use with care")
@click.option("--all", "all_", is_flag=True, help="remove all repos")
@click.option("-A", "--all-projects", is_flag=True, help="delete repos from all projects; only valid with --all")
@project_option
def delete_repo(args, force, all_, all_projects, project):
    app = get_app()
    if all_ and args:
        raise CliError("cannot use the --all flag with an argument")
    if not all_ and not args:
        raise CliError("either a repo name or the --all flag needs to be provided")
    if all_projects and not all_:
        raise CliError("cannot use the --all-projects flag without --all")
    c = app.client()
    if all_:
        req = pfs.DeleteReposRequest(force=force, all=all_projects)
        if not all_projects:
            req.projects.append(pb.project(app.project(project)))
        c.pfs.DeleteRepos(req)
        return
    repo = parse_repo(args[0], app.project(project))
    resp = c.pfs.DeleteRepo(pfs.DeleteRepoRequest(repo=pb.repo(repo), force=force))
    if not resp.deleted:
        raise CliError("No repo deleted.")
    sys.stderr.write("Repo deleted.\n")


# ---- branches --------------------------------------------------------------------------------
@command("create", "branch", arity=(1, 1), metavar="<repo>@<branch>",
         help="Create a new branch, or update an existing branch, on a repo. "
              "`repo@branch=commit` sets the head too.")
@click.option("--head", default="", help="The head of the newly created branch: a commit id, a branch, or repo@ref.")
@click.option("-p", "--provenance", multiple=True, metavar="REPO@BRANCH",
              help="The provenance for the branch (repeatable, or comma separated).")
@click.option("-t", "--trigger", "trigger_branch", default="", help="The branch to trigger this branch on.")
@click.option("--trigger-cron", default="", help="The cron spec to use in triggering.")
@click.option("--trigger-size", default="", help="The data size to use in triggering.")
@click.option("--trigger-rate-limit", default="", help="The rate limit spec to use in triggering.")
@click.option("--trigger-commits", default=0, type=int, help="The number of commits to use in triggering.")
@click.option("--trigger-all", is_flag=True, help="Only trigger when all conditions are met, rather than when any are met.")
@project_option
def create_branch(args, head, provenance, trigger_branch, trigger_cron, trigger_size,
                  trigger_rate_limit, trigger_commits, trigger_all, project):
    app = get_app()
    proj = app.project(project)
    ref = parse_commit(args[0], proj)
    if ref.id and not ref.branch:
        parse_branch(args[0], proj)  # raises Pachyderm's "cannot specify a commit" error
    req = pfs.CreateBranchRequest(branch=pb.branch(ref.branch_ref))
    if head:
        req.head.CopyFrom(pb.commit(parse_head(head, ref.repo)))
    elif ref.id:
        req.head.CopyFrom(pb.commit(ref))
    for item in provenance:
        for part in item.split(","):
            if part.strip():
                req.provenance.append(pb.branch(parse_branch(part.strip(), proj)))
    has_cond = bool(trigger_cron or trigger_size or trigger_rate_limit or trigger_commits or trigger_all)
    if has_cond and not trigger_branch:
        raise CliError("trigger condition specified without a branch to trigger on, "
                       "specify a branch with --trigger")
    if trigger_branch:
        if req.provenance:
            raise CliError("cannot use provenance and triggers on the same branch")
        req.trigger.CopyFrom(pfs.Trigger(branch=trigger_branch, all=trigger_all, cron_spec=trigger_cron,
                                         size=trigger_size, rate_limit_spec=trigger_rate_limit,
                                         commits=trigger_commits))
    app.client().pfs.CreateBranch(req)


@command("inspect", "branch", arity=(1, 1), metavar="<repo>@<branch>", help="Return info about a branch.")
@raw_options
@timestamp_option
@project_option
def inspect_branch(args, raw, output, full_timestamps, project):
    enc = encoder(raw, output)
    app = get_app()
    branch = parse_branch(args[0], app.project(project))
    bi = app.client().pfs.InspectBranch(pfs.InspectBranchRequest(branch=pb.branch(branch)))
    if enc:
        emit(enc, bi)
    else:
        sys.stdout.write(pp.detailed_branch(bi))


@command("list", "branch", arity=(1, 1), metavar="<repo>", help="Return all branches on a repo.")
@raw_options
@project_option
def list_branch(args, raw, output, project):
    enc = encoder(raw, output)
    app = get_app()
    repo = parse_repo(args[0], app.project(project))
    infos = app.client().pfs.ListBranch(pfs.ListBranchRequest(repo=pb.repo(repo)))
    if enc:
        for bi in infos:
            emit(enc, bi)
        return
    tw = TabWriter(sys.stdout, pp.BRANCH_HEADER)
    for bi in infos:
        tw.write(pp.branch_row(bi))
    tw.flush()


@command("delete", "branch", arity=(1, 1), metavar="<repo>@<branch>", help="Delete a branch")
@click.option("-f", "--force", is_flag=True, help="remove the branch regardless of errors; use with care")
@project_option
def delete_branch(args, force, project):
    app = get_app()
    branch = parse_branch(args[0], app.project(project))
    app.client().pfs.DeleteBranch(pfs.DeleteBranchRequest(branch=pb.branch(branch), force=force))
