"""Hub identifiers, checked before they reach a request or a cache path: repo ids and revisions
(from users, registry records and config files) and the commit hashes and ETags a server sends.

huggingface_hub turns these into file names in its cache (``refs/<revision>``,
``snapshots/<commit>/``, ``blobs/<etag>``); a value holding ``..`` or a path separator would
write outside it.  zoo accepts only the shapes the Hub itself produces.
"""
from __future__ import annotations

import re

from zoo.errors import HubResponseError, WeightsError

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
_REF_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}$")
# what the Hub sends as ETag: a git blob id (40 hex) or, for LFS files, the sha256 (64 hex)
ETAG = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_HUB_PREFIX = "hf-hub:"


def is_repo_id(value: str) -> bool:
    return (bool(REPO_ID.match(value)) and ".." not in value and "--" not in value
            and not value.endswith((".", ".git")))


def is_revision(value: str) -> bool:
    """A full commit hash, or a git ref name (``main``, ``v1.0``, ``refs/pr/1``)."""
    if COMMIT.match(value):
        return True
    if not 0 < len(value) <= 255:
        return False
    return all(_REF_SEGMENT.match(seg) and seg not in (".", "..") and not seg.endswith(".lock")
               and ".." not in seg for seg in value.split("/"))


def check_repo_id(value: str, what: str = "repo id") -> str:
    if not is_repo_id(value):
        raise WeightsError(f"invalid Hub {what} {_show(value)}: use org/name (letters, digits, "
                           "'-', '_', '.'; no '..' or '--'; at most 96 characters each)")
    return value


def check_revision(value: str, what: str = "revision") -> str:
    if not is_revision(value):
        raise WeightsError(f"invalid Hub {what} {_show(value)}: use a full commit hash (40 hex "
                           "digits) or a branch/tag name such as main, v1.0 or refs/pr/1 (no "
                           "'..', no empty or dot-only path segments)")
    return value


def is_hub_reference(text: str) -> bool:
    return text.startswith(_HUB_PREFIX)


def parse_hub_reference(text: str) -> tuple[str, str | None]:
    """``hf-hub:org/repo[@revision]`` -> ``(repo_id, revision or None)``, both checked."""
    if not is_hub_reference(text):
        raise WeightsError(f"not a Hub reference: {_show(text)} (use hf-hub:org/repo[@revision])")
    body = text[len(_HUB_PREFIX):]
    repo, sep, rev = body.partition("@")
    if not repo:
        raise WeightsError(f"malformed weights reference {_show(text)}: use "
                           "hf-hub:org/repo[@revision]")
    check_repo_id(repo, f"repo id in {_show(text)}")
    if sep:
        check_revision(rev, f"revision in {_show(text)}")
        return repo, rev
    return repo, None


def normalize_etag(value: str) -> str:
    """An ETag header as huggingface_hub reads it (``W/`` and quotes stripped)."""
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')


def check_server_value(header: str, value: str, endpoint: str) -> None:
    """Refuse a response header that would become a cache path if it is not the Hub's shape."""
    if header == "x-repo-commit":
        ok = bool(COMMIT.match(value))
        shape = "a commit hash (40 hex digits)"
    else:
        ok = bool(ETAG.match(normalize_etag(value)))
        shape = "a content hash (40 or 64 hex digits)"
    if not ok:
        raise HubResponseError(
            f"the Hub at {endpoint} sent a {header} header that is not {shape}: {_show(value)}. "
            "zoo refused the response before writing anything; check HF_ENDPOINT (a mirror or "
            "proxy in between may be broken or hostile).")


def _show(value: str, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
