"""Hub downloads through ``huggingface_hub``'s cache (its locks, resume, ``HF_HUB_OFFLINE``,
revision pinning), bounded in time, with transport failures turned into zoo errors."""
from __future__ import annotations

import re
from pathlib import Path

from zoo.errors import (ChecksumMismatchError, HubConnectionError, WeightsError,
                        WeightsNotCachedError)

COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


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


def hub_download(repo_id: str, filename: str, revision: str | None, what: str, *,
                  expected_size: int | None = None, expected_sha256: str | None = None) -> Path:
    """Download through huggingface_hub's cache (its locks, resume, offline mode), bounded in time.

    A pinned commit that is cached is returned without any request.  Otherwise one metadata
    request (``HEAD``, ``HF_HUB_ETAG_TIMEOUT`` seconds, no retries) runs first so that an
    unreachable or hanging Hub fails fast with :class:`HubConnectionError` instead of waiting
    out huggingface_hub's retry back-off, and a file whose size differs from the registry's is
    refused before any byte of it is fetched.
    """
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError,
                                        LocalEntryNotFoundError, OfflineModeIsEnabled,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    missing = (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError)
    pinned = revision is not None and COMMIT_RE.match(revision) is not None
    cached = cached_hub_file(repo_id, filename, revision)
    if cached is not None and (pinned or constants.HF_HUB_OFFLINE):
        return cached
    if constants.HF_HUB_OFFLINE:
        raise _not_cached(what)
    transport: tuple[type[BaseException], ...] = (*network_errors(), OSError)
    timeout = constants.HF_HUB_ETAG_TIMEOUT
    if cached is None:
        url = hf_hub_url(repo_id, filename, revision=revision)
        try:
            meta = get_hf_file_metadata(url, timeout=timeout)
        except missing as e:
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
        if expected_size is not None and meta.size is not None and meta.size != expected_size:
            raise ChecksumMismatchError(
                what, expected_sha256 or "?",
                f"a file of {meta.size} bytes where the registry records {expected_size} "
                f"({repo_id}@{revision}/{filename}; nothing was downloaded)")
    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision, library_name="zoo",
                                    etag_timeout=timeout))
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


