"""Files: `inspect|list|glob|diff|delete|copy file` (put/get live in cmd_transfer).

Invariants:
- `list file` and `glob file` print pachctl ≥ 2.8's `SIZE   \\tNAME` listing (raw tabs, no
  alignment); `--legacy` prints the 2.0–2.7 `NAME TYPE SIZE` table, and `--history N|all`
  Pachyderm 1.x's `COMMIT NAME TYPE COMMITTED SIZE` table (pachctl.history).
- `diff file` without --name-only downloads both sides of each changed file into a temporary
  directory (removed afterwards) and runs `git diff --no-index` (or `diff -u`, or
  --diff-command); a diff tool's exit status 1 ("differences found") is not an error.
- delete/copy are single ModifyFile streams (one commit, atomic); both print nothing.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile

import click

from pachctl import pb, pfs_pretty as pp
from pachctl.cli import CliError, command, emit, encoder, get_app, paged, project_option, raw_options, timestamp_option
from pachctl.history import file_history, parse_history
from pachctl.pretty import TabWriter, color_enabled
from pachctl.refs import parse_file
from proto.pfs_v2 import pfs_pb2 as pfs


@command("inspect", "file", arity=(1, 1), metavar="<repo>@<branch-or-commit>:<path/in/pfs>",
         help="Return info about a file.")
@raw_options
@project_option
def inspect_file(args, raw, output, project):
    enc = encoder(raw, output)
    app = get_app()
    f = parse_file(args[0], app.project(project))
    fi = app.client().pfs.InspectFile(pfs.InspectFileRequest(file=pb.file(f)))
    if enc:
        emit(enc, fi)
    else:
        sys.stdout.write(pp.detailed_file(fi))


def _print_files(infos, enc, legacy: bool) -> None:
    if enc:
        for fi in infos:
            emit(enc, fi)
        return
    if legacy:
        tw = TabWriter(sys.stdout, pp.LEGACY_FILE_HEADER)
        for fi in infos:
            tw.write(pp.legacy_file_row(fi))
        tw.flush()
        return
    sys.stdout.write(pp.FILE_HEADER)
    for fi in infos:
        sys.stdout.write(pp.file_row(fi))


@command("list", "file", arity=(1, 1), metavar="<repo>@<branch-or-commit>[:<path/in/pfs>]",
         help="Return the files in a directory. --history N|all (Pachyderm 1.x) lists, for each file, "
              "the commits that changed it: COMMIT NAME TYPE COMMITTED SIZE.")
@click.option("--history", default="none", metavar="none|all|N",
              help="Show the N most recent versions of each file (all: every version; none: just list).")
@click.option("--legacy", is_flag=True, help="print the 2.0-2.7 table: NAME TYPE SIZE")
@raw_options
@timestamp_option
@project_option
def list_file(args, history, legacy, raw, output, full_timestamps, project):
    enc = encoder(raw, output)
    n = parse_history(history)
    app = get_app()
    f = parse_file(args[0], app.project(project))
    path = f.path or "/"
    c = app.client()
    if n == 0:
        _print_files(c.list_file(pfs.ListFileRequest(file=pb.file(f, path))), enc, legacy)
        return
    rows = file_history(c, pb.commit(f.commit), path, n)
    if enc:
        for _, fi in rows:
            emit(enc, fi)
        return
    tw = TabWriter(sys.stdout, pp.HISTORY_FILE_HEADER)
    for ci, fi in rows:
        committed = pp.dt(ci, "finished") or pp.dt(ci, "started")
        tw.write(pp.history_file_row(fi, ci.commit.id, committed, full_timestamps))
    tw.flush()


@command("glob", "file", arity=(1, 1), metavar='"<repo>@<branch-or-commit>:<pattern>"',
         help="Return files that match a glob pattern in a commit.")
@click.option("--legacy", is_flag=True, help="print the 2.0-2.7 table: NAME TYPE SIZE")
@raw_options
@timestamp_option
@project_option
def glob_file(args, legacy, raw, output, full_timestamps, project):
    enc = encoder(raw, output)
    app = get_app()
    f = parse_file(args[0], app.project(project))
    infos = app.client().pfs.GlobFile(pfs.GlobFileRequest(commit=pb.commit(f.commit), pattern=f.path or "/"))
    _print_files(infos, enc, legacy)


@command("diff", "file", arity=(1, 2),
         metavar="<new-repo>@<new-branch-or-commit>:<new-path> [<old-repo>@<old-branch-or-commit>:<old-path>]",
         help="Return a diff of two file trees (the old one defaults to the new commit's parent).")
@click.option("-s", "--shallow", is_flag=True, help="Don't descend into sub directories.")
@click.option("--name-only", is_flag=True, help="Show only the names of changed files.")
@click.option("--diff-command", default="", help="Use a program other than git to diff files.")
@click.option("--no-pager", is_flag=True, help="Don't pipe output into a pager (i.e. less).")
@click.option("--old-project", default=None, help="Project of the old file (default: --project).")
@timestamp_option
@project_option
def diff_file(args, shallow, name_only, diff_command, no_pager, old_project, full_timestamps, project):
    app = get_app()
    proj = app.project(project)
    new = parse_file(args[0], proj)
    req = pfs.DiffFileRequest(new_file=pb.file(new), shallow=shallow)
    if len(args) > 1:
        req.old_file.CopyFrom(pb.file(parse_file(args[1], old_project or proj)))
    c = app.client()
    diffs = list(c.pfs.DiffFile(req))
    with paged(no_pager) as out:
        if name_only:
            tw = TabWriter(out, pp.DIFF_NAME_HEADER)
            for d in diffs:
                if d.HasField("new_file"):
                    tw.write(pp.diff_name_row(True, d.new_file))
                if d.HasField("old_file"):
                    tw.write(pp.diff_name_row(False, d.old_file))
            tw.flush()
            return
        _content_diff(c, diffs, diff_command, out)


def _fetch(c, fi, tmp: str, side: str) -> str:
    """Download fi to <tmp>/<side>/<path>; returns the path relative to tmp."""
    rel = os.path.join(side, fi.file.path.lstrip("/"))
    dest = os.path.join(tmp, rel)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(dest, "wb") as f:
        for msg in c.pfs.GetFile(pfs.GetFileRequest(file=fi.file)):
            f.write(msg.value)
    return rel


def _diff_argv(diff_command: str) -> list[str]:
    if diff_command:
        return shlex.split(diff_command)
    if shutil.which("git"):
        color = "always" if color_enabled() else "never"
        return ["git", "-c", f"color.ui={color}", "--no-pager", "diff", "--no-index"]
    return ["diff", "-u"]


def _content_diff(c, diffs, diff_command: str, out) -> None:
    argv = _diff_argv(diff_command)
    with tempfile.TemporaryDirectory(prefix="pachctl-diff-") as tmp:
        for d in diffs:
            new = d.new_file if d.HasField("new_file") and d.new_file.file_type == pp.FILE else None
            old = d.old_file if d.HasField("old_file") and d.old_file.file_type == pp.FILE else None
            if new is None and old is None:
                continue
            new_path = _fetch(c, new, tmp, "new") if new else os.devnull
            old_path = _fetch(c, old, tmp, "old") if old else os.devnull
            try:
                proc = subprocess.run(argv + [old_path, new_path], capture_output=True, text=True, cwd=tmp)
            except OSError as e:
                raise CliError(f"could not run {argv[0]}: {e}") from None
            if proc.returncode not in (0, 1):
                raise CliError(proc.stderr.strip() or f"{argv[0]} exited with status {proc.returncode}")
            out.write(proc.stdout)


@command("delete", "file", arity=(1, 1), metavar="<repo>@<branch-or-commit>:<path/in/pfs>",
         help="Delete a file (or, with -r, a directory and everything under it).")
@click.option("-r", "--recursive", is_flag=True, help="Recursively delete the files in a directory.")
@project_option
def delete_file(args, recursive, project):
    app = get_app()
    f = parse_file(args[0], app.project(project))
    path = f.path or "/"
    if recursive and not path.endswith("/"):
        path += "/"

    def reqs():
        yield pfs.ModifyFileRequest(set_commit=pb.commit(f.commit))
        yield pfs.ModifyFileRequest(delete_file=pfs.DeleteFile(path=path))

    app.client().pfs.ModifyFile(reqs())


@command("copy", "file", arity=(2, 2),
         metavar="<src-repo>@<src-branch-or-commit>:<src-path> <dst-repo>@<dst-branch-or-commit>:<dst-path>",
         help="Copy files between pfs paths.")
@click.option("-a", "--append", is_flag=True, help="Append to the existing content of the file, if any.")
@click.option("--src-project", default=None, help="Project of the source (default: --project).")
@click.option("--dest-project", default=None, help="Project of the destination (default: --project).")
@project_option
def copy_file(args, append, src_project, dest_project, project):
    app = get_app()
    proj = app.project(project)
    src = parse_file(args[0], src_project or proj)
    dst = parse_file(args[1], dest_project or proj)

    def reqs():
        yield pfs.ModifyFileRequest(set_commit=pb.commit(dst.commit))
        yield pfs.ModifyFileRequest(copy_file=pfs.CopyFile(dst=dst.path or "/", src=pb.file(src), append=append))

    app.client().pfs.ModifyFile(reqs())
