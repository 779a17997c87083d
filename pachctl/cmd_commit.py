"""Commits and commit sets: `start|finish|inspect|list|wait|subscribe|squash|delete commit`,
`find commit`.

`list commit` has Pachyderm's three modes: no argument (commit sets, with a ▇ progress bar;
`-x` expands them to commits), a commit-set id (its sub-commits) and `repo[@ref]` (commits in
a repo). `--legacy` prints the commit rows in Pachyderm 1.x's layout
(`REPO BRANCH COMMIT PARENT STARTED DURATION SIZE`, seed 003).

Invariants:
- `start commit` prints only the new commit id; finish/squash/delete print nothing.
- Flag conflicts are rejected before any RPC, with Pachyderm's texts.
- `subscribe commit` prints the header once and flushes each row as its commit arrives.
"""
from __future__ import annotations

import sys

import click

from pachctl import pb, pfs_pretty as pp
from pachctl.cli import (CliError, command, emit, encoder, get_app, paged, project_option,
                         raw_options, timestamp_option)
from pachctl.encode import encode_json
from pachctl.pretty import TabWriter
from pachctl.refs import commit_in_repo, is_commit_set_id, parse_branch, parse_commit, parse_file
from proto.pfs_v2 import pfs_pb2 as pfs

ORIGIN_KINDS = {"USER": pfs.USER, "AUTO": pfs.AUTO, "FSCK": pfs.FSCK}


def _origin(value: str) -> int:
    if not value:
        return pfs.ORIGIN_KIND_UNKNOWN
    kind = ORIGIN_KINDS.get(value.upper())
    if kind is None:
        raise CliError(f"unknown commit origin type '{value}', must be one of: "
                       + ", ".join(ORIGIN_KINDS))
    return kind


class CommitTable:
    """Commit rows in the 2.11 layout or, with legacy, Pachyderm 1.x's."""

    def __init__(self, out, full: bool, legacy: bool = False):
        self.full, self.legacy = full, legacy
        self.tw = TabWriter(out, pp.LEGACY_COMMIT_HEADER if legacy else pp.COMMIT_HEADER)

    def add(self, ci) -> None:
        self.tw.write(pp.legacy_commit_row(ci, self.full) if self.legacy else pp.commit_row(ci, self.full))

    def flush(self) -> None:
        self.tw.flush()


@command("start", "commit", arity=(1, 1), metavar="<repo>@<branch>", help="Start a new commit.")
@click.option("-p", "--parent", default="", help="The parent of the new commit, unneeded if branch is "
                                                  "specified and you want to use the previous head of the branch as the parent.")
@click.option("-m", "--message", "--description", "description", default="",
              help="A description of this commit's contents")
@project_option
def start_commit(args, parent, description, project):
    app = get_app()
    branch = parse_branch(args[0], app.project(project))
    req = pfs.StartCommitRequest(branch=pb.branch(branch), description=description)
    if parent:
        req.parent.CopyFrom(pb.commit(commit_in_repo(branch.repo, parent)))
    commit = app.client().pfs.StartCommit(req)
    sys.stdout.write(commit.id + "\n")


@command("finish", "commit", arity=(1, 1), metavar="<repo>@<branch-or-commit>", help="Finish a started commit.")
@click.option("-m", "--message", "--description", "description", default="",
              help="A description of this commit's contents (overwrites any existing commit description)")
@click.option("-f", "--force", is_flag=True, help="finish the commit even if it has provenance, which could break jobs; prefer 'stop job'")
@project_option
def finish_commit(args, description, force, project):
    app = get_app()
    commit = parse_commit(args[0], app.project(project))
    app.client().pfs.FinishCommit(pfs.FinishCommitRequest(commit=pb.commit(commit), description=description,
                                                          force=force))


def _inspect(args, raw, output, full_timestamps, project, wait: int) -> None:
    enc = encoder(raw, output)
    if "@" not in args[0] and is_commit_set_id(args[0]):
        raise CliError(f'Use "list commit {args[0]}" to see commits with a given ID across different repos')
    app = get_app()
    commit = parse_commit(args[0], app.project(project))
    ci = app.client().pfs.InspectCommit(pfs.InspectCommitRequest(commit=pb.commit(commit), wait=wait))
    if enc:
        emit(enc, ci)
    else:
        sys.stdout.write(pp.detailed_commit(ci, full_timestamps))


@command("inspect", "commit", arity=(1, 1), metavar="<repo>@<branch-or-commit>", help="Return info about a commit.")
@raw_options
@timestamp_option
@project_option
def inspect_commit(args, raw, output, full_timestamps, project):
    _inspect(args, raw, output, full_timestamps, project, pfs.STARTED)


@command("wait", "commit", arity=(1, 1), metavar="<repo>@<branch-or-commit>",
         help="Wait for the specified commit to finish and return it.")
@raw_options
@timestamp_option
@project_option
def wait_commit(args, raw, output, full_timestamps, project):
    _inspect(args, raw, output, full_timestamps, project, pfs.FINISHED)


@command("list", "commit", arity=(0, 1), metavar="[<commit-id>|<repo>[@<branch-or-commit>]]",
         help="Return a list of commits: commit sets (no argument), the sub-commits of a commit set, "
              "or the commits of a repo. --legacy prints Pachyderm 1.x's columns "
              "(REPO BRANCH COMMIT PARENT STARTED DURATION SIZE).")
@click.option("-f", "--from", "from_", default="", help="list all commits since this commit")
@click.option("-n", "--number", default=0, type=int, help="list only this many commits; if set to zero, list all commits")
@click.option("--all", "all_", is_flag=True, help="return all types of commits, including aliases")
@click.option("-x", "--expand", is_flag=True, help="show one line for each sub-commit and include more columns")
@click.option("--origin", default="", help="only return commits of a specific type")
@click.option("--legacy", is_flag=True, help="print Pachyderm 1.x's commit columns: REPO BRANCH COMMIT PARENT "
                                              "STARTED DURATION SIZE")
@raw_options
@timestamp_option
@project_option
def list_commit(args, from_, number, all_, expand, origin, legacy, raw, output, full_timestamps, project):
    enc = encoder(raw, output)
    if all_ and origin:
        raise CliError("cannot specify both --all and --origin")
    kind = _origin(origin)
    app = get_app()
    proj = app.project(project)
    if not args:
        if origin:
            raise CliError("cannot specify --origin when listing all commits")
        if from_:
            raise CliError("cannot specify --from when listing all commits")
        _list_commit_sets(app, proj, number, expand or legacy, legacy, enc, full_timestamps)
        return
    if is_commit_set_id(args[0]):
        for flag, name in ((from_, "--from"), (all_, "--all"), (origin, "--origin")):
            if flag:
                raise CliError(f"cannot specify {name} when listing subcommits")
        cis = app.client().pfs.InspectCommitSet(
            pfs.InspectCommitSetRequest(commit_set=pfs.CommitSet(id=args[0])))
        _print_commits(cis, enc, full_timestamps, legacy, number)
        return
    ref = parse_commit(args[0], proj)
    req = pfs.ListCommitRequest(repo=pb.repo(ref.repo), number=number, all=all_, origin_kind=kind)
    if ref.ref:
        getattr(req, "to").CopyFrom(pb.commit(ref))
    if from_:
        getattr(req, "from").CopyFrom(pb.commit(commit_in_repo(ref.repo, from_)))
    _print_commits(app.client().pfs.ListCommit(req), enc, full_timestamps, legacy)


def _print_commits(cis, enc, full: bool, legacy: bool, number: int = 0) -> None:
    table = None if enc else CommitTable(sys.stdout, full, legacy)
    for i, ci in enumerate(cis):
        if number and i >= number:
            break
        if enc:
            emit(enc, ci)
        else:
            table.add(ci)
    if table:
        table.flush()


def _list_commit_sets(app, project: str, number: int, expand: bool, legacy: bool, enc, full: bool) -> None:
    sets = app.client().pfs.ListCommitSet(pfs.ListCommitSetRequest(project=pb.project(project)))
    with paged() as out:
        table = None
        if not enc:
            table = CommitTable(out, full, legacy) if expand else TabWriter(out, pp.COMMIT_SET_HEADER)
        for i, csi in enumerate(sets):
            if number and i >= number:
                break
            if enc:
                for item in (csi.commits if expand else [csi]):
                    emit(enc, item)
            elif expand:
                for ci in csi.commits:
                    table.add(ci)
            else:
                table.write(pp.commit_set_row(csi, full))
        if table:
            table.flush()


@command("subscribe", "commit", arity=(1, 1), metavar="<repo>[@<branch>]",
         help="Print commits as they are created (streams until interrupted).")
@click.option("--from", "from_", default="", help="subscribe to all commits since this commit")
@click.option("--new", "new", is_flag=True, help="subscribe to only new commits created from now on")
@click.option("--all", "all_", is_flag=True, help="return all types of commits, including aliases")
@click.option("--origin", default="", help="only return commits of a specific type")
@raw_options
@timestamp_option
@project_option
def subscribe_commit(args, from_, new, all_, origin, raw, output, full_timestamps, project):
    enc = encoder(raw, output)
    if new and from_:
        raise CliError("--new and --from cannot be used together")
    if all_ and origin:
        raise CliError("cannot specify both --all and --origin")
    app = get_app()
    ref = parse_commit(args[0], app.project(project))
    c = app.client()
    req = pfs.SubscribeCommitRequest(repo=pb.repo(ref.repo), branch=ref.branch, all=all_,
                                     origin_kind=_origin(origin), state=pfs.FINISHED)
    if new:  # start after the newest existing commit
        latest = c.pfs.ListCommit(pfs.ListCommitRequest(
            repo=pb.repo(ref.repo), number=1, all=True, **({"to": pb.commit(ref)} if ref.ref else {})))
        from_ = next((ci.commit.id for ci in latest), "")
    if from_:
        getattr(req, "from").CopyFrom(pb.commit(commit_in_repo(ref.repo, from_)))
    table = None if enc else CommitTable(sys.stdout, full_timestamps)
    if table:
        table.tw.flush()
        sys.stdout.flush()
    for ci in c.pfs.SubscribeCommit(req, timeout=None):
        if enc:
            emit(enc, ci)
        else:
            table.add(ci)
            table.flush()
        sys.stdout.flush()


def _remove(args, recursive: bool, project, squash: bool) -> None:
    app = get_app()
    c = app.client()
    if "@" in args[0]:
        commit = parse_commit(args[0], app.project(project))
        if squash:
            c.pfs.SquashCommit(pfs.SquashCommitRequest(commit=pb.commit(commit), recursive=recursive))
        else:
            c.pfs.DropCommit(pfs.DropCommitRequest(commit=pb.commit(commit), recursive=recursive))
        return
    cs = pfs.CommitSet(id=args[0])
    if squash:
        c.pfs.SquashCommitSet(pfs.SquashCommitSetRequest(commit_set=cs))
    else:
        c.pfs.DropCommitSet(pfs.DropCommitSetRequest(commit_set=cs))


@command("squash", "commit", arity=(1, 1), metavar="<commit-id>",
         help="Squash the sub-commits of a commit set into their children (or, given repo@commit, "
              "that one commit; -r also its subvenance).")
@click.option("-r", "--recursive", is_flag=True, help="with repo@commit: also squash its subvenant commits")
@project_option
def squash_commit(args, recursive, project):
    _remove(args, recursive, project, squash=True)


@command("delete", "commit", arity=(1, 1), metavar="<commit-id>",
         help="Delete the sub-commits of a commit set (or, given repo@commit, that one commit; "
              "-r also its subvenance). The commits must not have children.")
@click.option("-r", "--recursive", is_flag=True, help="with repo@commit: also delete its subvenant commits")
@project_option
def delete_commit(args, recursive, project):
    _remove(args, recursive, project, squash=False)


@command("find", "commit", arity=(1, 1), metavar="<repo>@<branch-or-commit>:<path/in/pfs>",
         help="Find the commits, starting at a commit and walking back, that added, modified or "
              "deleted a file or directory.")
@click.option("--json", "as_json", is_flag=True, help="print the response in json")
@click.option("--limit", default=0, type=int, help="Number of matching commits to return")
@click.option("--timeout", default="default", help="Search duration timeout")
@project_option
def find_commit(args, as_json, limit, timeout, project):
    from pachctl.cli import parse_duration
    from pachctl.encode import proto_to_dict

    app = get_app()
    f = parse_file(args[0], app.project(project))
    req = pfs.FindCommitsRequest(start=pb.commit(f.commit), file_path=f.path, limit=limit)
    t = parse_duration(timeout)
    stream = app.client().pfs.FindCommits(req, timeout=t or app.rpc_timeout)
    if as_json:
        for resp in stream:
            sys.stdout.write(encode_json(proto_to_dict(resp)) + "\n")
        return
    tw = TabWriter(sys.stdout, "FOUND IN COMMITS\n")
    found = False
    for resp in stream:
        kind = resp.WhichOneof("result")
        if kind == "found_commit":
            tw.write(resp.found_commit.id + "\n")
            found = True
        elif kind == "last_searched_commit":
            if not found:
                tw.write("no commits found.\n")
            tw.write("\n")
            tw.flush()
            sys.stdout.write(f"LAST SEARCHED COMMIT\n{resp.last_searched_commit.id}\n")
            return
    tw.flush()
