"""Pictures of pipelines and of commit lineage: pure drawing code, no grpc.

- `dag`: pipeline records -> networkx DiGraph (`build_pipeline_graph`) and Pachyderm's
  terminal picture of it (`render_ascii`, `pachctl draw pipeline`).
- `lineage`: commit/job records reached through two callbacks -> a Knitfab-style
  data -> run -> data DiGraph (`build_lineage`, `pachctl draw lineage`).
- `dot`: DOT text for both (`render_dot`, `lineage_dot`) and `render_image` (graphviz `dot`).
- `svg`: `render_svg`, an SVG picture of that DOT text in pure Python (grandalf's layered
  layout), which `render_image` uses for SVG where graphviz is not installed.
Each module's docstring states its invariants. Callers fetch records; nothing here does I/O
except `render_image`.
"""
from pachctl.draw.dag import (
    build_pipeline_graph,
    render_ascii,
    short_state,
    visit_input,
)
from pachctl.draw.dot import GraphvizNotFound, have_graphviz, lineage_dot, render_dot, render_image
from pachctl.draw.lineage import (
    CommitRef,
    as_ref,
    build_lineage,
    data_key,
    parse_depth,
    run_key,
)

__all__ = [
    "CommitRef", "GraphvizNotFound", "as_ref", "build_lineage", "build_pipeline_graph",
    "data_key", "have_graphviz", "lineage_dot", "parse_depth", "render_ascii", "render_dot", "render_image",
    "run_key", "short_state", "visit_input",
]
