"""Registration of zoo's models in timm's model registry.

``import zoo`` must stay cheap, so it does not import timm.  Instead it installs an import
hook: when timm is imported (before or after zoo), every zoo model is registered under timm's
``zoo`` module, with its pretrained tags.  Entry points build through :func:`zoo.create`, so
weights loaded via timm are sha256-verified like zoo's own.  zoo never overwrites a timm name.
Specs registered later (:func:`zoo.register_specs`) reach timm through the catalog's
:func:`~zoo.catalog.on_register` subscription made here.

Self-describing repos: ``timm.create_model("hf-hub:org/repo")`` on a repo written by zoo (its
config.json carries the spec) builds through ``zoo.create("hf-hub:org/repo@<commit>")``.  timm
would look the config's ``architecture`` up in its registry; zoo wraps timm's config loader
(:func:`_install_hub_loader`) so that the repo's validated spec gets an entry point: under its
own name when neither zoo's catalog nor timm has that name, else (a different spec of a catalog
name, or a timm name) under ``<name>__<org>_<repo>``, in timm's module ``zoo_hub``
(``timm.list_models(module="zoo")`` stays exactly zoo's catalog).  A catalog model with the
identical spec is simply used.  Repos not written by zoo go to timm's own loader unchanged.
"""
from __future__ import annotations

import hashlib
import importlib.abc
import importlib.util
import importlib.machinery
import re
import sys
import threading
import types
import warnings
from typing import Any

MODULE = "zoo"                       # timm.list_models(module="zoo")
_HOST = "zoo._timm_entrypoints.zoo"  # timm keys modules by the last dotted part
HUB_MODULE = "zoo_hub"               # models of self-describing repos: module="zoo_hub"
_HUB_HOST = f"zoo._timm_entrypoints.{HUB_MODULE}"
_lock = threading.RLock()
_registered: set[str] = set()
skipped: dict[str, str] = {}         # zoo names not registered, with the reason
_hub_names: dict[str, dict[str, Any]] = {}  # timm name -> spec of a repo registered under it


def _host_module(host: str = _HOST) -> types.ModuleType:
    mod = sys.modules.get(host)
    if mod is None:
        mod = types.ModuleType(host, "timm entry points of zoo models (generated)")
        setattr(mod, "default_cfgs", {})  # timm's register_model reads it (and adds __all__)
        sys.modules[host] = mod
    return mod


def _requested(name: str, pretrained_cfg: Any, overlay: Any) -> tuple[str | None, str | None]:
    """(weights tag, weights reference) that a ``timm.create_model`` call asks for, read as
    timm's own entry points read it (``timm.models._builder.resolve_pretrained_cfg`` and
    ``_resolve_pretrained_source``): a str ``pretrained_cfg`` is a tag (timm passes the tag of
    ``"name.tag"`` this way); a dict or ``PretrainedCfg`` is the cfg itself, its ``tag`` naming
    zoo's registry weights; ``pretrained_cfg_overlay`` replaces keys of either.  Where the cfg
    names other weights than the tag's registry record -- a ``file``, another ``hf_hub_id``, or
    ``source='hf-hub'`` -- those are loaded, as timm would; the reference is None otherwise."""
    from zoo.errors import WeightsError
    from zoo.registry import default_tag, registry
    from zoo.weights.folder import WEIGHTS_NAME

    tag: str | None = None
    cfg: dict[str, Any] = {}
    if isinstance(pretrained_cfg, str):
        tag = pretrained_cfg or None
    elif pretrained_cfg is not None:
        cfg = dict(pretrained_cfg) if isinstance(pretrained_cfg, dict) else pretrained_cfg.to_dict()
        tag = cfg.get("tag") or None
    cfg.update(overlay or {})
    if cfg.get("state_dict") is not None:
        raise WeightsError(f"{name}: a state_dict inside pretrained_cfg is not loaded by zoo; "
                           "build the model, then call model.load_state_dict(state_dict)")
    hub_id, filename, source = cfg.get("hf_hub_id"), cfg.get("hf_hub_filename"), cfg.get("source")
    if source == "hf-hub" and hub_id:
        return tag, f"hf-hub:{hub_id}"
    if cfg.get("file"):  # timm: a file beats the Hub unless the source is hf-hub
        return tag, str(cfg["file"])
    if hub_id:
        full = f"{name}.{tag}" if tag else default_tag(name)
        record = registry().records.get(full) if full else None
        if (record is not None and record.hub is not None and record.hub.repo_id == hub_id
                and filename in (None, record.hub.filename)):
            return tag, None  # the tag's own record: its pinned, verified file
        if filename not in (None, WEIGHTS_NAME):
            raise WeightsError(f"{name}: pretrained_cfg names {hub_id}/{filename}, which is not "
                               f"a weights record of zoo's registry; zoo loads other Hub repos "
                               f"only from their {WEIGHTS_NAME} (weights='hf-hub:{hub_id}')")
        return tag, f"hf-hub:{hub_id}"
    if cfg.get("url"):
        raise WeightsError(f"{name}: pretrained_cfg names the URL {cfg['url']}; zoo downloads "
                           "weights only from the Hub (hf_hub_id) or its registry tags")
    return tag, None


def _entrypoint(name: str):
    def fn(pretrained: bool = False, pretrained_cfg: Any = None, pretrained_cfg_overlay: Any = None,
           cache_dir: Any = None, **kwargs: Any):
        from zoo.build import create

        kwargs.pop("pretrained_model_args", None)
        tag, weights = _requested(name, pretrained_cfg, pretrained_cfg_overlay)
        if not pretrained:
            weights = None
        full = f"{name}.{tag}" if tag else name
        return create(full, pretrained=pretrained, weights=weights, **kwargs)

    fn.__name__ = fn.__qualname__ = name
    fn.__module__ = _HOST
    fn.__doc__ = f"zoo model {name} (built from its spec; see `zoo info {name}`)."
    return fn


def _default_cfg(name: str):
    """timm's ``DefaultCfg`` of a catalog model: one cfg per registry tag (its Hub file where the
    record has one; a convertible source is a tag without weights), else one untagged cfg."""
    from timm.models._registry import generate_default_cfgs

    from zoo.catalog import get_spec
    from zoo.registry import registry

    spec = get_spec(name)
    tags: list[str | None] = [full.partition(".")[2] for full in registry().tags_of(name)]
    cfgs: dict[str, Any] = {f"{name}.{tag}" if tag else name: _timm_cfg(spec, tag)
                            for tag in tags or [None]}
    return generate_default_cfgs(cfgs)[name]


def _timm_cfg(spec: Any, tag: str | None = None) -> dict[str, Any]:
    """zoo's ``pretrained_cfg`` of a spec (and tag), less the keys timm's ``PretrainedCfg``
    lacks (``hf_hub_revision``, ``source_url``: zoo's own ``model.pretrained_cfg`` keeps them).
    timm's registration sets ``architecture`` and ``tag`` from the registered name."""
    import dataclasses

    from timm.models import PretrainedCfg

    from zoo.pretrained_cfg import pretrained_cfg

    fields = {f.name for f in dataclasses.fields(PretrainedCfg)}
    return {k: v for k, v in pretrained_cfg(spec, tag).items() if k in fields}


def _hub_entrypoint(name: str, ref: str):
    """The timm entry point of a self-describing repo's model: built by zoo from the repo the
    call's pretrained_cfg names (timm passes it), else from ``ref``."""
    def fn(pretrained: bool = False, pretrained_cfg: Any = None, pretrained_cfg_overlay: Any = None,
           cache_dir: Any = None, **kwargs: Any):
        from zoo.build import create

        kwargs.pop("pretrained_model_args", None)
        target = ref
        cfg = pretrained_cfg
        if cfg is not None and not isinstance(cfg, (str, dict)):
            cfg = cfg.to_dict()
        if isinstance(cfg, dict) and cfg.get("source") == "hf-hub" and cfg.get("hf_hub_id"):
            target = f"hf-hub:{cfg['hf_hub_id']}"
        return create(target, pretrained=pretrained, **kwargs)

    fn.__name__ = fn.__qualname__ = name
    fn.__module__ = _HUB_HOST
    fn.__doc__ = f"zoo model {name} from the self-describing Hub repo {ref}."
    return fn


def _hub_name(hub: Any) -> str:
    """The timm name that builds a self-describing repo's model (registered on first use)."""
    from timm.models._registry import _model_entrypoints, generate_default_cfgs, register_model

    from zoo.catalog import catalog

    spec = hub.spec
    doc = spec.model_dump(mode="json")
    with _lock:
        if spec.name in catalog().entries and spec.name in _registered:
            if catalog().spec(spec.name).model_dump(mode="json") == doc:
                return spec.name  # the catalog's own model: same spec
        slug = re.sub(r"[^a-z0-9_]", "_", hub.repo_id.lower())
        digest = hashlib.sha256(f"{hub.repo_id}@{hub.revision}".encode()).hexdigest()[:8]
        for name in (spec.name, f"{spec.name}__{slug}", f"{spec.name}__{slug}_{digest}"):
            if name in _hub_names:
                if _hub_names[name] == doc:
                    return name
                continue
            if name in _model_entrypoints or name in catalog().entries:
                continue  # never shadow a catalog or timm model
            cfg = {**_timm_cfg(spec), "hf_hub_id": f"{hub.repo_id}@{hub.revision}"}
            host = _host_module(_HUB_HOST)
            host.default_cfgs[name] = generate_default_cfgs({name: cfg})[name]
            register_model(_hub_entrypoint(name, hub.ref))
            _hub_names[name] = doc
            return name
        raise RuntimeError(f"zoo: no free timm name for {hub.ref}")  # three taken: unreachable


def _install_hub_loader() -> None:
    """Wrap timm's ``load_model_config_from_hf`` (what ``create_model("hf-hub:...")`` calls) so
    that repos written by zoo resolve to a zoo entry point (idempotent)."""
    try:
        import timm.models._factory as factory
    except ImportError:
        return
    original = getattr(factory, "load_model_config_from_hf", None)
    if original is None or getattr(original, "_zoo_wrapped", False):
        return

    def load_model_config_from_hf(model_id: str, *args: Any, **kwargs: Any):
        from zoo.errors import HubResponseError, WeightsError
        from zoo.weights.folder import CONFIG_NAME, read_config
        from zoo.weights.hub import hub_download
        from zoo.weights.refs import parse_hub_reference
        from zoo.weights.remote import hub_model, is_zoo_config

        ref = f"hf-hub:{model_id}"
        repo, rev = parse_hub_reference(ref)
        try:
            path = hub_download(repo, CONFIG_NAME, rev, ref)  # through zoo's checked session
        except HubResponseError:
            raise  # a hostile server: refused, nothing handed to timm
        except WeightsError:  # no such repo or file, no network: timm's own errors say so
            return original(model_id, *args, **kwargs)
        if not is_zoo_config(read_config(path)):  # bounded and validated first
            return original(model_id, *args, **kwargs)
        hub = hub_model(ref)
        name = _hub_name(hub)
        cfg = dict(hub.config.pretrained_cfg or {})
        cfg.update(architecture=name, hf_hub_id=f"{hub.repo_id}@{hub.revision}", source="hf-hub")
        if hub.config.num_classes is not None:
            cfg["num_classes"] = hub.config.num_classes
        return cfg, name, {}

    setattr(load_model_config_from_hf, "_zoo_wrapped", True)
    setattr(load_model_config_from_hf, "_zoo_original", original)
    setattr(factory, "load_model_config_from_hf", load_model_config_from_hf)


def register_new(names: list[str] | None = None) -> None:
    """Register zoo models in timm (all if ``names`` is None).  No-op until timm is imported."""
    if "timm" not in sys.modules or not hasattr(sys.modules["timm"], "create_model"):
        return
    from timm.models._registry import _model_entrypoints, register_model

    from zoo.catalog import catalog, on_register

    on_register(register_new)  # later user specs follow (idempotent)
    _install_hub_loader()
    with _lock:
        host = _host_module()
        for name in names if names is not None else catalog().names():
            if name in _registered:
                continue
            if name in _model_entrypoints:
                skipped[name] = "timm has a built-in model of this name"
                continue
            try:
                host.default_cfgs[name] = _default_cfg(name)
            except Exception as e:  # a broken spec must not break timm: report and skip it
                skipped[name] = f"{type(e).__name__}: {e}"
                warnings.warn(f"zoo: {name} not registered in timm: {skipped[name]}", stacklevel=2)
                continue
            register_model(_entrypoint(name))
            _registered.add(name)


class _TimmHook(importlib.abc.MetaPathFinder):
    """Runs :func:`register_new` right after ``timm`` finishes importing."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "timm":
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec("timm")
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        original = loader.exec_module

        def exec_module(module):
            original(module)
            try:
                sys.meta_path.remove(self)
            except ValueError:
                pass
            try:
                register_new()
            except Exception as e:  # never break `import timm`
                warnings.warn(f"zoo: could not register its models in timm: {e}", stacklevel=2)

        loader.exec_module = exec_module
        return spec


_hook = _TimmHook()


def install() -> None:
    """Register now if timm is loaded, else when it gets imported."""
    import importlib.util  # noqa: F401  (used by the hook)

    if "timm" in sys.modules:
        register_new()
    elif not any(isinstance(f, _TimmHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _hook)
