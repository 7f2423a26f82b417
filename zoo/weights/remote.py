"""Self-describing Hub repos: ``hf-hub:org/repo[@revision]`` -> the spec its ``config.json``
carries (``zoo.spec``, written by :func:`zoo.save_pretrained` and ``zoo mirror``), so a model
that is in no spec file -- a DeepMAD design, a user's NASNet genotype, a BigNAS child, a width
variant -- builds from the repo alone.

Everything from the server is untrusted: ``config.json`` is read bounded and validated
(:func:`zoo.weights.folder.read_config`, which also refuses a newer spec schema), the spec is
data validated strictly against the installed families (:func:`zoo.catalog.validate_spec`; a
family that is not installed is named), and the revision is pinned to the commit the config
came from, so config and weights are read from the same snapshot.  Nothing is registered in
zoo's catalog: a repo's model never shadows a catalog model of the same name.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from zoo.catalog import validate_spec
from zoo.errors import SpecError, WeightsError
from zoo.families import family_names
from zoo.spec import SpecBase, short_repr
from zoo.weights.folder import CONFIG_NAME, SPEC_SCHEMA, FolderConfig, read_config
from zoo.weights.hub import hub_download
from zoo.weights.refs import COMMIT, parse_hub_reference


@dataclass(frozen=True)
class HubModel:
    """A zoo-written Hub repo at one commit: its validated spec and config."""

    repo_id: str
    revision: str
    spec: SpecBase
    config: FolderConfig

    @property
    def ref(self) -> str:
        """``hf-hub:org/repo@<commit>``: the same snapshot again."""
        return f"hf-hub:{self.repo_id}@{self.revision}"


def snapshot_commit(path: Path, fallback: str | None) -> str | None:
    """The commit of a file in huggingface_hub's cache (``.../snapshots/<commit>/<file>``)."""
    parts = Path(path).parts
    if "snapshots" in parts[:-1]:
        commit = parts[parts.index("snapshots") + 1]
        if COMMIT.match(commit):
            return commit
    return fallback


def hub_config(ref: str) -> tuple[str, str | None, FolderConfig]:
    """``(repo_id, commit, config)`` of ``hf-hub:org/repo[@rev]``, the config validated."""
    repo, rev = parse_hub_reference(ref)
    path = hub_download(repo, CONFIG_NAME, rev, ref)
    return repo, snapshot_commit(path, rev), read_config(path)


def is_zoo_config(config: FolderConfig) -> bool:
    return config.zoo is not None and config.zoo.spec is not None


def spec_from_config(config: FolderConfig, where: str) -> SpecBase:
    """The validated spec a zoo-written config carries (:class:`SpecError` naming the problem)."""
    if config.zoo is None or config.zoo.spec is None:
        raise WeightsError(f"{where}: its config.json carries no zoo spec (it was not written by "
                           "zoo.save_pretrained or zoo mirror), so it cannot describe its own "
                           "model: load it into a catalog model with zoo.create(NAME, "
                           f"weights={where!r})")
    raw = config.zoo.spec
    family = raw.get("family")
    if family not in family_names():
        raise SpecError(f"the spec in {where} is of family {short_repr(family)}, which is not "
                        f"installed (installed: {', '.join(family_names())}); install the "
                        "package that provides that family (a `zoo.families` plug-in) to build "
                        f"it (spec schema {config.zoo.spec_schema} of {SPEC_SCHEMA})",
                        source=f"{where} config.json", model=short_repr(raw.get("name")))
    spec = validate_spec(raw, source=f"{where} config.json")
    if config.architecture != spec.name:
        raise SpecError(f"config.json names architecture {short_repr(config.architecture)} but "
                        f"its spec is {spec.name!r}; the repo is inconsistent",
                        source=f"{where} config.json")
    return spec


def hub_model(ref: str) -> HubModel:
    """The spec of a zoo-written Hub repo, pinned to the commit its config came from."""
    repo, commit, config = hub_config(ref)
    spec = spec_from_config(config, ref)
    if commit is None:  # not from huggingface_hub's snapshot layout: keep what was asked
        commit = parse_hub_reference(ref)[1] or "main"
    return HubModel(repo, commit, spec, config)
