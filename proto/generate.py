"""Regenerate the Python modules for every ``.proto`` file under ``proto/``.

Usage: ``python -m proto.generate [--out DIR]``

Runs grpc_tools.protoc with the repository root and grpc_tools' bundled include directory
(for google/protobuf/*.proto) on the import path, writing ``*_pb2.py``, ``*_pb2.pyi`` and
``*_pb2_grpc.py`` next to each ``.proto`` file (or under ``DIR``, mirroring the layout,
which is what the drift test uses).
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent
REPO_ROOT = PROTO_DIR.parent


def proto_files() -> list[Path]:
    """All .proto sources, as paths relative to the repository root (sorted)."""
    return sorted(p.relative_to(REPO_ROOT) for p in PROTO_DIR.rglob("*.proto"))


def generated_names(proto: Path) -> list[Path]:
    """The generated module paths (relative to the repo root) for one .proto file."""
    stem = proto.with_suffix("")
    return [stem.with_name(stem.name + suffix) for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")]


def generate(out_dir: Path | None = None) -> list[Path]:
    """Run protoc over every .proto file; return the generated files (absolute paths)."""
    from grpc_tools import protoc

    out = Path(out_dir) if out_dir is not None else REPO_ROOT
    out.mkdir(parents=True, exist_ok=True)
    include = str(resources.files("grpc_tools") / "_proto")
    files = [str(p) for p in proto_files()]
    args = [
        "grpc_tools.protoc",
        f"-I{REPO_ROOT}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *files,
    ]
    # The inputs are paths relative to the repo root (an -I entry), so any cwd works.
    rc = protoc.main(args)
    if rc != 0:
        raise RuntimeError(f"protoc failed with exit code {rc}")
    result = [out / g for p in proto_files() for g in generated_names(p)]
    missing = [str(p) for p in result if not p.exists()]
    if missing:
        raise RuntimeError(f"protoc did not write: {missing}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proto.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="output root (default: the repository root)")
    ns = parser.parse_args(argv)
    for path in generate(ns.out):
        print(path.relative_to(ns.out.resolve() if ns.out else REPO_ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
