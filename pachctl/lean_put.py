"""`pachctl put file` of one local file to a pachd on this machine, without loading click,
grpc or protobuf.

Starting the full CLI (interpreter, grpc, protobuf, click) costs about as long as pachd
takes to store a 64 MiB file, so for mid-sized files the start was most of the put. This
path needs only the standard library, pachctl.config, pachctl.refs and pachctl.put_plan: it
connects to pachd's local put socket (the abstract unix socket `pachd-local-put-<port>`,
served by pachd.local_put), sends one JSON line describing the put with the open source file
attached (SCM_RIGHTS), and reads one JSON line back. pachd makes the normal InspectRepo and
ModifyFile calls on its own gRPC port with this client's auth token and transaction, so the
checks, errors and result are those of the normal path; the bytes come from our descriptor.

Invariants:
- Covered: `[--no-color] put file <repo>@<ref>[:<path>] -f <one local regular file>` with
  any of -a, -c, -p N, --project P, --full-path, --no-progress; pachd at a `grpc://` loopback
  address (not TLS, not a unix socket); `PACHCTL_LOCAL_UPLOAD` not 0/false/no; no progress bar
  due (stdout not a terminal, a file under 1 MiB, or --no-progress).
- Anything else, and anything that goes wrong before the request is sent (bad arguments, a
  missing file, no such socket, a socket whose process does not run as the user that owns
  pachd's TCP port), returns None having done nothing and printed nothing: the full CLI then
  runs the command and prints what it prints. pachd may also answer `fallback` (nothing done).
- Once the request is sent, the outcome is pachd's: success prints nothing (like the full
  CLI without a bar), an error prints the same text the full CLI prints for that status
  (pachctl.rpc_text) and exits 1; Ctrl-C closes the connection, which cancels the put (exit
  130); a connection lost without a reply is reported, not retried (with -a a retry could
  append twice).
"""
from __future__ import annotations

import array
import json
import os
import socket
import stat
import struct
import sys
from typing import Mapping, Optional, TextIO

SOCKET_PREFIX = "pachd-local-put-"  # pachd.local_put.SOCKET_PREFIX
PROTOCOL_VERSION = 1
LOCAL_UPLOAD_ENV = "PACHCTL_LOCAL_UPLOAD"  # pachctl.transfer.LOCAL_UPLOAD_ENV
_FLAGS = {"-a": "append", "--append": "append", "-c": "compress", "--compress": "compress",
          "--full-path": "full_path", "--progress": "progress", "--no-progress": "no_progress"}
_VALUED = {"-f": "file", "--file": "file", "--project": "project", "-p": "parallelism", "--parallelism": "parallelism"}


def parse_args(args: list[str]) -> Optional[dict]:
    """The options of a `put file` this path covers, or None."""
    i = 0
    while i < len(args) and args[i] == "--no-color":
        i += 1
    if args[i:i + 2] not in (["put", "file"], ["put", "files"]):
        return None
    rest = args[i + 2:]
    opts: dict = {"file": [], "positional": []}
    j = 0
    while j < len(rest):
        a = rest[j]
        if a in _FLAGS:
            opts[_FLAGS[a]] = True
        elif a in _VALUED or (a.startswith("--") and a.split("=", 1)[0] in _VALUED):
            if "=" in a:
                name, value = a.split("=", 1)
            elif j + 1 < len(rest):
                name, value = a, rest[j + 1]
                j += 1
            else:
                return None
            key = _VALUED[name]
            if key == "file":
                opts["file"].append(value)
            else:
                opts[key] = value
        elif a.startswith("-"):
            return None  # -r, -i, --untar, -h, --, -, an unknown flag: the full CLI
        else:
            opts["positional"].append(a)
        j += 1
    if len(opts["positional"]) != 1 or len(opts["file"]) != 1:
        return None
    if "parallelism" in opts:
        try:
            int(opts["parallelism"])
        except ValueError:
            return None
    if opts.get("progress") and opts.get("no_progress"):
        return None  # the last one wins in click: leave the order to it
    return opts


def _loopback(host: str) -> bool:
    return host in ("localhost", "::1", "ip6-localhost") or host.startswith("127.")  # pachctl.transfer.is_loopback


def _listener_uids(port: int) -> set[int]:
    """Users owning a TCP socket listening on `port` (from /proc/net/tcp and tcp6)."""
    uids, want = set(), f"{port:04X}"
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f, None)
                for line in f:
                    parts = line.split()
                    if len(parts) > 7 and parts[3] == "0A" and parts[1].rsplit(":", 1)[-1] == want:
                        uids.add(int(parts[7]))
        except (OSError, ValueError):
            continue
    return uids


def _connect(port: int) -> Optional[socket.socket]:
    """pachd's local put socket, if it is there and run by pachd's user (our own user, or
    the one owning the TCP port); else None."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        s.connect("\0" + SOCKET_PREFIX + str(port))
        creds = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        if uid != os.geteuid() and uid not in _listener_uids(port):
            s.close()
            return None
        return s
    except OSError:
        s.close()
        return None


def _send(conn: socket.socket, request: dict, fd: int) -> None:
    data = json.dumps(request).encode() + b"\n"
    sent = conn.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
    if sent < len(data):
        conn.sendall(data[sent:])


def _read_reply(conn: socket.socket) -> Optional[dict]:
    data = b""
    while not data.endswith(b"\n"):
        more = conn.recv(4096)
        if not more:
            return None
        data += more
    try:
        reply = json.loads(data)
    except ValueError:
        return None
    return reply if isinstance(reply, dict) else None


def _err(msg: str, stdout: TextIO, stderr: TextIO) -> None:
    """pachctl.cli._err: the message alone on stderr."""
    try:
        stdout.flush()
    except (OSError, ValueError):
        pass
    stderr.write(msg.rstrip("\n") + "\n")
    stderr.flush()


def run(args: list[str], env: Optional[Mapping[str, str]] = None, stdout: Optional[TextIO] = None,
        stderr: Optional[TextIO] = None) -> Optional[int]:
    """Run `pachctl <args>` through this path: its exit status, or None when the path does
    not cover it (nothing done, nothing printed: run the full CLI)."""
    env = os.environ if env is None else env
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    opts = parse_args(args)
    if opts is None or env.get(LOCAL_UPLOAD_ENV, "1") in ("0", "false", "no"):
        return None
    if not (hasattr(socket, "AF_UNIX") and hasattr(socket, "SCM_RIGHTS") and hasattr(socket, "SO_PEERCRED")):
        return None
    try:  # the full CLI's steps, in its order; any failure is left to it to report
        from pachctl.config import Config
        from pachctl.put_plan import is_url, plan_put, want_progress
        from pachctl.refs import parse_file
        source = opts["file"][0]
        if source == "-" or is_url(source):
            return None
        cfg = Config.load(env=env)
        target = parse_file(opts["positional"][0], opts.get("project") or cfg.project(env))
        items = plan_put([source], target.path, full_path=bool(opts.get("full_path")))
        progress = True if opts.get("progress") else (False if opts.get("no_progress") else None)
        if len(items) != 1 or items[0].kind != "file" or want_progress(progress, stdout, items[0].size):
            return None
        address = cfg.pachd_address(env)
        _, ctx = cfg.active_context(env, error_on_no_active=False)
    except Exception:  # noqa: BLE001 - the full CLI reports it in its own words
        return None
    if address.secured or address.unix_socket or not _loopback(address.host):
        return None
    ctx = ctx or {}
    metadata = [[k, v] for k, v in (("authn-token", ctx.get("session_token", "")),
                                    ("pach-transaction", ctx.get("active_transaction", ""))) if v]
    repo = target.commit.repo
    repo_msg = {"name": repo.name, "type": repo.type or "user", "project": {"name": repo.project}}
    commit_msg: dict = {"repo": repo_msg, "id": target.commit.id}
    if target.commit.branch:
        commit_msg["branch"] = {"repo": repo_msg, "name": target.commit.branch}
    request = {"v": PROTOCOL_VERSION, "metadata": metadata, "repo": repo_msg, "commit": commit_msg,
               "path": items[0].dest, "append": bool(opts.get("append"))}

    try:
        fd = os.open(items[0].src, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)  # a FIFO must not block us
    except OSError:
        return None
    conn = None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        conn = _connect(address.port)
        if conn is None:
            return None
        try:
            _send(conn, request, fd)
        except OSError:
            return None  # pachd acts only on a whole request
        os.close(fd)
        fd = -1
        try:
            reply = _read_reply(conn)
        except KeyboardInterrupt:
            return 130  # closing the connection (below) cancels the put
        except OSError:
            reply = None
    finally:
        if fd >= 0:
            os.close(fd)
        if conn is not None:
            conn.close()
    if reply is not None and "fallback" in reply:
        return None
    if reply is not None and reply.get("ok") is True:
        return 0
    if reply is None:
        code, details = "UNAVAILABLE", "the connection to pachd broke before it answered"
    else:
        code, details = str(reply.get("code") or "UNKNOWN"), str(reply.get("details") or "")
    from pachctl.rpc_text import describe_status
    text = describe_status(code, details, address.qualified)
    if text.startswith("could not connect to pachd"):
        from pachctl.daemon import not_started_hint
        try:
            text += not_started_hint(cfg, env)
        except Exception:  # noqa: BLE001 - the hint must never hide the error
            pass
    _err(text, stdout, stderr)
    return 1
