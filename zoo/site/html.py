"""A tiny HTML/SVG builder that escapes by default.

Every string that reaches a page goes through :func:`el` (or :func:`esc`): text children and
attribute values are HTML-escaped, only :class:`Raw` (markup this package built itself) passes
through.  Text from specs and registry files therefore cannot inject markup or script.
"""
from __future__ import annotations

import html
from typing import Any, Iterable

VOID = frozenset({"meta", "link", "input", "br", "img", "hr"})


class Raw(str):
    """Markup built by this package (trusted); everything else is escaped."""

    __slots__ = ()


def esc(value: Any) -> str:
    """``value`` as HTML text (quotes escaped too, so it is also safe in attribute values)."""
    return value if isinstance(value, Raw) else html.escape(str(value), quote=True)


def safe_url(url: str) -> str:
    """A link target from data: http(s) URLs and relative paths only (no ``javascript:``)."""
    text = str(url).strip()
    lower = text.lower()
    if lower.startswith(("https://", "http://")):
        return text
    if ":" in text.split("/", 1)[0] or lower.startswith("//"):
        return "#"
    return text


def _attr_name(key: str) -> str:
    return key.rstrip("_").replace("_", "-") if key not in ("viewBox",) else key


def _children(items: Iterable[Any]) -> Iterable[str]:
    for item in items:
        if item is None or item is False:
            continue
        if isinstance(item, (list, tuple)):
            yield from _children(item)
        else:
            yield esc(item)


def el(tag: str, *children: Any, **attrs: Any) -> Raw:
    """``<tag attrs>children</tag>``; ``class_="x"`` -> ``class="x"``, ``data_sort`` ->
    ``data-sort``; attributes that are None or False are left out, True ones are bare; ``href``
    and ``src`` go through :func:`safe_url`."""
    parts = [tag]
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        name = _attr_name(key)
        if value is True:
            parts.append(name)
            continue
        if name in ("href", "src"):
            value = safe_url(value)
        parts.append(f'{name}="{esc(value)}"')
    open_tag = "<" + " ".join(parts) + ">"
    if tag in VOID:
        return Raw(open_tag)
    return Raw(open_tag + "".join(_children(children)) + f"</{tag}>")


def join(*items: Any) -> Raw:
    """Concatenate children (escaping non-Raw ones)."""
    return Raw("".join(_children(items)))
