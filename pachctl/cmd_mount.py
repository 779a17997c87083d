"""`mount`, `unmount` and `mount-server`: repos as a local file system (see pachctl.mount).

Invariants:
- `mount` blocks until the file system is unmounted (Ctrl-C, `pachctl unmount`,
  `fusermount -u`), then commits each written repo once; its exit status is 1 if a commit
  failed (the staged changes are kept and their place is printed).
- Every problem found before mounting is one line on stderr, status 1, nothing mounted.
- `unmount` waits for the mount process to finish committing and prints what it committed.
- `mount --recover` commits what stopped mounts left staged, each journal at most once
  (pachctl.mount.recover); it needs no FUSE and mounts nothing.
"""
from __future__ import annotations

import sys

import click

from pachctl.cli import CliError, command, confirm, get_app

NO_PYFUSE3 = ("pachctl mount needs pyfuse3, which is not installed: apt-get install gcc pkg-config "
              "libfuse3-dev fuse3, then pip install 'pachyderm-py[mount]' (or .venv/bin/pip install -e '.[mount]')")


def _need_pyfuse3() -> None:
    try:
        import pyfuse3  # noqa: F401
    except ImportError:
        raise CliError(NO_PYFUSE3) from None


@command(None, "mount", arity=(0, 1), metavar="<path/to/mount/point>",
         help="Mount pfs locally. This command blocks until the file system is unmounted "
              "(Ctrl-C, `pachctl unmount <path>` or `fusermount -u <path>`).\n\n"
              "Each repo is a directory under the mount point. Without --repos, every repo of the "
              "project at master. Read-only unless --write (no --repos) or +w on a repo. Files "
              "written are committed when the mount ends: one commit per written repo.\n\n"
              "With --recover, mount nothing: commit the changes that mounts which stopped without "
              "committing (killed, crashed, or pachd unreachable) left staged, one commit per repo; "
              "with a mount point, only those of mounts made there.")
@click.option("-w", "--write", is_flag=True,
              help="Allow writing to pfs through the mount (every repo; pipeline outputs stay read-only).")
@click.option("-d", "--debug", is_flag=True, help="Turn on FUSE debug output (every file system request).")
@click.option("-r", "--repos", multiple=True, metavar="repo[@branch[=commit]][+w]",
              help="Repo to mount, with an optional branch or commit (default master) and +w to make it "
                   "writable (+r: read-only). Repeat for several repos.")
@click.option("--allow-other", is_flag=True,
              help="Let other users see the mount (needs user_allow_other in /etc/fuse.conf).")
@click.option("--project", default=None, metavar="PROJECT",
              help="Project of the repos (default: the context's project).")
@click.option("--recover", is_flag=True,
              help="Commit the staged changes left by mounts that stopped without committing them.")
def mount(args, write, debug, repos, allow_other, project, recover):
    if recover:
        if write or repos or debug or allow_other:
            raise CliError("--recover mounts nothing: it takes no --write, --repos, --debug or --allow-other")
        _recover(args[0] if args else None)
        return
    if not args:
        raise CliError("expected 1 arguments, got 0")
    _need_pyfuse3()
    from pachctl.mount.session import Session, check_fuse, check_mountpoint
    from pachctl.mount.views import MountError, resolve_views

    app = get_app()
    try:
        check_fuse()
        check_mountpoint(args[0])
        if write and repos:
            raise MountError("--write applies when no --repos are given; mark repos writable with +w "
                             "(e.g. -r images@master+w)")
        client = app.client()
        views = resolve_views(client, app.project(project), repos, write_all=write)
        session = Session(client, views, args[0], allow_other=allow_other, debug=debug)
        code = session.run(on_ready=_ready)
    except MountError as e:
        raise CliError(str(e)) from None
    if code:
        sys.exit(code)


def _recover(mountpoint) -> None:
    from pachctl.mount.recover import recover

    def say(msg: str) -> None:
        sys.stderr.write(msg + "\n")
        sys.stderr.flush()
    out = recover(get_app().client(), mountpoint, say=say)
    for session in out.busy:
        say(f"left alone: {session} belongs to a mount that is still running (unmount it to commit)")
    if out.errors:
        raise CliError("\n".join(out.errors))
    if not out.sessions and not out.busy:
        say("no staged changes left by a stopped mount" + (f" at {mountpoint}" if mountpoint else ""))


async def _ready(session) -> None:
    views = ", ".join(v.describe() for v in session.views) or "no repos"
    session.say(f"mounted {views} at {session.mountpoint}; unmount with Ctrl-C or "
                f"`pachctl unmount {session.mountpoint_arg}`")


@command(None, "unmount", arity=(0, 1), metavar="<path/to/mount/point>",
         help="Unmount a pfs mount (the mount process commits what was written, then exits); "
              "--all unmounts every pfs mount made by this user's pachctl. Also clears a mount "
              "whose process died.")
@click.option("-a", "--all", "all_", is_flag=True, help="Unmount all pfs mounts.")
def unmount(args, all_):
    from pachctl.mount import unmount as um

    if not args and not all_:
        raise CliError("nothing to unmount specify a mounted filesystem or --all")
    if all_:
        found = um.recorded_mounts()
        if not found:
            sys.stdout.write("No mounts found.\n")
            return
        sys.stdout.write("This will unmount the following filesystems:\n")
        for mp in found:
            sys.stdout.write(f"{mp}\n")
        sys.stdout.flush()
        if not confirm():
            raise CliError("Aborted!")
        targets = found
    else:
        targets = [args[0]]
    failed = um.unmount_all_of(targets, sys.stderr)
    if failed:
        raise CliError("\n".join(failed))


@command(None, "mount-server", arity=(0, 0),
         help="Start a mount server: an HTTP + JSON API (Pachyderm's, as used by jupyterlab-pachyderm) "
              "that mounts repos, branches, commits and datums under --mount-dir on request.")
@click.option("--mount-dir", default="/pfs", show_default=True, help="Where repos are mounted.")
@click.option("--sock-path", default="", help="Serve on this unix socket instead of a TCP port.")
@click.option("--port", default=9002, show_default=True, type=int, help="TCP port (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--allow-other/--no-allow-other", default=False,
              help="Let other users see the mounts (needs user_allow_other in /etc/fuse.conf).")
def mount_server(mount_dir, sock_path, port, host, allow_other):
    _need_pyfuse3()
    from pachctl.mount.server import serve
    from pachctl.mount.views import MountError

    app = get_app()
    try:
        code = serve(app, mount_dir, sock_path=sock_path, port=port, host=host, allow_other=allow_other)
    except MountError as e:
        raise CliError(str(e)) from None
    if code:
        sys.exit(code)
