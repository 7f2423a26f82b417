"""Reading original (upstream) checkpoints safely, for ``zoo convert``.

Upstream checkpoints are usually pickles (``torch.save``).  Unpickling can run arbitrary code,
so zoo reads them only with ``torch.load(weights_only=True)``: PyTorch's restricted unpickler,
which builds tensors, containers and primitive values and refuses every other global.  A few
harmless types that training scripts commonly store next to the weights are allowed explicitly
(:data:`SAFE_GLOBALS`: ``argparse.Namespace`` for saved command-line args, numpy scalars and
dtypes for saved metrics); anything else makes :func:`load_original_checkpoint` raise
:class:`~zoo.errors.CheckpointError` naming the refused global.  zoo never calls this on a file
it downloaded itself: weights from the network are safetensors only.
"""
from __future__ import annotations

import argparse
import io
import pickle
import re
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import CheckpointError

if TYPE_CHECKING:
    import torch

# Keys under which training scripts nest the state dict, in the order they are tried.
WRAPPER_KEYS = ("state_dict", "model", "net", "network")
EMA_KEYS = ("model_ema", "state_dict_ema", "ema")


def _numpy_globals() -> list[Any]:
    """numpy scalar reconstruction and dtypes (metrics such as ``best_acc1`` saved as numpy)."""
    try:
        import numpy as np
    except ImportError:
        return []
    found: list[Any] = [np.dtype]
    for mod in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            found.append(getattr(__import__(mod, fromlist=["scalar"]), "scalar"))
            break
        except (ImportError, AttributeError):
            continue
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        found += [getattr(dtypes, n) for n in ("Float64DType", "Float32DType", "Int64DType",
                                               "Int32DType", "BoolDType") if hasattr(dtypes, n)]
    return found


def safe_globals() -> list[Any]:
    """The globals zoo allows in original checkpoints, beyond torch's own weights-only set."""
    return [argparse.Namespace, *_numpy_globals()]


SAFE_GLOBALS_DOC = "argparse.Namespace, numpy scalars and dtypes"


def load_original_checkpoint(path: str | Path, *, extra_safe_globals: Iterable[Any] = (),
                             use_ema: bool = False) -> dict[str, "torch.Tensor"]:
    """The state dict of an upstream checkpoint file, read without executing any code from it.

    Args:
        path: a ``torch.save`` file (zip or legacy pickle) or a ``.safetensors`` file.
        extra_safe_globals: further classes/functions to allow in the pickle; only pass types
            whose construction cannot run code (plain data classes), and only if you trust them.
        use_ema: take the EMA weights (``model_ema``/``state_dict_ema``/``ema``); a file without
            them is an error (never the raw weights in their place).

    Returns:
        ``{name: tensor}``, unwrapped from ``{"state_dict": ...}``, ``{"model": ...}``,
        ``{"net": ...}`` (or the EMA keys) containers.

    Raises:
        CheckpointError: unreadable file, a pickle that needs a global outside the allow-list
            (nothing from it was executed), or no state dict inside.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file" if not path.exists() else
                              f"{path}: not a regular file (a folder, pipe or device)")
    not_a_checkpoint = _sniff(path)
    if not_a_checkpoint:
        raise CheckpointError(not_a_checkpoint)
    if path.suffix == ".safetensors":
        from zoo.weights.reader import load_safetensors

        try:
            tensors, _ = load_safetensors(path, "original checkpoint")
        except Exception as e:  # CorruptWeightsError -> the conversion's error type
            raise CheckpointError(str(e)) from None
        return tensors
    try:
        obj = _torch_load(path, extra_safe_globals)
    except pickle.UnpicklingError as e:
        raise CheckpointError(_unsafe_message(path, str(e))) from None
    except (zipfile.BadZipFile, EOFError, RuntimeError, ValueError, OSError, AttributeError,
            ImportError, TypeError, KeyError, IndexError) as e:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint "
                              f"({type(e).__name__}: {_first_line(str(e))})") from None
    return _unwrap(obj, path, use_ema)


def _torch_load(source: Any, extra_safe_globals: Iterable[Any] = ()) -> Any:
    """The one ``torch.load`` in zoo: ``weights_only`` with zoo's allow-list, on the CPU."""
    import torch

    allowed = [*safe_globals(), *extra_safe_globals]
    with torch.serialization.safe_globals(allowed), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "pickle protocol 4" notices
        return torch.load(source, map_location="cpu", weights_only=True, mmap=False)


def _storage_from_bytes(data: bytes) -> Any:
    """``torch.storage._load_from_bytes`` (how ``pickle.dump`` stores a tensor's storage: a
    legacy ``torch.save`` file), through :func:`_torch_load`."""
    return _torch_load(io.BytesIO(data))


_REFUSED = "it needs the global"


class _TensorUnpickler(pickle.Unpickler):
    """Unpickles ``pickle.dump(tensor)`` files and nothing else: the only globals it resolves
    rebuild one tensor from its storage bytes (read by ``weights_only`` loading)."""

    def find_class(self, module: str, name: str) -> Any:
        import collections

        import torch

        allowed = {("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
                   ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
                   ("collections", "OrderedDict"): collections.OrderedDict}
        try:
            return allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"{_REFUSED} `{module}.{name}`, which is not "
                                         "plain data") from None


def load_pickled_tensor(path: str | Path) -> "torch.Tensor":
    """The one tensor of a file written by ``pickle.dump(tensor)`` (upstream code keeps e.g. fixed
    classifier bases so), read without executing anything from the file; on the CPU."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file" if not path.exists() else
                              f"{path}: not a regular file")
    try:
        with path.open("rb") as f:
            obj = _TensorUnpickler(f).load()
    except pickle.UnpicklingError as e:
        if str(e).startswith(_REFUSED):
            raise CheckpointError(_unsafe_message(path, str(e))) from None
        raise CheckpointError(f"{path}: not a pickled tensor ({_first_line(str(e))})") from None
    except (EOFError, RuntimeError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise CheckpointError(f"{path}: not a pickled tensor ({type(e).__name__}: "
                              f"{_first_line(str(e))})") from None
    if not isinstance(obj, torch.Tensor):
        raise CheckpointError(f"{path}: expected one pickled tensor, got {type(obj).__name__}")
    return obj.detach().cpu().contiguous()


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:300] if text.strip() else ""


_ADVICE = ("weights_only", "re-running", "re-run", "documentation", "trusted source",
           "allowlist", "add_safe_globals")


def _unsafe_message(path: Path, text: str) -> str:
    """What was refused, in zoo's words: the global the pickle asked for (torch's message also
    suggests loading with ``weights_only=False``, which is exactly what must not be done)."""
    found = re.search(r"GLOBAL\s+([A-Za-z_][\w.]*)", text)
    if found:
        reason = f"it needs the global `{found.group(1)}`, which is not plain data"
    else:  # another unpickling failure: keep torch's own diagnosis, drop its advice
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()
                 and not any(a in ln.lower() for a in _ADVICE)]
        reason = " ".join(" ".join(lines).split())[:300] or "a malformed pickle"
    return (f"{path}: refused to unpickle ({reason}). Only tensors, containers, primitive values "
            f"and zoo's allow-list ({SAFE_GLOBALS_DOC}) may appear in an original checkpoint; "
            "unpickling anything else could run code, so nothing from the file was executed. If "
            "you trust the file and the type is plain data, pass it in extra_safe_globals; "
            "better, ask upstream for a safetensors file.")


def _sniff(path: Path) -> str | None:
    """Why ``path`` is not a checkpoint at all (an HTML page, plain text), or None."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head:
        return f"{path}: the file is empty, not a checkpoint; download it again"
    lowered = head.lstrip().lower()
    if lowered.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml")) or b"<html" in lowered[:512]:
        drive = b"google" in lowered or b"drive" in lowered
        return (f"{path}: this is an HTML page, not a checkpoint"
                + (" (Google Drive's 'can't scan for viruses' warning page?)" if drive else "")
                + ". The download saved the web page instead of the file: open the link in a "
                "browser and confirm the download, or use the host's direct-download link")
    if head.startswith((b"PK\x03\x04", b"\x80")) or path.suffix == ".safetensors":
        return None  # a zip (torch.save) or a legacy pickle; safetensors has its own checks
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return (f"{path}: this is a text file, not a checkpoint (it starts with "
            f"{head[:60].decode('utf-8', 'replace')!r}); download the checkpoint file itself")


def _is_state_dict(obj: Any) -> bool:
    import torch

    return (isinstance(obj, Mapping) and len(obj) > 0
            and all(isinstance(k, str) for k in obj)
            and any(isinstance(v, torch.Tensor) for v in obj.values()))


def _unwrap(obj: Any, path: Path, use_ema: bool) -> dict[str, "torch.Tensor"]:
    import torch

    if isinstance(obj, Mapping):
        keys = EMA_KEYS if use_ema else WRAPPER_KEYS
        for key in keys:
            inner = obj.get(key)
            if _is_state_dict(inner):
                obj = inner
                break
        else:
            if use_ema:
                raise CheckpointError(f"{path}: use_ema=True but no EMA weights "
                                      f"({', '.join(EMA_KEYS)}) in the checkpoint; drop "
                                      "--use-ema to convert its raw weights")
    if not _is_state_dict(obj):
        top = sorted(map(str, obj))[:10] if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(f"{path}: no state dict found (top level: {top}); expected tensors "
                              f"directly or under one of {', '.join(WRAPPER_KEYS)}")
    extras = sorted(k for k, v in obj.items() if not isinstance(v, torch.Tensor))
    if extras:
        raise CheckpointError(f"{path}: the state dict holds non-tensor entries {extras[:8]}")
    return dict(obj)
