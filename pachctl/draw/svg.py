"""SVG pictures from our DOT text without graphviz: pure Python, no system package.

Used by `render_image` when graphviz's `dot` is not installed, so `pachctl draw ... -o svg`
and `make tutorial` still leave a picture a person can open in any browser.

Scope: the DOT this package writes (dot.py), not DOT in general. pydot parses it; node
shapes `none` with an HTML-like table label (TABLE/TR/TD with BGCOLOR and COLSPAN, FONT with
COLOR and POINT-SIZE, B, BR), `cylinder`, `cds` and boxes for anything else; edges with
labels. grandalf lays the graph out in layers (the Sugiyama method graphviz's `dot` uses):
sources on top, edges pointing down, long edges bent around the layers they cross.

Invariants:
- Same DOT text, same SVG, byte for byte.
- Every node label's text and every edge label appears in the SVG as text (XML-escaped);
  every node is inside the picture's viewBox; nodes of one layer never overlap.
- Text widths are estimated from Helvetica's metrics (Arial and Liberation Sans share them),
  the font the SVG asks for, so labels fit their boxes without measuring fonts here.
"""
from __future__ import annotations

import html
import math
import re
import warnings
from dataclasses import dataclass, field
from html.parser import HTMLParser
from xml.sax.saxutils import escape

import pydot
from grandalf.graphs import Edge, Graph, Vertex
from grandalf.layouts import SugiyamaLayout

FONT = "Helvetica,Arial,sans-serif"
PAD, CELL_PAD, GAP_X, MARGIN = 4.0, 3.0, 24.0, 8.0
# Helvetica advance widths (1/1000 em) of the characters that differ from their class's
_WIDTH = {**dict.fromkeys("ijl'|", 230), **dict.fromkeys("ftI!.,:;/[]() ", 290), "r": 333, "-": 333,
          "*": 389, **dict.fromkeys("{}", 334), "m": 833, "w": 722, "M": 833, "W": 944, "@": 1015,
          "%": 889, **dict.fromkeys("<>=+~", 584), "&": 667, '"': 355, "_": 556}


def text_width(text: str, size: float, bold: bool = False) -> float:
    units = 0
    for ch in text:
        if ch in _WIDTH:
            units += _WIDTH[ch]
        elif ch.isupper():
            units += 700
        else:
            units += 556
    return units * size / 1000 * (1.07 if bold else 1.0)


# ---- labels -------------------------------------------------------------------------------
@dataclass
class Run:
    text: str
    size: float
    color: str = ""
    bold: bool = False


@dataclass
class Cell:
    colspan: int = 1
    bgcolor: str = ""
    lines: list[list[Run]] = field(default_factory=lambda: [[]])
    w: float = 0.0
    h: float = 0.0

    def measure(self) -> None:
        self.w = max((sum(text_width(r.text, r.size, r.bold) for r in line) for line in self.lines), default=0)
        self.w += 2 * CELL_PAD
        self.h = sum(_line_height(line) for line in self.lines) + 2 * CELL_PAD


def _line_height(line: list[Run]) -> float:
    return 1.25 * max((r.size for r in line), default=10.0)


class _TableParser(HTMLParser):
    """An HTML-like label -> rows of cells (only the tags dot.py writes)."""

    def __init__(self, size: float):
        super().__init__(convert_charrefs=True)
        self.rows: list[list[Cell]] = []
        self.cell: Cell | None = None
        self.fonts: list[tuple[float, str]] = [(size, "")]
        self.bold = 0

    def handle_starttag(self, tag, attrs):
        a = {k.lower(): v or "" for k, v in attrs}
        if tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self.cell = Cell(colspan=max(1, int(a.get("colspan", "1") or 1)), bgcolor=a.get("bgcolor", ""))
            if not self.rows:
                self.rows.append([])
            self.rows[-1].append(self.cell)
        elif tag == "font":
            size, color = self.fonts[-1]
            self.fonts.append((float(a.get("point-size") or size), a.get("color") or color))
        elif tag == "b":
            self.bold += 1
        elif tag == "br" and self.cell is not None:
            self.cell.lines.append([])

    def handle_endtag(self, tag):
        if tag == "td":
            self.cell = None
        elif tag == "font" and len(self.fonts) > 1:
            self.fonts.pop()
        elif tag == "b":
            self.bold = max(0, self.bold - 1)

    def handle_data(self, data):
        if self.cell is not None and data:
            size, color = self.fonts[-1]
            self.cell.lines[-1].append(Run(data, size, color, self.bold > 0))


@dataclass
class Table:
    rows: list[list[Cell]]
    cols: list[float]
    heights: list[float]

    @property
    def w(self) -> float:
        return sum(self.cols)

    @property
    def h(self) -> float:
        return sum(self.heights)


def parse_table(label: str, size: float) -> Table:
    p = _TableParser(size)
    p.feed(label)
    p.close()
    rows = [r for r in p.rows if r] or [[Cell(lines=[[Run("", size)]])]]
    ncols = max(sum(c.colspan for c in r) for r in rows)
    cols = [0.0] * ncols
    for r in rows:
        for c in r:
            c.measure()
    for span in range(1, ncols + 1):  # narrow cells first, then widen columns for spanning ones
        for r in rows:
            i = 0
            for c in r:
                if c.colspan == span:
                    j = min(i + c.colspan, ncols)
                    short = c.w - sum(cols[i:j])
                    if short > 0:
                        for k in range(i, j):
                            cols[k] += short / (j - i)
                i += c.colspan
    return Table(rows, cols, [max(c.h for c in r) for r in rows])


# ---- nodes --------------------------------------------------------------------------------
def unquote(s: str | None) -> str:
    """A DOT ID or quoted string -> its text."""
    if s is None:
        return ""
    s = s.strip()
    if len(s) >= 2 and s[0] == s[-1] == '"':
        s = s[1:-1]
        return re.sub(r'\\(.)', lambda m: {"n": "\n", "l": "\n", "r": "\n"}.get(m.group(1), m.group(1)), s)
    return s


@dataclass
class Node:
    name: str
    shape: str
    color: str
    fill: str
    size: float
    table: Table | None = None
    lines: list[str] = field(default_factory=list)
    w: float = 0.0
    h: float = 0.0
    x: float = 0.0  # centre
    y: float = 0.0

    def measure(self) -> None:
        if self.table is not None:
            self.w, self.h = self.table.w + 2, self.table.h + 2
            return
        tw = max((text_width(t, self.size) for t in self.lines), default=0)
        th = len(self.lines) * self.size * 1.25
        self.w, self.h = tw + 4 * PAD, th + 2 * PAD
        if self.shape == "cylinder":
            self.h += 2 * self.size
        elif self.shape == "cds":
            self.w += self.h / 2


def _attr(attrs: dict, key: str, default: str = "") -> str:
    return unquote(attrs.get(key)) if key in attrs else default


def _node(name: str, attrs: dict, defaults: dict) -> Node:
    merged = {**defaults, **attrs}
    size = float(_attr(merged, "fontsize", "14") or 14)
    shape = _attr(merged, "shape", "box")
    fill = _attr(merged, "fillcolor") if "filled" in _attr(merged, "style") else ""
    n = Node(name, shape, _attr(merged, "color", "black") or "black", fill, size)
    raw = merged.get("label")
    if raw is not None and raw.startswith("<") and raw.endswith(">"):
        n.table = parse_table(raw[1:-1], size)
    else:
        n.lines = (unquote(raw) if raw is not None else name).split("\n")
    n.measure()
    return n


# ---- layout -------------------------------------------------------------------------------
class _View:
    def __init__(self, w: float, h: float):
        self.w, self.h, self.xy = w, h, (0.0, 0.0)


class _EdgeView:
    def __init__(self):
        self.pts: list[tuple[float, float]] = []

    def setpath(self, pts):
        self.pts = list(pts)


@dataclass
class Arrow:
    src: str
    dst: str
    label: list[str]
    pts: list[tuple[float, float]] = field(default_factory=list)


def layout(nodes: dict[str, Node], arrows: list[Arrow], size: float) -> tuple[float, float]:
    """Positions for every node and a path for every arrow; -> (width, height) of the picture."""
    vs = {name: Vertex(name) for name in nodes}
    for name, v in vs.items():
        v.view = _View(nodes[name].w, nodes[name].h)
    es = []
    for a in arrows:
        e = Edge(vs[a.src], vs[a.dst], data=a)
        e.view = _EdgeView()
        es.append(e)
    g = Graph(list(vs.values()), es)
    label_lines = max((len(a.label) for a in arrows if a.label != [""]), default=0)
    x0 = 0.0
    for comp in g.C:
        sug = SugiyamaLayout(comp)
        sug.xspace, sug.yspace = GAP_X, 28 + label_lines * size * 1.25
        sug.init_all(roots=[v for v in comp.sV if not v.e_in()] or None)
        sug.draw(3)
        left = min(v.view.xy[0] - v.view.w / 2 for v in comp.sV)
        right = max(v.view.xy[0] + v.view.w / 2 for v in comp.sV)
        for v in comp.sV:
            nodes[v.data].x = v.view.xy[0] - left + x0
            nodes[v.data].y = v.view.xy[1]
        for e in comp.sE:
            e.data.pts = [(x - left + x0, y) for x, y in e.view.pts]
        x0 += right - left + 2 * GAP_X
    top = min((n.y - n.h / 2 for n in nodes.values()), default=0)
    for n in nodes.values():
        n.y -= top
    for a in arrows:
        a.pts = [(x, y - top) for x, y in a.pts]
        if a.pts:
            a.pts[0] = _border(nodes[a.src], a.pts[1] if len(a.pts) > 1 else (nodes[a.dst].x, nodes[a.dst].y))
            a.pts[-1] = _border(nodes[a.dst], a.pts[-2] if len(a.pts) > 1 else (nodes[a.src].x, nodes[a.src].y))
    width = max((n.x + n.w / 2 for n in nodes.values()), default=0)
    height = max((n.y + n.h / 2 for n in nodes.values()), default=0)
    for a in arrows:
        if a.label != [""] and a.pts:
            mx, _ = _middle(a.pts)
            width = max(width, mx + 6 + max(text_width(t, size) for t in a.label))
    return width, height


def _border(n: Node, toward: tuple[float, float]) -> tuple[float, float]:
    """Where the segment from `n`'s centre to `toward` leaves its box."""
    dx, dy = toward[0] - n.x, toward[1] - n.y
    if dx == 0 and dy == 0:
        return n.x, n.y
    sx = (n.w / 2) / abs(dx) if dx else math.inf
    sy = (n.h / 2) / abs(dy) if dy else math.inf
    s = min(sx, sy, 1.0)
    return n.x + dx * s, n.y + dy * s


def _middle(pts):
    if len(pts) % 2:
        return pts[len(pts) // 2]
    (ax, ay), (bx, by) = pts[len(pts) // 2 - 1], pts[len(pts) // 2]
    return (ax + bx) / 2, (ay + by) / 2


# ---- SVG ----------------------------------------------------------------------------------
def _f(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _q(s: str) -> str:
    return html.escape(s, quote=True)


def _text(x: float, y: float, runs: list[Run], anchor: str = "middle") -> str:
    spans = []
    for r in runs:
        attrs = f' font-size="{_f(r.size)}"'
        if r.color:
            attrs += f' fill="{_q(r.color)}"'
        if r.bold:
            attrs += ' font-weight="bold"'
        spans.append(f"<tspan{attrs}>{escape(r.text)}</tspan>")
    return f'<text xml:space="preserve" x="{_f(x)}" y="{_f(y)}" text-anchor="{anchor}">{"".join(spans)}</text>'


def _table_svg(n: Node) -> list[str]:
    t = n.table
    left, y = n.x - t.w / 2, n.y - t.h / 2
    out = [f'<rect x="{_f(left - 1)}" y="{_f(y - 1)}" width="{_f(t.w + 2)}" height="{_f(t.h + 2)}" '
           f'fill="white" stroke="{_q(n.color)}"/>']
    for row, rh in zip(t.rows, t.heights):
        i = 0
        for c in row:
            x = left + sum(t.cols[:i])
            w = sum(t.cols[i:i + c.colspan])
            fill = c.bgcolor or "none"
            out.append(f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(w)}" height="{_f(rh)}" '
                       f'fill="{_q(fill)}" stroke="{_q(n.color)}"/>')
            ty = y + (rh - (c.h - 2 * CELL_PAD)) / 2
            for line in c.lines:
                lh = _line_height(line)
                ty += lh
                out.append(_text(x + w / 2, ty - lh * 0.25, line))
            i += c.colspan
        y += rh
    return out


def _shape_svg(n: Node) -> list[str]:
    x0, y0, w, h = n.x - n.w / 2, n.y - n.h / 2, n.w, n.h
    fill = _q(n.fill or "white")
    stroke = _q(n.color)
    if n.shape == "cylinder":
        ry = n.size / 1.5
        out = [f'<path d="M{_f(x0)},{_f(y0 + ry)} a{_f(w / 2)},{_f(ry)} 0 0,1 {_f(w)},0 v{_f(h - 2 * ry)} '
               f'a{_f(w / 2)},{_f(ry)} 0 0,1 {_f(-w)},0 z" fill="{fill}" stroke="{stroke}"/>',
               f'<path d="M{_f(x0)},{_f(y0 + ry)} a{_f(w / 2)},{_f(ry)} 0 0,0 {_f(w)},0" fill="none" stroke="{stroke}"/>']
    elif n.shape == "cds":
        tip = h / 2
        pts = [(x0, y0), (x0 + w - tip, y0), (x0 + w, y0 + h / 2), (x0 + w - tip, y0 + h), (x0, y0 + h)]
        out = [f'<polygon points="{" ".join(f"{_f(a)},{_f(b)}" for a, b in pts)}" fill="{fill}" stroke="{stroke}"/>']
    else:
        out = [f'<rect x="{_f(x0)}" y="{_f(y0)}" width="{_f(w)}" height="{_f(h)}" fill="{fill}" stroke="{stroke}"/>']
    lh = n.size * 1.25
    ty = n.y - lh * len(n.lines) / 2 + lh * 0.8
    for line in n.lines:
        out.append(_text(n.x, ty, [Run(line, n.size)]))
        ty += lh
    return out


def _path(pts) -> str:
    """A smooth curve through the points (Catmull-Rom as cubic Beziers)."""
    if len(pts) == 2:
        (ax, ay), (bx, by) = pts
        return f"M{_f(ax)},{_f(ay)} L{_f(bx)},{_f(by)}"
    d = [f"M{_f(pts[0][0])},{_f(pts[0][1])}"]
    ext = [pts[0], *pts, pts[-1]]
    for i in range(1, len(ext) - 2):
        p0, p1, p2, p3 = ext[i - 1], ext[i], ext[i + 1], ext[i + 2]
        c1 = (p1[0] + (p2[0] - p0[0]) / 6, p1[1] + (p2[1] - p0[1]) / 6)
        c2 = (p2[0] - (p3[0] - p1[0]) / 6, p2[1] - (p3[1] - p1[1]) / 6)
        d.append(f"C{_f(c1[0])},{_f(c1[1])} {_f(c2[0])},{_f(c2[1])} {_f(p2[0])},{_f(p2[1])}")
    return " ".join(d)


def place(dot_text: str) -> tuple[dict[str, Node], list[Arrow], float, float, float]:
    """DOT text -> (nodes, arrows, width, height, edge font size), laid out."""
    with warnings.catch_warnings():  # pydot 4 builds its parser with pyparsing's old names
        warnings.simplefilter("ignore", DeprecationWarning)
        graphs = pydot.graph_from_dot_data(dot_text)
    if not graphs:
        raise ValueError("not a DOT graph")
    g = graphs[0]
    defaults: dict = {}
    edge_defaults: dict = {}
    nodes: dict[str, Node] = {}
    for pn in g.get_nodes():
        name = unquote(pn.get_name())
        if name == "node":
            defaults.update(pn.get_attributes())
        elif name == "edge":
            edge_defaults.update(pn.get_attributes())
        elif name != "graph":
            nodes[name] = _node(name, pn.get_attributes(), defaults)
    edge_size = float(unquote(edge_defaults.get("fontsize", "14")) or 14)
    arrows = []
    for pe in g.get_edges():
        src, dst = unquote(pe.get_source()), unquote(pe.get_destination())
        for end in (src, dst):
            if end not in nodes:
                nodes[end] = _node(end, {}, defaults)
        arrows.append(Arrow(src, dst, _attr(pe.get_attributes(), "label").split("\n")))
    width, height = layout(nodes, arrows, edge_size)
    return nodes, arrows, width, height, edge_size


def render_svg(dot_text: str) -> str:
    """SVG text for DOT text written by pachctl.draw.dot (see the module docstring)."""
    nodes, arrows, width, height, edge_size = place(dot_text)
    W, H = width + 2 * MARGIN, height + 2 * MARGIN
    out = ['<?xml version="1.0" encoding="UTF-8" standalone="no"?>',
           f'<svg xmlns="http://www.w3.org/2000/svg" width="{_f(W)}pt" height="{_f(H)}pt" '
           f'viewBox="0 0 {_f(W)} {_f(H)}" font-family="{FONT}">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
           'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="black"/></marker></defs>',
           f'<rect width="{_f(W)}" height="{_f(H)}" fill="white"/>',
           f'<g transform="translate({_f(MARGIN)},{_f(MARGIN)})">']
    for a in arrows:
        out.append(f'<g class="edge"><title>{escape(a.src)} -&gt; {escape(a.dst)}</title>')
        out.append(f'<path d="{_path(a.pts)}" fill="none" stroke="black" marker-end="url(#arrow)"/>')
        if a.label != [""]:
            mx, my = _middle(a.pts)
            lh = edge_size * 1.25
            y = my - lh * len(a.label) / 2 + lh * 0.8
            for line in a.label:
                out.append(f'<text xml:space="preserve" x="{_f(mx + 6)}" y="{_f(y)}" font-size="{_f(edge_size)}" '
                           f'stroke="white" stroke-width="3" paint-order="stroke">{escape(line)}</text>')
                y += lh
        out.append("</g>")
    for n in nodes.values():
        out.append(f'<g class="node"><title>{escape(n.name)}</title>')
        out.extend(_table_svg(n) if n.table is not None else _shape_svg(n))
        out.append("</g>")
    out.append("</g></svg>")
    return "\n".join(out) + "\n"
