"""Weights: from a registry record, an ``hf-hub:`` repo or a local folder to a verified state dict,
and back out with :func:`save_pretrained`.

Downloads go through ``huggingface_hub.hf_hub_download`` (its cache, its file locks, so
concurrent processes download once; its progress bars; ``HF_HUB_OFFLINE``; revision pinning).
Registry files are sha256-checked before anything reads them: a mismatching file is deleted
from the cache and never loaded.  Only safetensors files are ever read from the network.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import (ChecksumMismatchError, CorruptWeightsError, HubConnectionError,
                        UnknownModelError, WeightsError, WeightsNotCachedError,
                        WeightsNotPublishedError)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from zoo.registry import WeightsRecord
    from zoo.spec import SpecBase

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
_STAMP = ".zoo-sha256"


def zoo_cache_dir() -> Path:
    """zoo's own cache (converted checkpoints): ``$ZOO_CACHE`` or ``~/.cache/zoo``."""
    env = os.environ.get("ZOO_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "zoo"


def sha256_file(path: str | Path, chunk: int = 8 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _stamp_path(blob: Path) -> Path:
    return blob.with_name(blob.name + _STAMP)


def verify_file(path: Path, sha256: str, size: int | None, what: str, *,
                trust_stamp: bool = True) -> None:
    """Check ``path`` against the expected size and sha256; remove it on mismatch.

    A verified file gets a stamp (hash, size, mtime) beside its cache blob so that later loads
    need not re-hash it; ``zoo verify`` re-hashes regardless (``trust_stamp=False``).
    """
    blob = path.resolve()
    st = blob.stat()
    stamp = _stamp_path(blob)
    token = f"{sha256} {st.st_size} {st.st_mtime_ns}"
    if trust_stamp and stamp.exists() and stamp.read_text() == token:
        return
    actual = sha256_file(blob)
    wrong_size = size is not None and st.st_size != size
    if actual != sha256 or wrong_size:
        stamp.unlink(missing_ok=True)
        blob.unlink(missing_ok=True)
        if path.is_symlink() or path.exists():
            path.unlink(missing_ok=True)
        if wrong_size:  # the error still names the actual hash, the size says why
            what = f"{what} ({st.st_size} bytes where {size} are recorded)"
        raise ChecksumMismatchError(what, sha256, actual)
    try:
        stamp.write_text(token)
    except OSError:  # a read-only cache still loads, it just re-hashes next time
        pass


# safetensors dtype names -> torch dtypes (the ones zoo reads without the library's loader)
_ST_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
              "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
              "BOOL": "bool"}


def _read_aligned(path: Path) -> dict[str, "torch.Tensor"] | None:
    """Read every tensor of a (header-validated) safetensors file into its own fresh, allocator-
    aligned storage, one ``readinto`` per tensor.

    ``safetensors.torch.load_file`` returns views into one buffer at the file's byte offsets,
    which are rarely 64-byte aligned; CPU kernels then take other vectorised paths than for the
    same values in fresh tensors, and outputs differ in the last bits from a model built and
    loaded the slow way.  Fresh tensors cost the same memory (the file's size) and make the fast
    pretrained path bit-identical to the slow one.  Returns None where this reader does not apply
    (a big-endian host, a dtype it does not map): the caller falls back to the library."""
    import torch

    if sys.byteorder != "little":
        return None
    out: dict[str, torch.Tensor] = {}
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
        header.pop("__metadata__", None)
        start = 8 + n
        entries = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
        if any(info["dtype"] not in _ST_DTYPES for _, info in entries):
            return None
        for key, info in entries:
            t = torch.empty(info["shape"], dtype=getattr(torch, _ST_DTYPES[info["dtype"]]))
            begin, end = info["data_offsets"]
            if t.numel() * t.element_size() != end - begin:
                raise ValueError(f"tensor {key!r}: {end - begin} bytes for shape {info['shape']}")
            if end > begin:
                fh.seek(start + begin)
                if fh.readinto(memoryview(t.view(-1).view(torch.uint8).numpy())) != end - begin:
                    raise ValueError(f"tensor {key!r} is cut short")
            out[key] = t
    return out


def load_safetensors(path: str | Path, what: str) -> tuple[dict[str, "torch.Tensor"], dict[str, str]]:
    """Read a safetensors file (tensors, metadata); :class:`CorruptWeightsError` if it is not one.
    The safetensors library validates the header; the tensors are read into aligned storage
    (:func:`_read_aligned`)."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = _read_aligned(path)
        return (load_file(str(path)) if tensors is None else tensors), metadata
    except (SafetensorError, OSError, ValueError, RuntimeError, KeyError, TypeError,
            struct.error) as e:
        raise CorruptWeightsError(
            f"{what}: {path} is not a valid safetensors file ({e}). Delete it and download or "
            "convert it again.") from None


# -- where weights come from -----------------------------------------------------------------

@dataclass
class WeightsSource:
    """A resolved, verified weights file and how to read it into zoo's layout."""

    path: Path
    what: str
    tag: str | None = None
    layout: str = "zoo"
    num_classes: int | None = None
    config: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return self.what

    def read(self) -> tuple[dict[str, "torch.Tensor"], dict[str, str]]:
        return load_safetensors(self.path, self.what)

    def load(self, spec: "SpecBase") -> dict[str, "torch.Tensor"]:
        """The state dict in zoo's layout (the family converts an ``original`` layout)."""
        state_dict, metadata = self.read()
        arch = metadata.get("zoo_architecture")
        if self.layout == "zoo" and arch and arch != spec.name:
            from zoo.errors import StateDictMismatchError

            raise StateDictMismatchError(
                f"{self.what} holds weights of {arch}, not of {spec.name} (its safetensors "
                "metadata says so); nothing was loaded. Load it with the model it was saved from.")
        if self.layout == "original":
            from zoo.build import convert_checkpoint

            state_dict = convert_checkpoint(spec.name, state_dict)
        return state_dict


COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


def _network_errors() -> tuple[type[BaseException], ...]:
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


def _hub_download(repo_id: str, filename: str, revision: str | None, what: str, *,
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
    network = _network_errors()
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
        except (*network, OSError) as e:
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
    except (*network, OSError) as e:  # transfer failures that outlived huggingface_hub's retries
        raise HubConnectionError(f"{what}: download from {constants.ENDPOINT} failed "
                                 f"({type(e).__name__}: {e}); retry (the download resumes).") \
            from None


def converted_path(tag: str) -> Path:
    """Where ``zoo convert NAME.TAG CKPT`` stores a converted original checkpoint."""
    return zoo_cache_dir() / "converted" / tag / WEIGHTS_NAME


CONVERSION_RECORD = "conversion.json"


def read_conversion_record(tag: str) -> dict[str, Any] | None:
    """What ``zoo convert`` recorded beside a converted file (its sha256 and size, the source's
    sha256), or None for a file converted without one."""
    path = converted_path(tag).with_name(CONVERSION_RECORD)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise CorruptWeightsError(f"{path}: unreadable conversion record ({e}); run `zoo convert "
                                  f"{tag} <checkpoint>` again") from None
    if not (isinstance(doc, dict) and isinstance(doc.get("sha256"), str)
            and isinstance(doc.get("size"), int)):
        raise CorruptWeightsError(f"{path}: malformed conversion record; run `zoo convert {tag} "
                                  "<checkpoint>` again")
    return doc


def resolve_tag(spec: "SpecBase", tag: str | None) -> WeightsSource:
    """Registry weights of ``spec`` (``tag`` or the model's default tag), downloaded and verified."""
    from zoo.registry import default_tag, registry

    if tag is None:
        full = default_tag(spec.name)
        if full is None:
            raise WeightsNotPublishedError(
                f"{spec.name} has no published weights (no registry record). Build it without "
                "pretrained=True, or load your own with weights='path/or/hf-hub:repo'.")
    else:
        full = f"{spec.name}.{tag}"
        if full not in registry().records:
            raise UnknownModelError(full, registry().tags_of(spec.name) or registry().records,
                                    what="weights tag")
    record = registry().get(full)
    tag = full.split(".", 1)[1]
    if record.hub is None:
        local = converted_path(full)
        if local.exists():
            what = f"{full} (converted locally)"
            stamp = read_conversion_record(full)
            if stamp is not None:
                verify_file(local, stamp["sha256"], stamp["size"], what)
            return WeightsSource(local, what, tag, num_classes=record.num_classes)
        raise WeightsNotPublishedError(
            f"{full} is not published as safetensors; its original checkpoint must be converted "
            f"once: download {record.source.url}"
            + (f" (sha256 {record.source.sha256})" if record.source.sha256 else "")
            + f", then run `zoo convert {full} <downloaded file>`; zoo never unpickles files "
            "from the network itself.")
    hub = record.hub
    path = _hub_download(hub.repo_id, hub.filename, hub.revision, full,
                         expected_size=hub.size, expected_sha256=hub.sha256)
    verify_file(path, hub.sha256, hub.size, full)
    return WeightsSource(path, full, tag, layout=hub.layout, num_classes=record.num_classes)


_HF_HUB = re.compile(r"^hf-hub:(?P<repo>[\w.-]+/[\w.-]+)(?:@(?P<rev>[\w./-]+))?$")


def resolve_external(weights: str | Path, spec: "SpecBase") -> WeightsSource:
    """``hf-hub:org/repo[@rev]``, a ``.safetensors`` file, or a folder from save_pretrained."""
    text = str(weights)
    m = _HF_HUB.match(text)
    if m:
        repo, rev = m["repo"], m["rev"]
        path = _hub_download(repo, WEIGHTS_NAME, rev, text)
        config = _read_config(_hub_download(repo, CONFIG_NAME, rev, text)) \
            if _has_remote_config(repo, rev, text) else {}
        return _source_from(path, text, config)
    if text.startswith("hf-hub:"):
        raise WeightsError(f"malformed weights reference {text!r}: use hf-hub:org/repo[@revision]")
    path = Path(weights)
    if path.is_dir():
        file = path / WEIGHTS_NAME
        if not file.exists():
            raise WeightsNotCachedError(f"{path} has no {WEIGHTS_NAME}")
        config = _read_config(path / CONFIG_NAME) if (path / CONFIG_NAME).exists() else {}
        return _source_from(file, str(path), config)
    if path.is_file():
        if path.suffix != ".safetensors":
            raise WeightsError(f"{path}: zoo loads only .safetensors files; convert other "
                               "checkpoints with `zoo convert`")
        return _source_from(path, str(path), {})
    raise WeightsNotCachedError(f"no weights at {path}")


def _has_remote_config(repo: str, rev: str | None, what: str) -> bool:
    try:
        _hub_download(repo, CONFIG_NAME, rev, what)
        return True
    except WeightsError as e:
        if isinstance(e, (HubConnectionError, WeightsNotCachedError)):
            raise
        return False


def _read_config(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise CorruptWeightsError(f"{path}: unreadable config.json ({e})") from None


def _source_from(path: Path, what: str, config: dict[str, Any]) -> WeightsSource:
    zoo_meta = config.get("zoo", {})
    return WeightsSource(path, what, tag=zoo_meta.get("tag"),
                         layout=zoo_meta.get("layout", "zoo"),
                         num_classes=config.get("num_classes"), config=config)


# -- writing -----------------------------------------------------------------------------------

def _model_card(name: str, cfg: dict[str, Any], spec: "SpecBase", metrics: dict[str, Any] | None,
                license_: str | None) -> str:
    import yaml

    front: dict[str, Any] = {"library_name": "timm", "license": (license_ or "other").lower(),
                             "tags": ["image-classification", "timm", "zoo", spec.family],
                             "pipeline_tag": "image-classification"}
    if metrics and metrics.get("top1") is not None:
        results = [{"task": {"type": "image-classification"},
                    "dataset": {"name": metrics.get("dataset", "imagenet-1k"),
                                "type": metrics.get("dataset", "imagenet-1k")},
                    "metrics": [{"type": "accuracy", "name": "top-1", "value": metrics["top1"]}]
                    + ([{"type": "accuracy", "name": "top-5", "value": metrics["top5"]}]
                       if metrics.get("top5") is not None else [])}]
        front["model-index"] = [{"name": name, "results": results}]
    paper = spec.paper
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "",
             f"# {name}", "", spec.description or f"{spec.family} model built by zoo.", "",
             f"- Paper: {paper.title}" + (f" (arXiv:{paper.arxiv})" if paper.arxiv else ""),
             f"- Original code: {paper.code or 'n/a'}",
             f"- Input size: {tuple(cfg['input_size'])}, classes: {cfg['num_classes']}", "",
             "## Use", "", "```python", "import zoo, timm",
             f'model = timm.create_model("hf-hub:<this repo>", pretrained=True)  # or zoo.create("{name}", weights="hf-hub:<this repo>")',
             "```", ""]
    return "\n".join(lines)


def save_pretrained(model: "nn.Module", directory: str | Path, *, tag: str | None = None,
                    metrics: dict[str, Any] | None = None, packed: bool = False) -> Path:
    """Write ``model.safetensors`` + timm-style ``config.json`` + a model card ``README.md``.

    The folder loads back with ``zoo.create(name, weights=directory)`` and, pushed to the Hub,
    with ``timm.create_model("hf-hub:org/repo", pretrained=True)``.  With ``packed=True`` a
    quantized model writes its deployable form (``model.packed_state_dict()``).
    """
    from safetensors.torch import save_file

    from zoo.build import get_spec

    cfg = dict(getattr(model, "pretrained_cfg", {}) or {})
    name = cfg.get("architecture")
    if not name:
        raise WeightsError("save_pretrained needs a zoo model (its pretrained_cfg names the "
                           "architecture); build it with zoo.create")
    spec = get_spec(name)
    if packed:
        if not hasattr(model, "packed_state_dict"):
            raise WeightsError(f"{name} has no packed (deployable) form")
        state_dict = model.packed_state_dict()
    else:
        state_dict = model.state_dict()
    seen: dict[int, str] = {}
    tensors = {}
    for k, v in state_dict.items():
        ptr = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape)) if v.numel() else None
        if ptr is not None and ptr in seen:
            raise WeightsError(f"{name}: state-dict entries {seen[ptr]!r} and {k!r} share one "
                               "tensor; zoo models must hold shared weights once")
        if ptr is not None:
            seen[ptr] = k
        tensors[k] = v.detach().to("cpu").contiguous()
    num_classes = getattr(model, "num_classes", cfg.get("num_classes"))
    cfg["num_classes"] = num_classes
    cfg["input_size"] = list(cfg.get("input_size", spec.data.input_size))
    cfg.pop("tag", None)
    layout = "packed" if packed else "zoo"
    config = {"architecture": name, "num_classes": num_classes,
              "num_features": getattr(model, "num_features", None),
              "pretrained_cfg": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()
                                 if k != "architecture"},
              "zoo": {"spec": spec.model_dump(mode="json"), "layout": layout, "tag": tag}}
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".zoo-save-", dir=directory))
    try:
        save_file(tensors, str(tmp / WEIGHTS_NAME),
                  metadata={"format": "pt", "zoo_architecture": name, "zoo_layout": layout})
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2, default=str))
        (tmp / "README.md").write_text(_model_card(name, cfg, spec, metrics, cfg.get("license")))
        for item in (WEIGHTS_NAME, CONFIG_NAME, "README.md"):
            os.replace(tmp / item, directory / item)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory
