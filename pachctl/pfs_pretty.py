"""Tables and detail blocks for pfs objects (pfs_v2 messages), as pachctl 2.x prints them.

Invariants:
- Row functions return one tab-separated line ending in `\\t\\n` when Pachyderm's header ends
  in a tab (padded last column) and in `\\n` otherwise; they go through `pretty.TabWriter`.
  `list file` / `glob file` rows are the exception: raw tabs, no tabwriter (Pachyderm ≥ 2.8).
- Headers are the 2.11 ones; the `LEGACY_*` headers are the 1.x / 2.0–2.7 layouts that
  `--legacy` and `list file --history` print (seed 003).
- Times: relative (`3 minutes ago`) unless `full` (RFC3339 UTC); a missing timestamp is `-`.
- Sizes: exact when the message carries `details`, else `≤ <upper bound>`.
- Detail blocks end with a newline. Nothing here talks to a server.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

from pachctl import pretty

REPO_HEADER = "PROJECT\tNAME\tCREATED\tSIZE (MASTER)\tDESCRIPTION\t\n"
COMMIT_HEADER = "PROJECT\tREPO\tCOMMIT\tFINISHED\tSIZE\tORIGIN\tCREATOR\tDESCRIPTION\t\n"
LEGACY_COMMIT_HEADER = "REPO\tBRANCH\tCOMMIT\tPARENT\tSTARTED\tDURATION\tSIZE\t\n"
COMMIT_SET_HEADER = "ID\tSUBCOMMITS\tPROGRESS\tCREATED\tMODIFIED\n"
BRANCH_HEADER = "BRANCH\tHEAD\tTRIGGER\tCREATOR\tCREATED\t\n"
PROJECT_HEADER = "ACTIVE\tPROJECT\tCREATED\tDESCRIPTION\n"
FILE_HEADER = "SIZE   \tNAME\n"
LEGACY_FILE_HEADER = "NAME\tTYPE\tSIZE\t\n"
HISTORY_FILE_HEADER = "COMMIT\tNAME\tTYPE\tCOMMITTED\tSIZE\t\n"
DIFF_NAME_HEADER = "OP\tSIZE   \tNAME\n"
ORIGINS = {0: "ORIGIN_KIND_UNKNOWN", 1: "USER", 2: "AUTO", 3: "FSCK"}


# ---- small helpers ---------------------------------------------------------------------------
def dt(msg, field: str) -> Optional[datetime]:
    """A Timestamp field as an aware UTC datetime, None when unset."""
    if not msg.HasField(field):
        return None
    ts = getattr(msg, field)
    return datetime.fromtimestamp(ts.seconds, timezone.utc).replace(microsecond=ts.nanos // 1000)


def when(msg, field: str, full: bool) -> str:
    return pretty.when(dt(msg, field), full)


def repo_name(repo) -> str:
    """REPO/NAME cell: `name`, or `name.type` for non-user repos."""
    return repo.name if repo.type in ("", "user") else f"{repo.name}.{repo.type}"


def repo_string(repo) -> str:
    """Go's Repo.String(): `project/name[.type]`."""
    return f"{repo.project.name or 'default'}/{repo_name(repo)}"


def commit_repo(commit):
    """A Commit's repo, from `repo` or (older clients) `branch.repo`."""
    return commit.repo if commit.HasField("repo") and commit.repo.name else commit.branch.repo


def size_cell(info) -> str:
    if info.HasField("details"):
        return pretty.size(info.details.size_bytes)
    return pretty.size_upper_bound(info.size_bytes_upper_bound)


def commafy(items: list[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# ---- projects --------------------------------------------------------------------------------
def project_row(pi, current: str) -> str:
    cells = ["*" if pi.project.name == current else " ", pi.project.name]
    if pi.HasField("auth_info"):
        cells.append("[" + " ".join(pi.auth_info.roles) + "]")
    cells.append(pretty.ago(dt(pi, "created_at")))
    cells.append(pi.description or "-")
    return "\t".join(cells) + "\n"


def detailed_project(pi) -> str:
    lines = [f"Name: {pi.project.name}"]
    if pi.description:
        lines.append(f"Description: {pi.description}")
    if pi.HasField("created_at"):
        lines.append(f"Created at: {pretty.timestamp(dt(pi, 'created_at'))}")
    if pi.HasField("auth_info"):
        lines.append(f"Roles: {commafy(list(pi.auth_info.roles))}")
    return "\n".join(lines) + "\n"


# ---- repos -----------------------------------------------------------------------------------
def repo_row(ri, full: bool) -> str:
    cells = [ri.repo.project.name or "default", repo_name(ri.repo), when(ri, "created", full), size_cell(ri)]
    if ri.HasField("auth_info"):
        cells.append("[" + " ".join(ri.auth_info.roles) + "]")
    cells.append(ri.description)
    return "\t".join(cells) + "\t\n"


def detailed_repo(ri, full: bool) -> str:
    lines = [f"Name: {repo_name(ri.repo)}"]
    if ri.description:
        lines.append(f"Description: {ri.description}")
    lines.append(f"Created: {when(ri, 'created', full)}")
    if ri.HasField("details"):
        lines.append(f"Size of HEAD on master: {pretty.size(ri.details.size_bytes)}")
    if ri.HasField("auth_info"):
        lines.append(f"Roles: {commafy(list(ri.auth_info.roles))}")
    return "\n".join(lines) + "\n"


# ---- branches --------------------------------------------------------------------------------
def trigger_text(t) -> str:
    if t.cron_spec:
        return f"{t.branch} on Cron({t.cron_spec})"
    conds = []
    if t.rate_limit_spec:
        conds.append(f"Rate Limit({t.rate_limit_spec})")
    if t.size:
        conds.append(f"Size({t.size})")
    if t.commits:
        conds.append(f"Commits({t.commits})")
    return f"{t.branch} on " + (" and " if t.all else " or ").join(conds)


def branch_row(bi) -> str:
    created = dt(bi, "created_at")
    cells = [bi.branch.name,
             bi.head.id if bi.HasField("head") and bi.head.id else "-",
             trigger_text(bi.trigger) if bi.HasField("trigger") else "-",
             bi.created_by or "-",
             pretty.local_timestamp(created) if created is not None else "-"]
    return "\t".join(cells) + "\t\n"


def detailed_branch(bi) -> str:
    repo = repo_name(bi.branch.repo)
    out = f"Name: {repo}@{bi.branch.name}"
    if bi.HasField("head") and bi.head.id:
        out += f"\nHead Commit: {repo_name(commit_repo(bi.head))}@{bi.head.id} "
    if bi.provenance:
        out += "\nProvenance: " + "".join(f" {repo_name(b.repo)}@{b.name} " for b in bi.provenance) + " "
    if bi.HasField("trigger"):
        out += f"\nTrigger: {trigger_text(bi.trigger)} "
    out += "\n"
    out += (f"Created by: {bi.created_by}" if bi.created_by else "") + "\n"
    created = dt(bi, "created_at")
    out += (f"Created at: {pretty.timestamp(created)}" if created is not None else "") + "\n"
    return out


# ---- commits ---------------------------------------------------------------------------------
def commit_row(ci, full: bool) -> str:
    repo = commit_repo(ci.commit)
    cells = [repo.project.name or "default", repo_name(repo), ci.commit.id,
             when(ci, "finished", full) if ci.HasField("finished") else "-",
             size_cell(ci), ORIGINS.get(ci.origin.kind, str(ci.origin.kind)),
             ci.created_by or "-", ci.description]
    return "\t".join(cells) + "\t\n"


def legacy_commit_row(ci, full: bool) -> str:
    """Pachyderm 1.x `list commit` (seed 003): REPO BRANCH COMMIT PARENT STARTED DURATION SIZE."""
    repo = commit_repo(ci.commit)
    parent = ci.parent_commit.id if ci.HasField("parent_commit") and ci.parent_commit.id else "<none>"
    started, finished = dt(ci, "started"), dt(ci, "finished")
    cells = [repo_name(repo), ci.commit.branch.name, ci.commit.id, parent, pretty.when(started, full)]
    if finished is not None and started is not None:
        cells += [pretty.time_difference(started, finished), size_cell(ci).replace("\u2264 ", "")]
    else:
        cells += ["-", "-"]
    return "\t".join(cells) + "\t\n"


def detailed_commit(ci, full: bool) -> str:
    lines = [f"Commit: {repo_name(commit_repo(ci.commit))}@{ci.commit.id}",
             f"Description: {ci.description}"]
    if ci.HasField("parent_commit") and ci.parent_commit.id:
        lines.append(f"Parent: {ci.parent_commit.id}")
    lines.append(f"Started: {when(ci, 'started', full)}")
    if ci.HasField("finished"):
        lines.append(f"Finished: {when(ci, 'finished', full)}")
    if ci.HasField("details"):
        lines.append(f"Size: {pretty.size(ci.details.size_bytes)}")
    return "\n".join(lines) + "\n"


def commit_set_row(csi, full: bool) -> str:
    success = failure = 0
    created = modified = None
    for ci in csi.commits:
        if ci.HasField("finished"):
            if ci.error:
                failure += 1
            else:
                success += 1
        started = dt(ci, "started")
        if started is not None:
            created = started if created is None or started < created else created
            modified = started if modified is None or started > modified else modified
    total = len(csi.commits)
    cells = [csi.commit_set.id, str(total), pretty.progress_bar(success, failure, total),
             pretty.when(created, full) if created is not None else "-",
             pretty.when(modified, full) if modified is not None else "-"]
    return "\t".join(cells) + "\n"


# ---- files -----------------------------------------------------------------------------------
FILE, DIR = 1, 2


def file_type(fi) -> str:
    return "file" if fi.file_type == FILE else "dir"


def file_row(fi) -> str:
    return f"{pretty.size(fi.size_bytes)}\t{fi.file.path}\n"


def legacy_file_row(fi) -> str:
    return f"{fi.file.path}\t{file_type(fi)}\t{pretty.size(fi.size_bytes)}\t\n"


def history_file_row(fi, commit_id: str, committed: Optional[datetime], full: bool) -> str:
    """1.x `list file --history` row: COMMIT NAME TYPE COMMITTED SIZE."""
    when_cell = pretty.when(committed, full) if committed is not None else "-"
    path = fi.file.path.rstrip("/") or "/"  # 1.x printed directories without the slash
    return f"{commit_id}\t{path}\t{file_type(fi)}\t{when_cell}\t{pretty.size(fi.size_bytes)}\t\n"


def detailed_file(fi) -> str:
    return (f"Path: {fi.file.path}\nDatum: {fi.file.datum}\nType: {file_type(fi)}\n"
            f"Size: {pretty.size(fi.size_bytes)}\n")


def diff_name_row(added: bool, fi) -> str:
    op = pretty.colorize("+", "green") if added else pretty.colorize("-", "red")
    return f"{op}\t{pretty.size(fi.size_bytes)}\t{fi.file.path}\n"
