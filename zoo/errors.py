"""zoo's exceptions: each says what is wrong and how to fix it.

Every error zoo raises on purpose derives from :class:`ZooError`, so callers can catch
one type.  Subclasses also derive from the matching built-in (``KeyError``, ``ValueError``,
``OSError``) so generic handlers keep working.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence


class ZooError(Exception):
    """Base class of every error zoo raises deliberately."""


class SpecError(ZooError, ValueError):
    """A spec (YAML file or dict) is malformed: names the source, the model and the field path."""

    def __init__(self, message: str, *, source: str | None = None, model: str | None = None,
                 problems: Sequence[str] = ()):
        self.source, self.model, self.problems = source, model, list(problems)
        where = ", ".join(p for p in (f"in {source}" if source else "",
                                     f"model {model!r}" if model else "") if p)
        text = f"{message}" + (f" ({where})" if where else "")
        if self.problems:
            text += "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(text)


class UnknownArgumentError(ZooError, TypeError):
    """``zoo.create`` / ``timm.create_model`` got a keyword argument the model does not take."""


class UnknownModelError(ZooError, KeyError):
    """A model (or weights tag) name that no spec declares; suggests close matches."""

    def __init__(self, name: str, known: Iterable[str], what: str = "model"):
        self.name = name
        known = list(known)
        self.suggestions = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
        listing = {"family": "zoo families", "weights tag": "zoo list --pretrained"}.get(
            what, "zoo list")
        hint = (f" Did you mean: {', '.join(self.suggestions)}?" if self.suggestions
                else f" Run `{listing}` to see the {len(known)} known "
                f"{'families' if what == 'family' else what + 's'}.")
        self.message = f"unknown {what} {name!r}.{hint}"
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


class RegistryError(ZooError, ValueError):
    """The weights registry is malformed or inconsistent with the specs."""


class WeightsError(ZooError):
    """Base of everything that can go wrong between a weights record and a loaded model."""


class WeightsNotPublishedError(WeightsError, LookupError):
    """The tag names an original checkpoint that must be converted locally first."""


class WeightsNotCachedError(WeightsError, FileNotFoundError):
    """Offline mode and the weights are not in the local cache."""


class HubConnectionError(WeightsError, ConnectionError):
    """The Hub (or the emulator ``HF_ENDPOINT`` points at) cannot be reached."""


class HubResponseError(WeightsError, ValueError):
    """The Hub (or a mirror / proxy at ``HF_ENDPOINT``) sent something malformed or unsafe;
    it was refused before anything was written."""


class ChecksumMismatchError(WeightsError, ValueError):
    """A downloaded file's sha256 differs from the registry's record; the file was discarded."""

    def __init__(self, what: str, expected: str, actual: str):
        self.expected, self.actual = expected, actual
        super().__init__(
            f"{what}: sha256 mismatch: expected {expected}, got {actual}. The file was removed from "
            "the cache; retry, and if it persists the Hub file or the registry record is wrong "
            "(report it; never load it anyway).")


class SourceChecksumError(ChecksumMismatchError):
    """An original checkpoint (``zoo convert``, ``zoo fetch``, ``zoo mirror``) or one of its
    source's tensor files is not the published file: its sha256 differs from the registry's, or
    does not start with the prefix its release name carries.  The message names the file."""

    def __init__(self, what: str, expected: str, actual: str, url: str):
        self.expected, self.actual = expected, actual
        prefix = len(expected) < 64
        WeightsError.__init__(
            self,
            f"{what}: sha256 {actual} does not {'start with' if prefix else 'match'} the published "
            f"{expected}{' (the hash prefix in its release file name)' if prefix else ''}: it is "
            f"not the file the registry records. Download it again from {url}.")


class SourceDownloadError(WeightsError, ConnectionError):
    """An original checkpoint could not be downloaded from its host (``zoo fetch``, ``zoo
    mirror``): unreachable, stalled, an error status, an HTML page instead of the file, a wrong
    size, or no direct download at all.  Nothing partial was kept."""


class CorruptWeightsError(WeightsError, ValueError):
    """A weights file that is not a readable safetensors file."""


class StateDictMismatchError(WeightsError, ValueError):
    """Keys, shapes or dtypes of a checkpoint do not fit the model; nothing was loaded."""


class InputShapeError(ZooError, ValueError):
    """An input tensor whose shape the model cannot take (e.g. fixed-size positional embeddings)."""


class CheckpointError(ZooError, ValueError):
    """An original checkpoint that cannot be converted (unsafe pickle, unknown layout)."""


class CalibrationError(ZooError, ValueError):
    """Calibration cannot run: no data, no weights, nothing to calibrate, bad arguments."""


class UsageError(ZooError, ValueError):
    """A command line that zoo cannot run (bad option, missing argument, bad value)."""


class MissingDependencyError(ZooError, ImportError):
    """An optional dependency that a command needs is not installed; names the extra to install."""

    def __init__(self, what: str, modules: list[str], extra: str):
        self.modules, self.extra = modules, extra
        super().__init__(f"{what} needs {', '.join(modules)}, which {'is' if len(modules) == 1 else 'are'} "
                         f"not installed: pip install 'zoo[{extra}]'")


def require_modules(what: str, modules: list[str], extra: str) -> None:
    """Raise :class:`MissingDependencyError` unless every module in ``modules`` is importable."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(what, missing, extra)


class DeviceError(ZooError, ValueError):
    """A device that does not exist on this machine (e.g. ``cuda`` without a GPU)."""


class ExportError(ZooError, RuntimeError):
    """A model that cannot be exported to a format (names the operation and the reason), or an
    exported program whose outputs differ from eager PyTorch beyond the bound."""
