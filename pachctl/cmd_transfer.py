"""`put file` and `get file`.

Invariants:
- `put file` checks that the repo exists, plans every source (pachctl.transfer.plan_put),
  then sends them all through one ModifyFile stream (local files as file:// URLs when pachd is
  on this machine; see pachctl.transfer); it prints nothing on success except a progress bar
  on a terminal.
- `get file` writes the raw bytes to stdout or `-o`; `-r` extracts GetFileTAR into the `-o`
  directory. A directory without `-r` is refused with Pachyderm's hint. With pachd on this
  machine and no progress bar, pachd writes the bytes into the output itself
  (pachctl.local_read); where it cannot, they are streamed. Either way `-o` is created only
  once the file is found, and an existing `-o` is untouched by a call that finds nothing.
"""
from __future__ import annotations

import sys

import click
import grpc

from pachctl import pb
from pachctl.cli import CliError, command, get_app, project_option
from pachctl.refs import parse_file
from pachctl.transfer import (Progress, TransferError, expand_dirs, extract_tar, local_upload_allowed, plan_put, put,
                              read_input_list, stdout_binary, want_progress, write_stream)
from proto.pfs_v2 import pfs_pb2 as pfs

PUT_HELP = """Put a file into the filesystem. Sources (-f, repeatable) are local files, directories
(with -r), URLs (http://, https://, s3://: pachd fetches them) or - for stdin (the default).

\b
Target paths:
  no path          the source's base name (its whole path with --full-path)
  one source       exactly the given path; a path ending in / is a directory to put it in
  several sources  the path is a directory prefix for each source's name
  -r directory     every file below it, under the target path
Without -a an existing file is overwritten; with -a the data is appended.
--untar puts each file inside .tar/.tar.gz/.tgz sources under the path.
"""


@command("put", "file", arity=(1, 1), metavar="<repo>@<branch-or-commit>[:<path/to/file>]", help=PUT_HELP)
@click.option("-f", "--file", "files", multiple=True, metavar="FILE|URL|-",
              help="The file, directory or URL to be put into PFS; - means stdin (default).")
@click.option("-i", "--input-file", default="", metavar="FILE|URL|-",
              help="Read the sources to put from this file (or URL, or - for stdin), one per line.")
@click.option("-r", "--recursive", is_flag=True, help="Recursively put the files in a directory.")
@click.option("-c", "--compress", is_flag=True, help="Compress data during upload.")
@click.option("-p", "--parallelism", default=10, type=int,
              help="Accepted for compatibility; everything goes through one stream.")
@click.option("-a", "--append", is_flag=True, help="Append to the existing content of the file, if any.")
@click.option("--progress/--no-progress", default=None,
              help="Print a progress bar (default: when stdout is a terminal and the data is large).")
@click.option("--full-path", is_flag=True, help="Use the source's whole path, not only its base name.")
@click.option("--untar", is_flag=True, help="Put each file inside .tar/.tar.gz/.tgz sources as a separate file.")
@project_option
def put_file(args, files, input_file, recursive, compress, parallelism, append, progress, full_path,
             untar, project):
    app = get_app()
    target = parse_file(args[0], app.project(project))
    stdin = getattr(sys.stdin, "buffer", sys.stdin)
    sources = list(files)
    if input_file:
        sources += read_input_list(input_file, stdin)
        if not sources:
            raise TransferError(f"no sources listed in {input_file}")
    items = plan_put(sources, target.path, recursive=recursive, full_path=full_path, untar=untar)
    if any(it.kind == "dir" for it in items) and want_progress(progress, sys.stdout, None):
        items = expand_dirs(items)  # a bar may be shown: its total needs every file's size
    c = app.client()
    c.pfs.InspectRepo(pfs.InspectRepoRequest(repo=pb.repo(target.commit.repo)))
    sized = all(it.kind in ("file", "tar") for it in items)
    total = sum(it.size for it in items) if sized else None
    bar = Progress(want_progress(progress, sys.stdout, total), total, "put file", sys.stdout)
    put(c, pb.commit(target.commit), items, append=append, stdin=stdin, progress=bar, compress=compress,
        local_files=local_upload_allowed(c, items, app.env))


def _get_local(c, file_msg, offset: int, output: str, env) -> bool:
    """`get file` through pachd writing into our output (pachctl.local_read); False: stream."""
    import os
    import stat

    from pachctl import local_read
    if env.get(local_read.LOCAL_READ_ENV, "1").lower() in ("0", "false", "no"):
        return False
    if not output:
        out = stdout_binary()
        try:
            out.flush()
            fd = out.fileno()
        except (AttributeError, OSError, ValueError):
            return False  # not a real descriptor (tests capturing output)
        return local_read.allowed(c, fd, env) and local_read.get_into(c, file_msg, offset, fd)
    try:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        created = True
    except FileExistsError:
        try:
            fd = os.open(output, os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            return False  # the streamed path reports it
        created = False
    except OSError:
        return False
    done = False
    try:
        if local_read.allowed(c, fd, env) and local_read.get_into(c, file_msg, offset, fd):
            if stat.S_ISREG(os.fstat(fd).st_mode):  # an older, longer file: cut to what was written
                os.ftruncate(fd, os.lseek(fd, 0, os.SEEK_CUR))
            done = True
        return done
    finally:
        wrote = os.lseek(fd, 0, os.SEEK_CUR)
        os.close(fd)
        if created and not done and wrote == 0:
            os.unlink(output)  # nothing found (or the fallback creates it): leave no empty file


@command("get", "file", arity=(1, 1), metavar="<repo>@<branch-or-commit>:<path/in/pfs>",
         help="Return the contents of a file (to stdout, or to -o); -r gets a directory into the -o directory.")
@click.option("-o", "--output", "output", default="", metavar="PATH",
              help="The path where data will be downloaded.")
@click.option("-r", "--recursive", is_flag=True, help="Download multiple files, or recursively download a directory.")
@click.option("--offset", default=0, type=int, help="The number of bytes in the file to skip ahead when reading.")
@click.option("--retry", is_flag=True, help="Accepted for compatibility.")
@click.option("--progress/--no-progress", default=None,
              help="Print a progress bar (default: when the terminal is free and the data is large).")
@project_option
def get_file(args, output, recursive, offset, retry, progress, project):
    app = get_app()
    f = parse_file(args[0], app.project(project))
    if recursive and not output:
        raise CliError("an output path needs to be specified when using the --recursive flag")
    if output and "://" in output:
        raise CliError("get file -o to a URL is not supported; write to a local path and upload it")
    c = app.client()
    file_msg = pb.file(f)
    bar_stream = sys.stdout if output else sys.stderr
    total = None
    if want_progress(progress, bar_stream, None):
        total = c.pfs.InspectFile(pfs.InspectFileRequest(file=file_msg)).size_bytes
    bar = Progress(want_progress(progress, bar_stream, total), total, "get file", bar_stream)
    if recursive:
        extract_tar(c.pfs.GetFileTAR(pfs.GetFileRequest(file=file_msg), timeout=app.rpc_timeout),
                    f.path, output, bar)
        return
    try:
        if not bar.enabled and _get_local(c, file_msg, offset, output, app.env):
            return
        write_stream(c.pfs.GetFile(pfs.GetFileRequest(file=file_msg, offset=offset)), output or None,
                     stdout_binary(), bar)
    except grpc.RpcError as e:
        if "GetFileTAR" in (e.details() or ""):
            raise CliError(f"couldn't download {f.path} from {f.commit}: Try again with the -r flag") from None
        raise
