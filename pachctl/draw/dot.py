"""DOT text for the pipeline DAG and the commit lineage, and rendering it with graphviz.

Style (Knitfab's `knit plan graph` / `knit data lineage`, seed 001):
- `digraph G { node [shape=record fontsize=10] edge [fontsize=10] ... }`, nodes first (graph
  insertion order), then edges (source insertion order, then successor order): same graph,
  same text, byte for byte.
- Pipeline DAG: repos are green cylinders (`#1c9930`), cron inputs light-green `cds` shapes,
  pipelines HTML tables with a goldenrod `Pipeline` header (`#DAA520`), the name, the pipeline
  state and the last job state (green success, red failure/killed/unrunnable). A pipeline is
  also its output repo, so no separate node is drawn for that. Edges carry the globs of the
  inputs they stand for (`name: glob` when an input is renamed, `(union)` etc. for the
  innermost combinator), one line per input.
- Lineage: DATA tables with a green `Data` header and `repo@branch` (light-green background on
  the start commit; `project/` prefixed only outside the start's project), then id, size and finish time (or `open`), and the error in red; RUN
  tables with an orange `Run` header (`#FFA500`), the coloured job state, the job id, the
  pipeline, and processed/skipped/failed/total counts.
- Every string reaching DOT is escaped: ids and plain labels as DOT strings, HTML labels with
  html.escape.
`render_image` shells out to graphviz `dot`. Without it, SVG is drawn by pachctl.draw.svg (pure
Python) and any other format raises GraphvizNotFound naming the apt package `graphviz`.
"""
from __future__ import annotations

import html
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import networkx as nx

from pachctl.draw.dag import short_state
from pachctl.pretty import local_timestamp
from pachctl.pretty import size as fmt_size

_HEADER = "digraph G {\n\tnode [shape=record fontsize=10]\n\tedge [fontsize=10]\n\n"
GREEN, GOLD, GOLD_LIGHT, ORANGE, DATA_LIGHT = "#1c9930", "#DAA520", "#EDD9B4", "#FFA500", "#d4ecc6"
_OK = {"JOB_SUCCESS"}
_BAD = {"JOB_FAILURE", "JOB_KILLED", "JOB_UNRUNNABLE", "PIPELINE_FAILURE", "PIPELINE_CRASHING"}


def quote(s: Any) -> str:
    """A DOT double-quoted string."""
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _h(s: Any) -> str:
    return html.escape(str(s), quote=True)


def _state_html(state: Any) -> str:
    name = str(state or "").upper()
    text = _h(short_state(name))
    if name in _OK:
        return f'<FONT COLOR="#007700"><B>{text}</B></FONT>'
    if name in _BAD:
        return f'<FONT COLOR="red"><B>{text}</B></FONT>'
    return f"<B>{text}</B>"


def _node(key: Any, attrs: str) -> str:
    return f"\t{quote(key)}[{attrs}];\n"


def _edges(graph: nx.DiGraph, label_of) -> str:
    out = []
    for u, v, data in graph.edges(data=True):
        label = label_of(data)
        extra = f" [label={quote(label)}]" if label else ""
        out.append(f"\t{quote(u)} -> {quote(v)}{extra};\n")
    return "".join(out)


# ---- pipeline DAG ------------------------------------------------------------------------
def _input_label(info: dict) -> str:
    if info.get("kind") == "cron":
        text = info.get("spec", "")
    else:
        text = info.get("glob", "")
        if info.get("name") and info.get("name") != info.get("repo"):
            text = f"{info['name']}: {text}"
        for key in ("join_on", "group_by"):
            if info.get(key):
                text += f" {key}={info[key]}"
    if info.get("via"):
        text += f" ({info['via'][-1]})"
    return text


def render_dot(graph: nx.DiGraph, *, highlight: str | None = None) -> str:
    """DOT for a `build_pipeline_graph` graph; `highlight` marks one pipeline (Knitfab's emphasis)."""
    nodes = []
    for key, a in graph.nodes(data=True):
        kind = a.get("kind", "repo")
        if kind == "pipeline":
            bg = GOLD_LIGHT if key == highlight else "#FFFFFF"
            pstate = _h(short_state(a.get("state"))) if a.get("state") else "-"
            label = (f'<<TABLE CELLSPACING="0"><TR><TD BGCOLOR="{GOLD}"><FONT COLOR="#FFFFFF">'
                     f'<B>Pipeline</B></FONT></TD><TD BGCOLOR="{bg}"><B>{_h(a.get("label", key))}</B></TD></TR>'
                     f'<TR><TD COLSPAN="2"><FONT POINT-SIZE="8">{pstate} | last job: '
                     f'{_state_html(a.get("last_job_state"))}</FONT></TD></TR></TABLE>>')
            nodes.append(_node(key, f'shape=none color="{GOLD}" label={label}'))
        elif kind == "cron":
            label = f"cron {a.get('label', key)}\n{a.get('spec', '')}".rstrip()
            nodes.append(_node(key, f'shape=cds style=filled fillcolor="{DATA_LIGHT}" '
                                    f'color="{GREEN}" label={quote(label)}'))
        else:
            style = f' style=filled fillcolor="{DATA_LIGHT}"' if key == highlight else ""
            nodes.append(_node(key, f'shape=cylinder color="{GREEN}"{style} label={quote(a.get("label", key))}'))
    edges = _edges(graph, lambda d: "\n".join(_input_label(i) for i in d.get("inputs", ())))
    return _HEADER + "".join(nodes) + "\n" + edges + "}\n"


# ---- lineage -----------------------------------------------------------------------------
def _short(cid: Any, n: int = 8) -> str:
    return str(cid or "")[:n]


def _time(ts: Any) -> str:
    if ts is None or ts == "":
        return ""
    if isinstance(ts, (int, float)):
        ts = datetime.fromtimestamp(ts, UTC)
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        return local_timestamp(ts)
    return str(ts)


def _data_label(a: dict, home: str) -> str:
    name = f"{a['repo']}@{a.get('branch') or _short(a['id'])}"
    if a.get("project", home) != home:
        name = f"{a['project']}/{name}"
    bg = DATA_LIGHT if a.get("start") else "#FFFFFF"
    if a.get("missing"):
        facts = "(not found)"
    else:
        when = _time(a.get("finished")) or "open"
        size = fmt_size(a["size"]) if a.get("size") is not None else "-"
        facts = " | ".join(_h(x) for x in (f"id: {_short(a['id'])}", size, when))
        if a.get("origin"):
            facts += f" | {_h(a['origin'].lower())}"
    rows = (f'<TR><TD BGCOLOR="{GREEN}"><FONT COLOR="#FFFFFF"><B>Data</B></FONT></TD>'
            f'<TD BGCOLOR="{bg}">{_h(name)}</TD></TR>'
            f'<TR><TD COLSPAN="2"><FONT POINT-SIZE="8">{facts}</FONT></TD></TR>')
    if a.get("error"):
        rows += f'<TR><TD COLSPAN="2"><FONT COLOR="red">error: {_h(a["error"])}</FONT></TD></TR>'
    return f'<<TABLE CELLSPACING="0">{rows}</TABLE>>'


def _run_label(a: dict) -> str:
    counts = " | ".join(f"{k} {a.get('data_' + k) or 0}" for k in ("processed", "skipped", "failed", "total"))
    spec = f" | spec {_short(a['spec_commit'])}" if a.get("spec_commit") else ""
    rows = (f'<TR><TD BGCOLOR="{ORANGE}"><FONT COLOR="#FFFFFF"><B>Run</B></FONT></TD>'
            f'<TD>{_state_html(a.get("state"))}</TD><TD>id: {_h(_short(a["id"]))}</TD></TR>'
            f'<TR><TD COLSPAN="3">{_h(a["pipeline"])}</TD></TR>'
            f'<TR><TD COLSPAN="3"><FONT POINT-SIZE="8">{_h(counts)}{_h(spec)}</FONT></TD></TR>')
    if a.get("reason") and str(a.get("state")).upper() in _BAD:
        rows += f'<TR><TD COLSPAN="3"><FONT COLOR="red">{_h(a["reason"])}</FONT></TD></TR>'
    return f'<<TABLE CELLSPACING="0">{rows}</TABLE>>'


def lineage_dot(graph: nx.DiGraph) -> str:
    """DOT for a `build_lineage` graph: data nodes, then runs, then edges."""
    home = graph.graph.get("project", "default")
    data = [_node(k, f'shape=none color="{GREEN}" label={_data_label(a, home)}')
            for k, a in graph.nodes(data=True) if a.get("kind") == "data"]
    runs = [_node(k, f'shape=none color="{ORANGE}" label={_run_label(a)}')
            for k, a in graph.nodes(data=True) if a.get("kind") == "run"]
    return _HEADER + "".join(data + runs) + "\n" + _edges(graph, lambda d: d.get("label", "")) + "}\n"


# ---- graphviz ----------------------------------------------------------------------------
class GraphvizNotFound(RuntimeError):
    """graphviz's `dot` binary is not on PATH (and the format needs it)."""


def have_graphviz() -> bool:
    return shutil.which("dot") is not None


def render_image(dot_text: str, path: str | Path, fmt: str | None = None) -> Path:
    """Run `dot -T<fmt>` (fmt defaults to the file suffix: png, svg, pdf...) writing `path`.

    Without graphviz, SVG comes from pachctl.draw.svg instead; other formats need graphviz."""
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".") or "png").lower()
    exe = shutil.which("dot")
    if exe is None and fmt == "svg":
        from pachctl.draw.svg import render_svg
        path.write_text(render_svg(dot_text))
        return path
    if exe is None:
        raise GraphvizNotFound(
            f"graphviz's `dot` command was not found on PATH, and {fmt.upper()} needs it: install the "
            "`graphviz` package (`sudo apt-get install graphviz`), or draw SVG (`-o svg`), which "
            "works without it")
    proc = subprocess.run([exe, f"-T{fmt}", "-o", str(path)], input=dot_text.encode(),
                          capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"dot -T{fmt} failed: {proc.stderr.decode(errors='replace').strip()}")
    return path
