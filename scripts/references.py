"""Original implementations for the throughput comparison in ``scripts/bench.py``.

Nothing here is vendored: each builder imports the upstream code from a checkout the user made
under ``--reference-root`` (one folder per repository, named as the repository):

    SReT/                                   github.com/szq0214/SReT
    SimpleNet_Pytorch/                      github.com/Coderx7/SimpleNet_Pytorch
    pretrained-models.pytorch/              github.com/Cadene/pretrained-models.pytorch (NASNet)
    lightweight-neural-architecture-search/ github.com/alibaba/lightweight-neural-architecture-search
    AttentiveNAS/                           github.com/facebookresearch/AttentiveNAS
    OFQ/                                    github.com/nbasyl/OFQ
    ConvNeXt-dcls/                          github.com/K-H-Ismail/ConvNeXt-dcls
    _deps/                                  optional: extra packages the originals import (einops;
                                            DCLS for ConvNeXt-dcls: pip install --target _deps dcls)

Each builder constructs the model the way the golden vectors' ``reference`` sections document
(tests/golden/*.json) and returns ``None`` when its checkout is absent.  timm's own ports
(NASNet-A Large) need no checkout.  Two originals need run-time shims, applied to the source
text in memory (the checkout is not modified):

- OFQ: ``src/quantization/quantizer/lsq.py`` creates its scales with ``device="cuda"``
  (replaced by the input's device) and ``eval.py`` imports ``convert_splitbn_model`` from
  ``timm.models`` (moved to ``timm.layers`` in timm >= 0.9);
- AttentiveNAS: none; the deployable child is ``supernet.get_active_subnet()`` (static layers),
  which is what a user of the original runs.

Upstream modules use generic top-level names (``models``, ``utils``, ``modules``, ``src``):
each builder purges them from ``sys.modules`` first, so builders can run one after another.
"""
from __future__ import annotations

import ast
import contextlib
import importlib.abc
import importlib.util
import sys
from pathlib import Path
from typing import Callable, Iterator

from torch import nn

Builder = Callable[[Path], "nn.Module | None"]
_GENERIC = ("models", "utils", "modules", "src", "eval", "cnnnet", "sampler", "SReT",
            "SReT_wo_slice", "simplenet_ref")


@contextlib.contextmanager
def _upstream(root: Path, *, extra: tuple[Path, ...] = ()) -> Iterator[None]:
    """Put an upstream checkout first on ``sys.path`` with a clean slate of generic modules."""
    for name in list(sys.modules):
        if name.split(".")[0] in _GENERIC:
            del sys.modules[name]
    paths = [str(root), *map(str, extra)]
    deps = root.parent / "_deps"
    if deps.is_dir():
        paths.append(str(deps))
    sys.path[:0] = paths
    try:
        yield
    finally:
        for p in paths:
            sys.path.remove(p)


def _load(path: Path, module_name: str):
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)  # upstream code, run only when the user points at it
    return module


class _PatchedSource(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Import the named upstream modules with textual replacements applied in memory."""

    def __init__(self, root: Path, patches: dict[str, list[tuple[str, str]]]) -> None:
        self.root, self.patches = root, patches

    def find_spec(self, fullname, path, target=None):
        if fullname not in self.patches:
            return None
        file = self.root / (fullname.replace(".", "/") + ".py")
        return importlib.util.spec_from_file_location(fullname, file, loader=self)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        text = Path(module.__spec__.origin).read_text()
        for old, new in self.patches[module.__name__]:
            if old not in text:
                raise ImportError(f"reference shim: {old!r} not found in {module.__spec__.origin}")
            text = text.replace(old, new)
        exec(compile(text, module.__spec__.origin, "exec"), module.__dict__)


# -- SReT (szq0214/SReT): SReT_T(pretrained=False) etc., SReT.py / SReT_wo_slice.py verbatim ---

def _sret(fn: str, file: str) -> Builder:
    def build(root: Path):
        repo = root / "SReT"
        if not (repo / file).exists():
            return None
        with _upstream(repo):
            return getattr(_load(repo / file, file.removesuffix(".py")), fn)(pretrained=False)
    return build


# -- SimpleNet (Coderx7/SimpleNet_Pytorch): imagenet/simplenet.py -------------------------------

def _simplenet(fn: str) -> Builder:
    def build(root: Path):
        file = root / "SimpleNet_Pytorch" / "imagenet" / "simplenet.py"
        if not file.exists():
            return None
        with _upstream(file.parent):
            return getattr(_load(file, "simplenet_ref"), fn)(pretrained=False)
    return build


# -- NASNet: Cadene's pretrainedmodels (Mobile, Large); timm's port of Large needs nothing -----

def _cadene(file: str, fn: str) -> Builder:
    def build(root: Path):
        path = root / "pretrained-models.pytorch" / "pretrainedmodels" / "models" / file
        if not path.exists():
            return None
        with _upstream(path.parent):
            return getattr(_load(path, f"cadene_{fn}"), fn)(num_classes=1000, pretrained=None)
    return build


def _timm(name: str) -> Builder:
    def build(root: Path):
        import timm

        return timm.create_model(name)
    return build


# -- DeepMAD (alibaba/lightweight-neural-architecture-search): the deploy CnnNet ----------------

def _deepmad(txt: str) -> Builder:
    def build(root: Path):
        repo = root / "lightweight-neural-architecture-search"
        cnnnet_dir = repo / "tinynas" / "deploy" / "cnnnet"
        if not cnnnet_dir.exists():
            return None
        with _upstream(cnnnet_dir):
            cnnnet = _load(cnnnet_dir / "cnnnet.py", "cnnnet")
            info = ast.literal_eval((repo / "configs" / "classification" / "models" / txt).read_text())
            return cnnnet.CnnNet(structure_info=info["best_structures"][0], out_indices=(4,),
                                 num_classes=1000, classfication=True)  # upstream's spelling
    return build


# -- ConvNeXt-dcls (K-H-Ismail/ConvNeXt-dcls): models/convnext_dcls.py with the `dcls` package ---

def _dcls(fn: str) -> Builder:
    def build(root: Path):
        file = root / "ConvNeXt-dcls" / "models" / "convnext_dcls.py"
        if not file.exists():
            return None
        with _upstream(file.parents[1]):  # the checkout; DCLS comes from _deps beside it
            return getattr(_load(file, "convnext_dcls_ref"), fn)(pretrained=False)
    return build


# -- AttentiveNAS (facebookresearch/AttentiveNAS): the static child of the supernet -------------

def _attentivenas(child: str) -> Builder:
    def build(root: Path):
        repo = root / "AttentiveNAS"
        if not (repo / "models" / "attentive_nas_dynamic_model.py").exists():
            return None
        with _upstream(repo):
            from models.attentive_nas_dynamic_model import AttentiveNasDynamicModel  # type: ignore
            from utils.config import setup  # type: ignore

            cfg = setup(str(repo / "configs" / "eval_attentive_nas_models.yml"))
            supernet = AttentiveNasDynamicModel(cfg.supernet_config, n_classes=1000,
                                                bn_param=(0.1, 1e-5))
            arch = cfg.pareto_models[child]
            supernet.set_active_subnet(arch.resolution, arch.width, arch.depth,
                                       arch.kernel_size, arch.expand_ratio)
            return supernet.get_active_subnet(preserve_weight=True)
    return build


# -- OFQ (nbasyl/OFQ): eval.py's get_qat_model on src.deit, as eval_scripts/deit_*/wXaX.sh -------

_OFQ_PATCHES = {
    "src.quantization.quantizer.lsq": [('device="cuda"', "device=x.device"),
                                       ("init_val.cuda()", "init_val.to(x.device)")],
    "eval": [("convert_splitbn_model, model_parameters", "model_parameters\n)\n"
              "from timm.layers import (convert_splitbn_model")],
}


def _ofq(model_fn: str, script: str, bits: int) -> Builder:
    def build(root: Path):
        import torch

        repo = root / "OFQ"
        if not (repo / "eval.py").exists():
            return None
        flags = (repo / "eval_scripts" / script).read_text().replace("\\\n", " ").split()
        flags = [f.strip("'\"") for f in flags[flags.index("eval.py") + 1:]]
        flags = [f"-c{repo / f[2:]}" if f.startswith("-c") else f for f in flags]
        assert f"--wq-bitw" in flags and flags[flags.index("--wq-bitw") + 1] == str(bits), script
        finder = _PatchedSource(repo, _OFQ_PATCHES)
        argv = sys.argv
        with _upstream(repo):
            sys.meta_path.insert(0, finder)
            try:
                import eval as ofq_eval  # type: ignore[import-not-found]
                import src.deit  # type: ignore[import-not-found]

                sys.argv = ["eval.py", *flags]
                args, _ = ofq_eval.parse_args()
            finally:
                sys.argv = argv
                sys.meta_path.remove(finder)
            model = getattr(src.deit, model_fn)(pretrained=False, num_classes=1000,
                                                drop_rate=0.0, qqkkvv=False)
            model = ofq_eval.get_qat_model(model, args)
            args.prefetcher, args.channels_last = True, False  # CPU tensors, as given
            calib = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
            ofq_eval.setup_alpha(model, [(calib, torch.zeros(2, dtype=torch.long))], args)
        return _FirstOutput(model.eval())
    return build


class _FirstOutput(nn.Module):
    """OFQ's DeiT returns (logits, attention maps); eval.py uses element 0."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)[0]


BUILDERS: dict[str, Builder] = {
    "sret_t": _sret("SReT_T", "SReT.py"),
    "sret_lt": _sret("SReT_LT", "SReT.py"),
    "sret_s": _sret("SReT_S", "SReT.py"),
    "sret_t_wo_slice": _sret("SReT_T_wo_slice", "SReT_wo_slice.py"),
    "sret_lt_wo_slice": _sret("SReT_LT_wo_slice", "SReT_wo_slice.py"),
    "sret_s_wo_slice": _sret("SReT_S_wo_slice", "SReT_wo_slice.py"),
    **{n: _simplenet(n) for n in (
        "simplenet_cifar_5m", "simplenetv1_small_m1_05", "simplenetv1_small_m2_05",
        "simplenetv1_small_m1_075", "simplenetv1_small_m2_075", "simplenetv1_5m_m1",
        "simplenetv1_5m_m2", "simplenetv1_9m_m1", "simplenetv1_9m_m2")},
    "nasnet_a_mobile": _cadene("nasnet_mobile.py", "nasnetamobile"),
    "nasnet_a_large": _timm("nasnetalarge"),
    **{f"deepmad_{k}": _deepmad(f"deepmad-{v}.txt") for k, v in (
        ("29m_224", "29M-224"), ("29m_288", "29M-288"), ("50m", "50M"), ("89m", "89M"),
        ("r18", "R18"), ("r34", "R34"), ("r50", "R50"))},
    **{f"bignas_attentivenas_a{i}": _attentivenas(f"a{i}") for i in range(7)},
    **{f"ofq_deit_{size}_w{b}a{b}": _ofq(f"deit_{size}_distilled_patch16_224",
                                          f"deit_{size[0]}/w{b}a{b}.sh", b)
       for size in ("tiny", "small") for b in (2, 3, 4)},
    **{f"convnext_{size}_dcls": _dcls(f"convnext_dcls_{size}")
       for size in ("tiny", "small", "base")},
}

# What the anchor of each builder is, for the table.
KIND = {name: ("timm's port" if name == "nasnet_a_large" else "original") for name in BUILDERS}


def build(name: str, root: Path | None) -> nn.Module | None:
    """The original implementation of ``name`` (random weights), or None if not available.

    A reference that is present but fails to build raises: a silently skipped row would hide a
    broken comparison."""
    builder = BUILDERS.get(name)
    if builder is None:
        return None
    if root is None and KIND[name] == "original":
        return None
    return builder(Path(root) if root is not None else Path("/nonexistent"))
