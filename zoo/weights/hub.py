"""Hub downloads through ``huggingface_hub``'s cache (its locks, ``HF_HUB_OFFLINE``, revision
pinning), bounded in time, with transport failures turned into zoo errors.

Everything a server sends that becomes a cache path (``X-Repo-Commit``, ``ETag``,
``X-Linked-Etag``) is checked by a response hook on huggingface_hub's HTTP session before
huggingface_hub reads it (:func:`guard_session`); repo ids and revisions are checked before any
request (:mod:`zoo.weights.refs`).  Downloads that a killed process left behind
(``blobs/*.incomplete``) are removed once no process holds their lock.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from zoo.errors import (ChecksumMismatchError, HubConnectionError, HubResponseError, WeightsError,
                        WeightsNotCachedError)
from zoo.weights.refs import COMMIT as COMMIT_RE
from zoo.weights.refs import check_repo_id, check_revision, check_server_value

_CHECKED_HEADERS = ("x-repo-commit", "x-linked-etag", "etag")


def network_errors() -> tuple[type[BaseException], ...]:
    """Transport-level exception types of the HTTP client huggingface_hub uses."""
    found: list[type[BaseException]] = []
    for module, name in (("httpx2", "HTTPError"), ("httpx", "HTTPError"),
                         ("requests", "RequestException")):
        try:
            found.append(getattr(__import__(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(found)


def _not_cached(what: str) -> WeightsNotCachedError:
    return WeightsNotCachedError(
        f"{what}: not in the local cache and HF_HUB_OFFLINE is set. Fetch it once with network "
        f"access (`zoo download {what}`, or `zoo.create(..., pretrained=True)` with "
        "HF_HUB_OFFLINE unset), or copy the Hugging Face cache (HF_HUB_CACHE) from a machine "
        "that has it.")


def cached_hub_file(repo_id: str, filename: str, revision: str | None) -> Path | None:
    """The cached file of ``repo_id@revision/filename`` if huggingface_hub's cache has it (no
    network, nothing verified)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, revision=revision)
    return Path(found) if isinstance(found, str) else None


def _check_response(response: Any) -> None:
    """httpx response hook: refuse cache-path headers that are not the Hub's shapes (any
    response for ``X-Repo-Commit``; file resolutions for ETags)."""
    from huggingface_hub import constants

    headers = response.headers
    endpoint = constants.ENDPOINT
    resolve = "/resolve/" in urlsplit(str(response.request.url)).path
    for name in _CHECKED_HEADERS:
        value = headers.get(name)
        if value is not None and (name == "x-repo-commit" or resolve):
            check_server_value(name, value, endpoint)


def guard_session() -> None:
    """Install :func:`_check_response` on huggingface_hub's shared HTTP session (idempotent; a
    session recreated by ``set_client_factory``/``close_session`` gets it again here)."""
    from huggingface_hub.utils import get_session

    session = get_session()
    hooks = dict(session.event_hooks)
    if _check_response not in hooks.get("response", []):
        hooks["response"] = [*hooks.get("response", []), _check_response]
        session.event_hooks = hooks


def clean_stale_downloads(repo_id: str) -> list[Path]:
    """Remove ``blobs/*.incomplete`` files of ``repo_id`` that no process is writing (their
    ``<etag>.lock`` is free): what a download killed with ``kill -9`` leaves behind."""
    from filelock import FileLock, Timeout
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    folder = repo_folder_name(repo_id=repo_id, repo_type="model")
    blobs = Path(constants.HF_HUB_CACHE) / folder / "blobs"
    locks = Path(constants.HF_HUB_CACHE) / ".locks" / folder
    removed: list[Path] = []
    if not blobs.is_dir():
        return removed
    for part in sorted(blobs.glob("*.incomplete")):
        etag = part.name.split(".", 1)[0]
        lock = FileLock(str(locks / f"{etag}.lock"), timeout=0)
        try:
            locks.mkdir(parents=True, exist_ok=True)
            with lock:
                part.unlink(missing_ok=True)
                removed.append(part)
        except (Timeout, OSError):  # being written right now, or not ours to remove
            continue
    return removed


def _missing_errors() -> tuple[type[BaseException], ...]:
    from huggingface_hub.errors import (EntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    return (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError)


def hub_metadata(repo_id: str, filename: str, revision: str | None, what: str) -> Any:
    """One bounded metadata request (``HEAD``, ``HF_HUB_ETAG_TIMEOUT`` seconds, no retries) for
    a Hub file: huggingface_hub's ``HfFileMetadata`` (size, commit, etag), checked by
    :func:`guard_session`; transport failures and missing files as zoo errors."""
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    check_repo_id(repo_id)
    if revision is not None:
        check_revision(revision)
    if constants.HF_HUB_OFFLINE:
        raise _not_cached(what)
    transport: tuple[type[BaseException], ...] = (*network_errors(), OSError)
    timeout = constants.HF_HUB_ETAG_TIMEOUT
    guard_session()
    url = hf_hub_url(repo_id, filename, revision=revision)
    try:
        return get_hf_file_metadata(url, timeout=timeout)
    except HubResponseError:
        raise
    except _missing_errors() as e:
        raise WeightsError(f"{what}: {repo_id}@{revision or 'main'}/{filename} does not exist "
                           f"on the Hub ({type(e).__name__}). The registry record is wrong or "
                           "the repo was removed.") from None
    except OfflineModeIsEnabled:
        raise _not_cached(what) from None
    except HfHubHTTPError as e:
        raise HubConnectionError(f"{what}: the Hub at {constants.ENDPOINT} answered with an "
                                 f"error: {e}") from None
    except transport as e:
        raise HubConnectionError(
            f"{what}: cannot reach the Hub at {constants.ENDPOINT} within {timeout} s and the "
            f"file is not cached ({type(e).__name__}: {e}). Check the network / HF_ENDPOINT "
            "(HF_HUB_ETAG_TIMEOUT sets the wait), or set HF_HUB_OFFLINE=1 to use only cached "
            "files.") from None


def hub_download(repo_id: str, filename: str, revision: str | None, what: str, *,
                 expected_size: int | None = None, expected_sha256: str | None = None) -> Path:
    """Download through huggingface_hub's cache (its locks, resume, offline mode), bounded in time.

    A pinned commit that is cached is returned without any request.  Otherwise one metadata
    request (``HEAD``, ``HF_HUB_ETAG_TIMEOUT`` seconds, no retries) runs first so that an
    unreachable or hanging Hub fails fast with :class:`HubConnectionError` instead of waiting
    out huggingface_hub's retry back-off, and a file whose size differs from the registry's is
    refused before any byte of it is fetched.
    """
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    check_repo_id(repo_id)
    if revision is not None:
        check_revision(revision)
    pinned = revision is not None and COMMIT_RE.match(revision) is not None
    cached = cached_hub_file(repo_id, filename, revision)
    if cached is not None and (pinned or constants.HF_HUB_OFFLINE):
        return cached
    if constants.HF_HUB_OFFLINE:
        raise _not_cached(what)
    timeout = constants.HF_HUB_ETAG_TIMEOUT
    if cached is None:
        meta = hub_metadata(repo_id, filename, revision, what)
        if expected_size is not None and meta.size is not None and meta.size != expected_size:
            raise ChecksumMismatchError(
                what, expected_sha256 or "?",
                f"a file of {meta.size} bytes where the registry records {expected_size} "
                f"({repo_id}@{revision}/{filename}; nothing was downloaded)")
    transport: tuple[type[BaseException], ...] = (*network_errors(), OSError)
    missing = _missing_errors()
    guard_session()
    clean_stale_downloads(repo_id)
    try:
        path = Path(hf_hub_download(repo_id, filename, revision=revision, library_name="zoo",
                                    etag_timeout=timeout))
    except HubResponseError:
        raise
    except missing as e:
        raise WeightsError(f"{what}: {repo_id}@{revision or 'main'}/{filename} does not exist on "
                           f"the Hub ({type(e).__name__}). The registry record is wrong or the "
                           "repo was removed.") from None
    except LocalEntryNotFoundError as e:
        if constants.HF_HUB_OFFLINE:
            raise _not_cached(what) from None
        raise HubConnectionError(
            f"{what}: cannot reach the Hub at {constants.ENDPOINT} and the file is not cached "
            f"({e.__cause__ or e}). Check the network/HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use "
            "only cached files.") from None
    except HfHubHTTPError as e:
        raise HubConnectionError(f"{what}: the Hub answered with an error: {e}") from None
    except transport as e:  # transfer failures that outlived huggingface_hub's retries
        raise HubConnectionError(f"{what}: download from {constants.ENDPOINT} failed "
                                 f"({type(e).__name__}: {e}); retry (the download resumes).") \
            from None
    clean_stale_downloads(repo_id)
    return path
