"""`--raw` / `-o json|yaml` output, byte-identical to pachctl 2.x (protojson and yaml.v3).

Invariants:
- `encode_json` reproduces Go's protojson as pachctl prints it: 2-space indent, no trailing
  newline; a list is the objects concatenated with no separator (`}{`).
- `encode_yaml` reproduces yaml.v3 (indent 2, keys in yaml.v3's order, strings quoted only when
  they would read back as another type); several documents are separated by `---`.
- Both take plain dicts already in protojson shape (proto field names, int64 as strings,
  enums as names, RFC3339 timestamps); `proto_to_dict` makes that shape from a message, with
  keys in .proto declaration order (protojson's order), so output is stable.
- Pure apart from `proto_to_dict`, which imports protobuf lazily.
"""
from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from functools import lru_cache
from typing import Any, Iterable, TextIO

__all__ = ["validate_output_flags", "json_number", "yaml_number", "encode_json", "encode_json_list",
           "encode_yaml", "encode_yaml_list", "yaml_less", "Encoder", "proto_to_dict"]


def validate_output_flags(raw: bool, output: str | None, *, alternative: str = "") -> str | None:
    """The encoding to use ('json'/'yaml') with --raw, None for pretty output.

    `alternative` names another flag allowing -o (list pipeline: `--spec`).
    """
    output = output or ""
    if output and not raw:
        alt = f" or {alternative}" if alternative else ""
        raise ValueError(f"cannot set --output (-o) without --raw{alt}")
    if not raw:
        return None
    fmt = output.lower() or "json"
    if fmt not in ("json", "yaml"):
        raise ValueError(f'unrecognized encoding: {json.dumps(fmt)} (must be "yaml" or "json")')
    return fmt


def _shortest(x: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of |x| and the decimal-point position."""
    tup = Decimal(repr(abs(x))).normalize().as_tuple()
    digits = "".join(map(str, tup.digits))
    return digits, len(digits) + tup.exponent


def _go_float(x: float, fmt: str) -> str:
    """strconv.FormatFloat(x, fmt, -1, 64) for fmt 'e', 'f' or 'g'."""
    if x == 0:
        return "0e+00" if fmt == "e" else "0"
    sign = "-" if x < 0 else ""
    digits, dp = _shortest(x)
    exp = dp - 1
    if fmt == "g":  # shortest %g switches to %e for exp < -4 || exp >= 6
        fmt = "e" if exp < -4 or exp >= 6 else "f"
    if fmt == "e":
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if dp <= 0:
        return f"{sign}0.{'0' * -dp}{digits}"
    if dp >= len(digits):
        return sign + digits + "0" * (dp - len(digits))
    return f"{sign}{digits[:dp]}.{digits[dp:]}"


def json_number(x: int | float) -> str:
    """protojson number text: ints verbatim; floats shortest ('e' outside [1e-6, 1e21)).

    float32 proto fields arrive already shortened by json_format (ToShortestFloat).
    """
    if isinstance(x, int):
        return str(x)
    if math.isnan(x):
        return '"NaN"'
    if math.isinf(x):
        return '"Infinity"' if x > 0 else '"-Infinity"'
    a = abs(x)
    s = _go_float(x, "e" if a != 0 and (a < 1e-6 or a >= 1e21) else "f")
    return re.sub(r"e-0(\d)$", r"e-\1", s)


def yaml_number(x: int | float) -> str:
    """yaml.v3 on json.Unmarshal's float64: strconv.FormatFloat(f, 'g', -1, 64)."""
    text = json_number(x)
    if text.startswith('"'):
        return {'"NaN"': ".nan", '"Infinity"': ".inf"}.get(text, "-.inf")
    return _go_float(float(text), "g")


def _json_value(v: Any, indent: str, level: int) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return json_number(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    pad, inner = indent * level, indent * (level + 1)
    if isinstance(v, dict):
        if not v:
            return "{}"
        items = [f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {_json_value(val, indent, level + 1)}"
                 for k, val in v.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(v, (list, tuple)):
        if not v:
            return "[]"
        items = [inner + _json_value(val, indent, level + 1) for val in v]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    raise TypeError(f"cannot encode {type(v).__name__} as JSON")


def encode_json(obj: Any, indent: int = 2) -> str:
    """One protojson-style document, no trailing newline."""
    return _json_value(obj, " " * indent, 0)


def encode_json_list(objs: Iterable[Any]) -> str:
    """pachctl list output with --raw: objects concatenated without any separator."""
    return "".join(encode_json(o) for o in objs)


# yaml.v3 scalar resolution: strings that would read back as another type get double quotes.
_V3_SPECIAL = {"", "~", "null", "Null", "NULL", "true", "True", "TRUE", "false", "False",
               "FALSE", ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf",
               "+.INF", "-.inf", "-.Inf", "-.INF", "<<"}
_V3_OLD_BOOL = {"y", "Y", "yes", "Yes", "YES", "on", "On", "ON",
                "n", "N", "no", "No", "NO", "off", "Off", "OFF"}
_V3_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_V3_BASE60 = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
_V3_TIMESTAMP = re.compile(
    r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
    r"([Tt][0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})"
    r"| [0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\.[0-9]+)?)?$")
_GO_INT_BASE0 = re.compile(r"^[+-]?(0[xX][0-9a-fA-F]+|0[oO]?[0-7]*|0[bB][01]+|[1-9][0-9]*)$")


def _v3_resolves_to_non_string(s: str) -> bool:
    """True if yaml.v3 would resolve the plain scalar `s` to a non-string tag."""
    if s in _V3_SPECIAL or s in _V3_OLD_BOOL or _V3_BASE60.match(s):
        return True
    if s[0] == ".":
        return _V3_FLOAT.match(s) is not None
    if s[0] in "+-0123456789":
        if _V3_TIMESTAMP.match(s):
            return True
        plain = s.replace("_", "")
        return bool(_GO_INT_BASE0.match(plain) or _V3_FLOAT.match(plain))
    return False


def yaml_less(a: str, b: str) -> bool:
    """yaml.v3's map-key order (keyList.Less): letters, then digit runs numerically."""
    digits = False
    for i in range(min(len(a), len(b))):
        ca, cb = a[i], b[i]
        if ca == cb:
            digits = ca.isdigit()
            continue
        al, bl = ca.isalpha(), cb.isalpha()
        if al and bl:
            return ca < cb
        if al or bl:
            return al if digits else bl
        an = bn = 0
        if ca == "0" or cb == "0":
            j = i - 1
            while j >= 0 and a[j].isdigit():
                if a[j] != "0":
                    an = bn = 1
                    break
                j -= 1
        ai = i
        while ai < len(a) and a[ai].isdigit():
            an = an * 10 + int(a[ai])
            ai += 1
        bi = i
        while bi < len(b) and b[bi].isdigit():
            bn = bn * 10 + int(b[bi])
            bi += 1
        if an != bn:
            return an < bn
        if ai != bi:
            return ai < bi
        return ca < cb
    return len(a) < len(b)


_STR_TAG = "tag:yaml.org,2002:str"


def _rep_str(dumper, s):
    if "\n" in s:
        style = "|"
    elif _v3_resolves_to_non_string(s):
        style = '"'
    else:
        style = None
    return dumper.represent_scalar(_STR_TAG, s, style=style)


def _rep_dict(dumper, d):
    from functools import cmp_to_key

    keyed = [(str(k), v) for k, v in d.items()]
    keyed.sort(key=cmp_to_key(lambda x, y: -1 if yaml_less(x[0], y[0])
                               else (1 if yaml_less(y[0], x[0]) else 0)))
    return dumper.represent_mapping("tag:yaml.org,2002:map", keyed)


@lru_cache(maxsize=1)
def _yaml_v3_dumper():
    """PyYAML configured to emit what yaml.v3 (SetIndent(2)) emits. Built on first use: most
    commands never print YAML, and importing PyYAML is a tenth of pachctl's start-up."""
    import yaml

    class YamlV3Dumper(yaml.SafeDumper):
        yaml_implicit_resolvers: dict = {}  # every scalar we emit is tagged str; we pick styles

        def increase_indent(self, flow=False, indentless=False):
            return super().increase_indent(flow, False)  # v3 indents sequences inside mappings

    YamlV3Dumper.add_representer(str, _rep_str)
    YamlV3Dumper.add_representer(dict, _rep_dict)
    YamlV3Dumper.add_representer(type(None), lambda d, _: d.represent_scalar(_STR_TAG, "null"))
    YamlV3Dumper.add_representer(bool, lambda d, v: d.represent_scalar(_STR_TAG, "true" if v else "false"))
    YamlV3Dumper.add_representer(int, lambda d, v: d.represent_scalar(_STR_TAG, yaml_number(v)))
    YamlV3Dumper.add_representer(float, lambda d, v: d.represent_scalar(_STR_TAG, yaml_number(v)))
    YamlV3Dumper.add_representer(tuple, lambda d, v: d.represent_list(list(v)))
    return yaml, YamlV3Dumper


def encode_yaml(obj: Any) -> str:
    """One yaml.v3 document (newline terminated, no `---`)."""
    yaml, dumper = _yaml_v3_dumper()
    return yaml.dump(obj, Dumper=dumper, default_flow_style=False, allow_unicode=True,
                     width=float("inf"), indent=2, sort_keys=False)


def encode_yaml_list(objs: Iterable[Any]) -> str:
    """Several documents from one yaml.v3 Encoder: separated by `---`."""
    return "---\n".join(encode_yaml(o) for o in objs)


class Encoder:
    """Streams `--raw` output: JSON objects back to back, YAML documents split by `---`."""

    def __init__(self, out: TextIO, fmt: str = "json"):
        if fmt not in ("json", "yaml"):
            raise ValueError(f'unrecognized encoding: {json.dumps(fmt)} (must be "yaml" or "json")')
        self.out, self.fmt, self._count = out, fmt, 0

    def encode(self, obj: Any) -> None:
        if self.fmt == "json":
            self.out.write(encode_json(obj))
        else:
            self.out.write(("---\n" if self._count else "") + encode_yaml(obj))
        self._count += 1


# ---- protobuf messages -> protojson-shaped dicts -------------------------------------------
def _reorder(d: dict, descriptor) -> dict:
    """Keys in declaration order (protojson's), recursing into non-well-known messages."""
    out: dict = {}
    for f in descriptor.fields:
        if f.name not in d:
            continue
        v = d[f.name]
        mt = f.message_type
        if mt is not None and not mt.full_name.startswith("google.protobuf.") \
                and not mt.GetOptions().map_entry:
            if isinstance(v, list):
                v = [_reorder(x, mt) if isinstance(x, dict) else x for x in v]
            elif isinstance(v, dict):
                v = _reorder(v, mt)
        out[f.name] = v
    for k, v in d.items():  # anything json_format emitted that the descriptor does not list
        out.setdefault(k, v)
    return out


def proto_to_dict(msg) -> dict:
    """protojson's shape: proto (snake_case) names, defaults omitted, int64 as strings."""
    from google.protobuf import json_format

    d = json_format.MessageToDict(msg, preserving_proto_field_name=True)
    return _reorder(d, msg.DESCRIPTOR) if isinstance(d, dict) else d

