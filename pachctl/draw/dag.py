"""The pipeline DAG: built from pipeline records, drawn in the terminal like `pachctl draw pipeline`.

Graph model (`build_pipeline_graph`):
- Vertices are pipelines and the inputs they read: a PFS input's repo (or its input name with
  `vertex_key="name"`, Pachyderm's own and lossy choice: a renamed input is then not joined to
  the pipeline that writes the repo), a cron input's repo (`<pipeline>_<name>`, else its name).
  A pipeline's vertex *is* its output repo, so a pipeline reading another pipeline's repo
  connects to it. Ids are bare names for the home project, `project/name` otherwise.
- Edges run input -> pipeline, one per pair; every PFS/cron leaf of the input tree that maps to
  the pair is kept in the edge's `inputs` list (name, glob, the combinators above it).
- Node insertion order is first appearance: a pipeline, then its input leaves depth-first,
  left to right (Pachyderm's `pps.VisitInput`). The ASCII layout depends on this order.
- `red` is set when the pipeline's last job ended in FAILURE or KILLED.

ASCII picture (`render_ascii`), the algorithm of Pachyderm's `src/server/pps/pretty/draw.go`:
- Layering by longest path: sinks are layer 0; passes over the vertices in insertion order
  place a vertex one layer above its highest successor once all successors are placed; an
  edge spanning k > 1 layers gets k-1 dummy vertices (drawn as `|`).
- Ordering: each layer above 0 is insertion-sorted by Pachyderm's greedy score
  `sum(prev_position(succ) - own_position)` (positions as they stand while sorting; Go's
  `sort.Slice` is an insertion sort for layers of at most 12 vertices, used here for all).
- Coordinates: row width W = max layer size * (box_width + 2) * 2; box j of n is centred at
  column (j + 1) * (W // (n + 1)). Layers print from the sources (top) down; each is a border,
  a label row, a border, then `edge_height` rows of exactly W characters of edge art
  (`\\ / | -`, `+` where two different strokes meet). Labels longer than box_width become
  `label[:box_width-2] + ".."`. The result ends with the last layer's (blank) edge rows,
  exactly what `pachctl draw pipeline` prints.
- Colour is off unless asked: boxes are bright green (ESC[92m), bright red (ESC[91m) when red.
Pure: networkx only; no grpc.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import networkx as nx

RED_STATES = {"JOB_FAILURE", "JOB_KILLED"}
_COMBINATORS = ("cross", "join", "group", "union")


def _get(rec: Any, *keys: str, default: Any = None) -> Any:
    """First present key of a mapping (snake_case or protojson camelCase) or attribute."""
    for k in keys:
        if isinstance(rec, Mapping):
            if rec.get(k) is not None:
                return rec[k]
        elif getattr(rec, k, None) is not None:
            return getattr(rec, k)
    return default


def state_name(state: Any) -> str:
    """`JOB_SUCCESS`/`success`/`PIPELINE_RUNNING` -> `JOB_SUCCESS`-style upper-case name."""
    return str(state or "").upper()


def short_state(state: Any) -> str:
    """Pachyderm's display form: `JOB_SUCCESS` -> `success`, `PIPELINE_RUNNING` -> `running`."""
    s = state_name(state)
    for prefix in ("JOB_", "PIPELINE_"):
        s = s.removeprefix(prefix)
    return s.lower() or "-"


def visit_input(inp: Mapping | None, path: tuple[str, ...] = ()) -> Iterable[tuple[str, Mapping, tuple]]:
    """Yield (kind, leaf spec, combinators above it) for each pfs/cron leaf, left to right."""
    if not inp:
        return
    for comb in _COMBINATORS:
        children = inp.get(comb)
        if children:
            for child in children:
                yield from visit_input(child, path + (comb,))
            return
    if inp.get("pfs"):
        yield "pfs", inp["pfs"], path
    elif inp.get("cron"):
        yield "cron", inp["cron"], path


def _pipeline_fields(rec: Any) -> tuple[str, str]:
    pipe = _get(rec, "pipeline")
    if isinstance(pipe, Mapping):
        return pipe.get("project") or _project_name(rec), pipe["name"]
    return _project_name(rec), _get(rec, "name")


def _project_name(rec: Any) -> str:
    p = _get(rec, "project", default="default")
    return p.get("name", "default") if isinstance(p, Mapping) else p


def build_pipeline_graph(pipelines: Iterable[Any], *, project: str | None = None,
                         vertex_key: str = "repo") -> nx.DiGraph:
    """Pipeline records -> DiGraph (see module docstring).

    A record is a mapping (or object) with `name`, `project` (default "default"), `input`
    (Pachyderm spec shape: pfs/cron/cross/union/join/group; `details.input` also accepted),
    `last_job_state` (`JOB_SUCCESS`...), and optionally `state` (`PIPELINE_RUNNING`...),
    `description`. `project` is the home project (default: the first pipeline's).
    """
    if vertex_key not in ("repo", "name"):
        raise ValueError("vertex_key must be 'repo' or 'name'")
    pipelines = list(pipelines)
    if project is None:
        project = _pipeline_fields(pipelines[0])[0] if pipelines else "default"
    g = nx.DiGraph(project=project)

    def vid(proj: str, name: str) -> str:
        return name if proj == project else f"{proj}/{name}"

    def upsert(node: str, **attrs: Any) -> None:
        if node not in g:
            g.add_node(node, kind="repo", label=node, red=False)
        g.nodes[node].update(attrs)

    for rec in pipelines:
        proj, name = _pipeline_fields(rec)
        pv = vid(proj, name)
        last = state_name(_get(rec, "last_job_state", "lastJobState"))
        upsert(pv, kind="pipeline", project=proj, name=name, last_job_state=last,
               state=state_name(_get(rec, "state")), description=_get(rec, "description", default=""))
        if last in RED_STATES:
            g.nodes[pv]["red"] = True
        inp = _get(rec, "input")
        if inp is None:
            details = _get(rec, "details")
            inp = _get(details, "input") if details is not None else None
        for kind, leaf, path in visit_input(inp):
            if kind == "pfs":
                repo = leaf.get("repo")
                iname = leaf.get("name") or repo
                iproj = leaf.get("project") or proj
                key = vid(iproj, iname if vertex_key == "name" else repo)
                info = {"kind": "pfs", "name": iname, "repo": repo, "project": iproj,
                        "glob": leaf.get("glob", ""), "branch": leaf.get("branch") or "master",
                        "via": path, "join_on": leaf.get("join_on") or leaf.get("joinOn") or "",
                        "group_by": leaf.get("group_by") or leaf.get("groupBy") or ""}
                if key not in g:
                    upsert(key, kind="repo", project=iproj, name=key.rsplit("/", 1)[-1])
            else:
                cname = leaf.get("name") or "tick"
                key = vid(proj, cname if vertex_key == "name" else (leaf.get("repo") or cname))
                info = {"kind": "cron", "name": cname, "repo": leaf.get("repo") or cname,
                        "project": proj, "spec": leaf.get("spec", ""), "via": path}
                if key not in g:
                    upsert(key, kind="cron", project=proj, name=cname, label=cname,
                           spec=leaf.get("spec", ""))
            if g.has_edge(key, pv):
                g.edges[key, pv]["inputs"].append(info)
            else:
                g.add_edge(key, pv, inputs=[info])
    return g


# ---- ASCII layout ------------------------------------------------------------------------
class _V:
    __slots__ = ("dummy", "edges", "key", "label", "layer", "red", "x")

    def __init__(self, key: Any, label: str, red: bool = False, dummy: bool = False):
        self.key, self.label, self.red, self.dummy = key, label, red, dummy
        self.edges: list[_V] = []
        self.layer = 0
        self.x = 0


def _layer_longest_path(vs: list[_V]) -> list[list[_V]]:
    layers: list[list[_V]] = []

    def add(v: _V, layer: int) -> None:
        while layer >= len(layers):
            layers.append([])
        layers[layer].append(v)

    assigned: set[int] = set()
    for v in vs:
        if not v.edges:
            v.layer = 0
            add(v, 0)
            assigned.add(id(v))
    while len(assigned) != len(vs):
        progressed = False
        for v in vs:
            if id(v) in assigned or any(id(e) not in assigned for e in v.edges):
                continue
            v.layer = max([e.layer for e in v.edges] + [0]) + 1
            add(v, v.layer)
            assigned.add(id(v))
            progressed = True
            for e in list(v.edges):  # long edges get a chain of dummies, top to bottom
                span = v.layer - e.layer
                latest = v
                for i in range(span - 1):
                    d = _V(None, "*", dummy=True)
                    d.layer = v.layer - i - 1
                    d.edges.append(e)
                    add(d, d.layer)
                    latest.edges[latest.edges.index(e)] = d
                    latest = d
        if not progressed:
            raise ValueError("pipeline graph has a cycle")
    return layers


def _score(layer: list[_V], prev: dict[int, int], pos: int) -> int:
    """Pachyderm's greedy score of the vertex now at `pos` (Go closes over the sort index)."""
    return sum(prev.get(id(u), 0) - pos for u in layer[pos].edges)


def _order_greedy(layers: list[list[_V]]) -> None:
    prev: dict[int, int] = {}
    for li, layer in enumerate(layers):
        if li > 0:
            for i in range(1, len(layer)):
                j = i
                while j > 0 and _score(layer, prev, j) < _score(layer, prev, j - 1):
                    layer[j], layer[j - 1] = layer[j - 1], layer[j]
                    j -= 1
        prev = {id(v): j for j, v in enumerate(layer)}


def _set_char(row: list[str], i: int, ch: str) -> None:
    if 0 <= i < len(row):
        cur = row[i]
        if cur == " ":
            row[i] = ch
        elif cur != ch:
            row[i] = "+"


def _go_rem(a: int, b: int) -> int:
    r = abs(a) % b
    return r if a >= 0 else -r


def _render_edge(row: list[str], src: int, dest: int, idx: int, height: int) -> None:
    if src == dest:
        _set_char(row, src, "|")
        return
    adj = abs(src - dest) - 1  # horizontal cells to cover; diagonals start one off centre
    if height > adj and adj // 2 <= idx < height - adj // 2:
        _set_char(row, (src + dest) // 2, "|")
        return
    if height < adj and idx == height // 2:
        step = 1 if src < dest else -1
        diag = (height // 2) * step
        x, stop = src + diag, dest - diag - _go_rem(step * height, 2)
        for _ in range(len(row) + abs(src - dest)):
            if x == stop:
                break
            x += step
            _set_char(row, x, "-")
        return
    offset = idx + 1
    if idx > height // 2:
        offset = adj - (height - offset)
    if src > dest:
        _set_char(row, src - offset, "/")
    else:
        _set_char(row, src + offset, "\\")


def render_ascii(graph: nx.DiGraph, box_width: int = 11, edge_height: int = 5, *,
                 color: bool = False) -> str:
    """Pachyderm's terminal picture of `graph` (nodes: optional `label`, `red` attributes)."""
    vmap = {n: _V(n, str(graph.nodes[n].get("label", n)), bool(graph.nodes[n].get("red")))
            for n in graph.nodes}
    for n, v in vmap.items():
        v.edges = [vmap[s] for s in graph.successors(n)]
    vs = list(vmap.values())
    layers = _layer_longest_path(vs)
    _order_greedy(layers)
    width = max((len(layer) for layer in layers), default=0) * (box_width + 2) * 2
    for layer in layers:
        step = width // (len(layer) + 1)
        for j, v in enumerate(layer):
            v.x = (j + 1) * step

    def paint(s: str, red: bool) -> str:
        return f"\x1b[{91 if red else 92}m{s}\x1b[0m" if color else s

    out: list[str] = []
    for layer in reversed(layers):
        written = 0
        border, row = "", ""
        edges: list[tuple[int, int]] = []
        for v in layer:
            spacing = max(v.x - (box_width + 2) // 2 - written, 0)
            label = v.label
            if len(label) > box_width:
                label = label[: box_width - 2] + ".."
            pad_l = " " * ((box_width - len(label)) // 2)
            pad_r = " " * (box_width - len(label) - len(pad_l))
            if v.dummy:
                hidden = " " * spacing + " " + pad_l + "|" + pad_r + " "
                border += hidden
                row += hidden
            else:
                border += paint(" " * spacing + "+" + "-" * box_width + "+", v.red)
                row += paint(" " * spacing + "|" + pad_l + label + pad_r + "|", v.red)
            written += spacing + len(pad_l) + len(label) + len(pad_r) + 2
            edges.extend((v.x, u.x) for u in v.edges)
        out.append(f"{border}\n{row}\n{border}\n")
        for j in range(edge_height):
            cells = [" "] * width
            for src, dest in edges:
                _render_edge(cells, src, dest, j, edge_height)
            out.append("".join(cells) + "\n")
    return "".join(out)
