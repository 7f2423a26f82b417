"""Safe, strict YAML reading and atomic writing for specs and the registry.

Specs and registry files are plain data: mappings, lists, strings, numbers, booleans.  The
loader is PyYAML's SafeLoader (no Python tags) with three extra rules: duplicate keys are
errors, anchors/aliases are refused (``extends`` and ``defaults`` cover reuse, and aliases are
how "billion laughs" documents blow up), and nesting depth is bounded.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

MAX_DEPTH = 32
MAX_BYTES = 4 * 1024 * 1024


class YamlDataError(ValueError):
    pass


if TYPE_CHECKING:
    _Base = yaml.SafeLoader
else:
    _Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's C parser where available


def _check_events(text: str) -> None:
    """Structure rules, on the parser's event stream: no anchors or aliases, bounded depth."""
    depth = 0
    for event in yaml.parse(text, Loader=_Base):
        line = event.start_mark.line + 1 if event.start_mark else "?"
        anchor = getattr(event, "anchor", None)
        if isinstance(event, yaml.events.AliasEvent):
            raise YamlDataError(f"line {line}: YAML aliases (*{anchor}) are not allowed in "
                                "zoo files; use `extends` or `defaults`")
        if anchor:
            raise YamlDataError(f"line {line}: YAML anchors (&{anchor}) are not allowed in "
                                "zoo files; use `extends` or `defaults`")
        if isinstance(event, yaml.events.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise YamlDataError(f"line {line}: nesting deeper than {MAX_DEPTH} levels")
        elif isinstance(event, yaml.events.CollectionEndEvent):
            depth -= 1


class _StrictLoader(_Base):
    """Safe constructor (no Python tags) that refuses duplicate and non-scalar keys."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise YamlDataError(f"line {key_node.start_mark.line + 1}: mapping keys must be "
                                    f"scalars, not {type(key).__name__}")
            if key in seen:
                raise YamlDataError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def loads(text: str, source: str = "<string>") -> Any:
    """Parse YAML text strictly; raise :class:`YamlDataError` with the source on any problem."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise YamlDataError(f"{source}: larger than {MAX_BYTES} bytes")
    try:
        _check_events(text)
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except YamlDataError as e:
        raise YamlDataError(f"{source}: {e}") from None
    except yaml.YAMLError as e:
        raise YamlDataError(f"{source}: not valid zoo YAML: {e}") from None
    except RecursionError:
        raise YamlDataError(f"{source}: nesting too deep") from None
    except (ValueError, OverflowError) as e:  # e.g. int() of a literal beyond 4300 digits
        raise YamlDataError(f"{source}: unreadable value: {e}") from None


def load(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise YamlDataError(f"{path}: not UTF-8 text ({e})") from None
    return loads(text, source=str(path))


def dumps(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def merge_spec(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``, field by field: sections that are mappings in both (``arch``,
    ``data``, ``paper``, ...) merge one level deep; a field's value is always replaced whole (so
    ``strides: {}`` or a new ``layers`` list replaces the base's, never mixes with it)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out
