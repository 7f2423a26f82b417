"""Where an original checkpoint is hosted and how it can be downloaded: a registry ``source.url``
-> a :class:`SourcePlan` (no network here).

Hosts with a direct download: Google Drive (``uc?export=download&id=``, then its large-file
confirmation step), GitHub release assets, Zenodo (``?download=1``), Dropbox (``dl=1``),
Hugging Face Hub files (through huggingface_hub and ``HF_ENDPOINT``) and any other plain https
file (``direct``).  Hosts without one (SharePoint/OneDrive, Baidu Pan) are ``manual``: the file
is downloaded by hand and handed over with ``--from-dir``.

``ZOO_SOURCE_REWRITE`` redirects source hosts (tests, a local mirror of the originals):
``host=base[,host=base...]``; ``https://host/path?query`` becomes ``base/path?query``, also for
every redirect the hosts send; host ``*`` stands for every host not named, and ``{host}`` in a
base is replaced by the original host (``*=http://127.0.0.1:8000/{host}``).  Only rewritten
URLs may use plain http.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from zoo.errors import WeightsError
from zoo.weights.refs import is_repo_id, is_revision

REWRITE_ENV = "ZOO_SOURCE_REWRITE"
ALLOW_ENV = "ZOO_ALLOW_SOURCE_FETCH"


def source_fetch_allowed() -> bool:
    """Whether ``pretrained=True`` may fetch and convert originals by itself (the explicit
    opt-in ``ZOO_ALLOW_SOURCE_FETCH=1``)."""
    return os.environ.get(ALLOW_ENV, "").strip().lower() in ("1", "true", "yes", "on")

Kind = Literal["gdrive", "github", "zenodo", "dropbox", "hub", "direct", "manual"]

_MANUAL_HOSTS = {
    "sharepoint.com": "SharePoint/OneDrive links need a browser session",
    "onedrive.live.com": "OneDrive links need a browser session",
    "1drv.ms": "OneDrive links need a browser session",
    "pan.baidu.com": "Baidu Pan needs an account and its client",
    "yun.baidu.com": "Baidu Pan needs an account and its client",
}
_DRIVE_ID = re.compile(r"^[A-Za-z0-9_-]{10,200}$")


@dataclass(frozen=True)
class SourcePlan:
    """How one source URL is fetched.

    ``kind``: the host kind; ``url``: the published URL; ``download_url``: the URL that yields
    the file (None for ``manual`` and ``hub``); ``hub``: ``(repo_id, revision, filename)`` of a
    Hub file; ``reason``: why a ``manual`` source cannot be downloaded; ``filename``: a file
    name for the download (from the URL where it has one)."""

    kind: Kind
    url: str
    download_url: str | None = None
    hub: tuple[str, str, str] | None = None
    reason: str | None = None
    filename: str | None = None

    @property
    def downloadable(self) -> bool:
        return self.kind != "manual"


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def _endswith_domain(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


def _name_from_path(path: str) -> str | None:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return name if "." in name and safe_filename(name) == name else None


def safe_filename(name: str) -> str:
    """A file name that is safe to create in a folder (no separators, no leading dots, bounded)."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", name).lstrip(".")[:150]
    return name or "download"


def plan_source(url: str) -> SourcePlan:
    """The download plan of a registry source URL (https only; nothing is fetched)."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise WeightsError(f"source URL {url!r}: zoo downloads originals over https only")
    host = parts.hostname.lower()
    for domain, reason in _MANUAL_HOSTS.items():
        if _endswith_domain(host, domain):
            return SourcePlan("manual", url, reason=reason)
    query = parse_qs(parts.query)
    if host in ("drive.google.com", "docs.google.com"):
        m = re.match(r"^/file/d/([^/]+)", parts.path)
        file_id = m.group(1) if m else next(iter(query.get("id") or []), None)
        if not file_id or not _DRIVE_ID.match(file_id):
            return SourcePlan("manual", url, reason="a Google Drive link that names no file id "
                              "(a folder?)")
        return SourcePlan("gdrive", url, "https://drive.google.com/uc?" + urlencode(
            {"export": "download", "id": file_id}))
    if host == "huggingface.co":
        segs = parts.path.strip("/").split("/")
        if len(segs) >= 5 and segs[2] == "resolve":
            repo, rev, filename = f"{segs[0]}/{segs[1]}", segs[3], "/".join(segs[4:])
            if is_repo_id(repo) and is_revision(rev) and ".." not in filename.split("/"):
                return SourcePlan("hub", url, hub=(repo, rev, filename),
                                  filename=_name_from_path(filename))
        return SourcePlan("manual", url, reason="a Hugging Face page, not a file "
                          "(.../resolve/<revision>/<file>)")
    name = _name_from_path(parts.path)
    if host == "github.com" and "/releases/download/" in parts.path:
        return SourcePlan("github", url, url, filename=name)
    if _endswith_domain(host, "zenodo.org"):
        q = {k: v[-1] for k, v in query.items()}
        q["download"] = "1"
        return SourcePlan("zenodo", url, urlunsplit(parts._replace(query=urlencode(q))),
                          filename=name)
    if _endswith_domain(host, "dropbox.com"):
        q = {k: v[-1] for k, v in query.items()}
        q["dl"] = "1"
        return SourcePlan("dropbox", url, urlunsplit(parts._replace(query=urlencode(q))),
                          filename=name)
    return SourcePlan("direct", url, url, filename=name)


# -- redirection of hosts (tests, local mirrors) -----------------------------------------------

def rewrite_map() -> dict[str, str]:
    """``ZOO_SOURCE_REWRITE`` parsed: host (or ``*``: any other) -> base URL (checked; it may
    hold ``{host}``, replaced by the original host)."""
    text = os.environ.get(REWRITE_ENV, "").strip()
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in re.split(r"[,\s]+", text))):
        host, sep, base = item.partition("=")
        probe = urlsplit(base.replace("{host}", "h"))
        if (not sep or not re.match(r"^(\*|[a-z0-9.-]+)$", host.lower())
                or probe.scheme not in ("http", "https") or not probe.hostname
                or probe.query or probe.fragment or "{" in base.replace("{host}", "")):
            raise WeightsError(f"{REWRITE_ENV}: malformed entry {item!r}; use "
                               "host=http(s)://server[/prefix] (host * for any other host; the "
                               "prefix may hold {host}), comma-separated")
        out[host.lower()] = base.rstrip("/")
    return out


def rewrite(url: str, mapping: dict[str, str] | None = None) -> tuple[str, bool]:
    """``url`` with its host redirected per ``ZOO_SOURCE_REWRITE``; (url, whether rewritten)."""
    mapping = rewrite_map() if mapping is None else mapping
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    base = (mapping.get(host) or mapping.get("*")) if parts.scheme == "https" and host else None
    if base is None:
        return url, False
    tail = parts.path or "/"
    return base.replace("{host}", host) + tail + (f"?{parts.query}" if parts.query else ""), True


def release_hash_prefix(url: str) -> str | None:
    """The sha256 prefix a torch.hub-style release file name carries (``name-36c4ca4d.pth``:
    the file's sha256 starts with ``36c4ca4d``), or None."""
    m = re.search(r"-([0-9a-f]{8,64})\.(?:pth|pt|pth\.tar|bin)$", url.rsplit("/", 1)[-1])
    return m.group(1) if m else None
