"""R3, coverage-guided: atheris (libFuzzer for Python) on the parsers that take raw bytes or text
from outside, in-process and instrumented, so it finds inputs that reach new branches instead
of sampling blindly as hypothesis does.

    python -m tests.reliability.coverage_fuzz TARGET [libFuzzer flags, e.g. -runs=20000 -max_total_time=60]
    python -m tests.reliability.coverage_fuzz --list

Targets and what each one checks (any other exception is a finding; atheris prints the input
that raised it, writes it to crash-<sha1> and exits non-zero):
- s3-body: an HTTP request body as the S3 gateway's socket delivers it (Content-Length or
  chunked framing, aws-chunked inside, declared digests and trailers from the fuzzer): reading
  it either yields bytes or raises S3Error; never more bytes than the framing holds.
- s3-body-roundtrip: a random payload framed validly (random chunk sizes, aws-chunked inside
  HTTP chunked or Content-Length, a trailer checksum or not), followed by the next request's
  bytes on the same connection: decoding gives exactly the payload and leaves exactly the next
  request unread (the bug CI found on 2026-12-07 was leftover framing).
- glob: compile a pattern and match paths with it: Glob or InvalidArgument, matching never
  raises.
- refs: pachctl's `repo@branch:/path`, `repo@commit^2`, `pipeline@job` parsers: a ref or a
  ValueError with its own message (never one from int() or an index error).
- spec: pipeline spec text (JSON, YAML, a stream of objects) through parse + normalize:
  specs or InvalidArgument.
- s3-xml: request documents (DeleteObjects, CompleteMultipartUpload, CreateBucketConfiguration,
  Tagging): an element or S3Error("MalformedXML").
- selftest: raises on one specific input (b"PACH"), to show the runner reports findings.
"""
from __future__ import annotations

import base64
import hashlib
import io
import sys
import zlib

import atheris

# only this project's parsing modules are instrumented (all of a dependency tree would take
# minutes to instrument and would steer the fuzzer into libraries)
with atheris.instrument_imports(include=["pachctl.refs", "pfs.glob", "pfs.s3gateway", "pps.spec"]):
    from pachctl import refs
    from pfs import glob as pglob
    from pfs.errors import InvalidArgument
    from pfs.s3gateway import body as s3body
    from pfs.s3gateway import xmlutil
    from pfs.s3gateway.errors import S3Error
    from pps import spec as pspec


class Finding(AssertionError):
    """An input the code under test answered wrongly (not just with an exception it may raise)."""


def _headers(fdp: atheris.FuzzedDataProvider) -> dict:
    h = {}
    pick = fdp.ConsumeIntInRange(0, 3)
    if pick == 1:
        h["Transfer-Encoding"] = "chunked"
    elif pick == 2:
        h["Transfer-Encoding"] = fdp.ConsumeUnicodeNoSurrogates(12)
    else:
        h["Content-Length"] = str(fdp.ConsumeIntInRange(-2, 600)) if fdp.ConsumeBool() \
            else fdp.ConsumeUnicodeNoSurrogates(6)
    if fdp.ConsumeBool():
        h["Content-Encoding"] = "aws-chunked"
        h["x-amz-content-sha256"] = fdp.PickValueInList(
            ["STREAMING-UNSIGNED-PAYLOAD-TRAILER", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "UNSIGNED-PAYLOAD"])
        if fdp.ConsumeBool():
            h["x-amz-decoded-content-length"] = fdp.ConsumeUnicodeNoSurrogates(5)
        if fdp.ConsumeBool():
            h["x-amz-trailer"] = fdp.PickValueInList(["x-amz-checksum-crc32", "x-amz-checksum-sha256", "x-amz-checksum-sha1"])
    elif fdp.ConsumeBool():
        h["x-amz-content-sha256"] = fdp.ConsumeUnicodeNoSurrogates(64)
    if fdp.ConsumeIntInRange(0, 7) == 0:
        h["Content-MD5"] = fdp.ConsumeUnicodeNoSurrogates(24)
    return h


@atheris.instrument_func
def s3_body(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    headers = _headers(fdp)
    read_size = fdp.ConsumeIntInRange(1, 64)
    raw = fdp.ConsumeBytes(fdp.remaining_bytes())
    try:
        b = s3body.open_body(io.BytesIO(raw), headers, lambda: None)
        got = sum(len(c) for c in b.chunks(read_size))
    except S3Error:
        return
    if got > len(raw):
        raise Finding(f"decoded {got} bytes from a {len(raw)}-byte body")


def _chunked(payload: bytes, sizes: list[int]) -> bytes:
    """`payload` as chunk-size lines and chunks of the given sizes (the rest in one more chunk),
    without the last (zero-size) chunk."""
    out, i = bytearray(), 0
    for n in [*sizes, len(payload)]:
        piece = payload[i:i + n]
        i += len(piece)
        if piece:
            out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    return bytes(out)


def _frame_http_chunked(payload: bytes, sizes: list[int]) -> bytes:
    return _chunked(payload, sizes) + b"0\r\n\r\n"


def _frame_aws_chunked(payload: bytes, sizes: list[int], trailer: str) -> bytes:
    out = bytearray(_chunked(payload, sizes) + b"0\r\n")
    if trailer == "crc32":
        out += b"x-amz-checksum-crc32:" + base64.b64encode(zlib.crc32(payload).to_bytes(4, "big")) + b"\r\n"
    elif trailer == "sha256":
        out += b"x-amz-checksum-sha256:" + base64.b64encode(hashlib.sha256(payload).digest()) + b"\r\n"
    return bytes(out + b"\r\n")


@atheris.instrument_func
def s3_body_roundtrip(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    sizes = [fdp.ConsumeIntInRange(0, 40) for _ in range(fdp.ConsumeIntInRange(0, 6))]
    trailer = fdp.PickValueInList(["", "crc32", "sha256"])
    outer = fdp.PickValueInList(["length", "chunked"])
    outer_sizes = [fdp.ConsumeIntInRange(1, 50) for _ in range(fdp.ConsumeIntInRange(0, 4))]
    read_size = fdp.ConsumeIntInRange(1, 70)
    payload = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 200))
    headers = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(payload)),
               "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER"}
    if trailer:
        headers["x-amz-trailer"] = f"x-amz-checksum-{trailer}"
    inner = _frame_aws_chunked(payload, sizes, trailer)
    if outer == "chunked":
        headers["Transfer-Encoding"] = "chunked"
        wire = _frame_http_chunked(inner, outer_sizes)
    else:
        headers["Content-Length"] = str(len(inner))
        wire = inner
    next_request = b"GET /next HTTP/1.1\r\n\r\n"
    sock = io.BytesIO(wire + next_request)
    b = s3body.open_body(sock, headers, lambda: None)
    got = b"".join(b.chunks(read_size))
    if got != payload:
        raise Finding(f"decoded {got!r}, framed {payload!r} (sizes {sizes}, outer {outer} {outer_sizes})")
    left = sock.read()
    if left != next_request:
        raise Finding(f"after the body the connection holds {left!r}, not the next request")


@atheris.instrument_func
def glob(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    pattern = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 40))
    try:
        g = pglob.compile_glob(pattern)
    except InvalidArgument:
        return
    for _ in range(3):
        path = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 30))
        g.match("/" + path.lstrip("/"))


_BAD_VALUE_ERRORS = ("invalid literal for int()", "not enough values to unpack", "too many values to unpack")


@atheris.instrument_func
def refs_target(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    which = fdp.ConsumeIntInRange(0, 4)
    arg = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 60))
    parse = [refs.parse_file, refs.parse_commit, refs.parse_branch, refs.parse_job, refs.parse_repo][which]
    try:
        parse(arg)
    except ValueError as e:
        if not str(e) or str(e).startswith(_BAD_VALUE_ERRORS):
            raise Finding(f"{parse.__name__}({arg!r}) failed without saying what is wrong: {e!r}") from e


@atheris.instrument_func
def spec(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    text = fdp.ConsumeUnicodeNoSurrogates(fdp.remaining_bytes())
    try:
        pspec.load_specs(text)
    except InvalidArgument as e:
        if not str(e):
            raise Finding(f"an empty error for spec {text!r}") from e


@atheris.instrument_func
def s3_xml(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    root = fdp.PickValueInList(["Delete", "CompleteMultipartUpload", "CreateBucketConfiguration", "Tagging"])
    doc = fdp.ConsumeBytes(fdp.remaining_bytes())
    try:
        e = xmlutil.parse(doc, root)
    except S3Error as err:
        if err.code != "MalformedXML":
            raise Finding(f"a bad document answered {err.code}, not MalformedXML") from err
        return
    if e.tag != root:
        raise Finding(f"parsed a <{e.tag}> document as <{root}>")


@atheris.instrument_func
def selftest(data: bytes) -> None:
    if data[:4] == b"PACH":
        raise Finding("the planted finding: the runner must report this input")


TARGETS = {"s3-body": s3_body, "s3-body-roundtrip": s3_body_roundtrip, "glob": glob, "refs": refs_target,
           "spec": spec, "s3-xml": s3_xml, "selftest": selftest}
SEEDS = {  # a starting input for each target, so short runs begin from something well-formed
    "spec": b'{"pipeline": {"name": "p"}, "transform": {"cmd": ["sh"]}, "input": {"pfs": {"repo": "r", "glob": "/*"}}}',
    "s3-xml": b"\x00<Delete><Object><Key>a</Key></Object><Quiet>true</Quiet></Delete>",
    "refs": b"\x01images@master^2:/a/b.png",
    "glob": b"\x10/*/{a,b}[0-9]?**",
}


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(argv) >= 2 else 2
    if argv[1] == "--list":
        print("\n".join(TARGETS))
        return 0
    name = argv[1]
    if name not in TARGETS:
        print(f"unknown target {name!r}; targets: {', '.join(TARGETS)}", file=sys.stderr)
        return 2
    flags = argv[2:]
    if name in SEEDS and not any(not f.startswith("-") for f in flags):
        import tempfile
        from pathlib import Path
        corpus = Path(tempfile.mkdtemp(prefix=f"atheris-{name}-"))
        (corpus / "seed").write_bytes(SEEDS[name])
        flags.append(str(corpus))
    atheris.Setup([argv[0], *flags], TARGETS[name])
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
