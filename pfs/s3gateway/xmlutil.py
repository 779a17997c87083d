"""S3 XML in and out: a tiny builder for responses and a guarded parser for request bodies.

Invariants:
- Responses are UTF-8 documents in S3's namespace (`http://s3.amazonaws.com/doc/2006-03-01/`)
  with an XML declaration; text is escaped by ElementTree, never by hand.
- Request documents are read whole but bounded (`MAX_REQUEST_XML`) before parsing; element
  names are matched without their namespace, as S3 clients differ on whether they send one.
- Times: `iso8601` for XML (`2024-01-02T03:04:05.000Z`), `http_date` for headers (RFC 7231),
  both truncated to whole seconds so a listing and a HEAD of the same object agree.
"""
from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from email.utils import formatdate
from typing import Iterable, Optional, Union

from pfs.s3gateway.errors import S3Error

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_REQUEST_XML = 8 * 1024 * 1024

Child = Union["ET.Element", tuple, None]


def el(tag: str, *children: Child, text: Optional[object] = None) -> ET.Element:
    """An element with children. A child may be an Element, a (tag, text) pair, or None."""
    e = ET.Element(tag)
    if text is not None:
        e.text = str(text)
    add(e, children)
    return e


def add(parent: ET.Element, children: Iterable[Child]) -> ET.Element:
    for c in children:
        if c is None:
            continue
        if isinstance(c, tuple):
            tag, value = c
            if value is None:
                continue
            sub = ET.SubElement(parent, tag)
            sub.text = _text(value)
        else:
            parent.append(c)
    return parent


def _text(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def document(root: ET.Element, namespace: bool = True) -> bytes:
    if namespace:
        root.set("xmlns", NS)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


def parse(data: bytes, root_tag: str) -> ET.Element:
    """Parse a request document whose root must be `root_tag` (namespace ignored)."""
    if len(data) > MAX_REQUEST_XML:
        raise S3Error("MalformedXML", "request document is too large")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise S3Error("MalformedXML", f"could not parse the request document: {e}") from None
    for e in root.iter():
        if isinstance(e.tag, str) and "}" in e.tag:
            e.tag = e.tag.split("}", 1)[1]
    if root.tag != root_tag:
        raise S3Error("MalformedXML", f"expected a <{root_tag}> document, got <{root.tag}>")
    return root


def child_text(e: ET.Element, tag: str, default: Optional[str] = None) -> Optional[str]:
    c = e.find(tag)
    if c is None:
        return default
    return c.text or ""


def iso8601(ts: Optional[float]) -> str:
    """Whole seconds, like S3 (and like Last-Modified, so listings and HEAD agree)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(int(ts or 0)))


def http_date(ts: Optional[float]) -> str:
    return formatdate(int(ts or 0), usegmt=True)


def owner() -> ET.Element:
    return el("Owner", ("ID", "pachyderm"), ("DisplayName", "pachyderm"))
