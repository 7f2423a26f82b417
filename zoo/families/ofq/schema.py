"""OFQ's architecture fields: a base DeiT plus a declarative quantization section.

The base is DeiT (Touvron et al., arXiv 2012.12877), distilled by default (class and
distillation tokens, two heads averaged at inference), as upstream's ``src/deit.py`` builds it.
``quantization.rules`` then say which modules are quantized, with which quantizers and bits
(OFQ, arXiv 2302.02210, Sec. 4 and Sec. 5.1 "Implementation details"):

- a rule's ``modules`` are fnmatch patterns over the *quantizable* module paths of the base
  model: ``patch_embed.proj`` (conv), ``blocks.<i>.attn`` (attention, quantized with the
  query-key reparameterization QKR of Sec. 4.3), ``blocks.<i>.mlp`` (both linears),
  ``head`` and ``head_dist`` (classifiers);
- ``weight``: the weight quantizer (``statsq``: OFQ's statistical quantizer, Sec. 4.1;
  ``lsq``: learned step size) and its bits; ``act``: the LSQ activation quantizers' bits;
- every pattern must match at least one module and no module may match two rules; modules
  no rule names stay in full precision.  LayerNorms, tokens, positional embedding, biases,
  softmax and GELU are always full precision.

No torch here: the paths are computed from the fields, so a spec naming a module that does not
exist is rejected at validation time.
"""
from __future__ import annotations

import fnmatch
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from zoo.spec import ArchBase, StrictModel

Bits = Annotated[int, Field(ge=2, le=8, description="bit width, 2..8")]


class WeightQuant(StrictModel):
    """How a module's weights are quantized (one scale per output row)."""

    quantizer: Literal["statsq", "lsq"] = Field(
        description="statsq: scale 2*mean|W_row|, zero-free half-integer grid (OFQ Sec. 4.1); "
                    "lsq: learnable step per row (Esser et al. 2020)")
    bits: Bits


class ActQuant(StrictModel):
    """How a module's input activations are quantized: LSQ, one learnable step per token (per
    channel of the input image for the patch embedding, per tensor for the heads)."""

    quantizer: Literal["lsq"] = "lsq"
    bits: Bits


class QuantRule(StrictModel):
    modules: tuple[str, ...] = Field(min_length=1, description="fnmatch patterns over the "
                                     "quantizable module paths, e.g. 'blocks.*.attn'")
    weight: WeightQuant
    act: ActQuant

    @field_validator("modules", mode="before")
    @classmethod
    def _one_or_many(cls, v: object) -> object:
        return (v,) if isinstance(v, str) else v


class Quantization(StrictModel):
    rules: tuple[QuantRule, ...] = Field(min_length=1)


ModuleKind = Literal["conv", "attn", "mlp", "head"]


class Arch(ArchBase):
    img_size: int = Field(224, gt=0, description="input side; fixed (the LSQ steps are per token "
                          "and the patch-embedding shifts per pixel)")
    patch_size: int = Field(16, gt=0)
    embed_dim: int = Field(gt=0)
    depth: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    mlp_ratio: float = Field(4.0, gt=0)
    qkv_bias: bool = Field(True, description="bias of a full-precision qkv projection; a "
                           "quantized (QKR) attention keeps the value bias only: its fused W_qk "
                           "has no q/k biases (upstream QAttention_qkreparam)")
    distilled: bool = Field(True, description="DeiT distillation token and second head")
    global_pool: Literal["token", ""] = Field(
        "token", description="the heads read the class (and distillation) token; '' none: "
        "every token")
    norm_eps: float = Field(1e-6, gt=0)
    drop_rate: float = Field(0.0, ge=0, lt=1)
    attn_drop_rate: float = Field(0.0, ge=0, lt=1)
    drop_path_rate: float = Field(0.0, ge=0, lt=1)
    quantization: Quantization

    @property
    def num_tokens(self) -> int:
        """Patches plus class (and distillation) token."""
        return (self.img_size // self.patch_size) ** 2 + (2 if self.distilled else 1)

    @property
    def mlp_hidden(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)

    def module_paths(self) -> dict[str, ModuleKind]:
        """Every quantizable module path of the base model and its kind."""
        paths: dict[str, ModuleKind] = {"patch_embed.proj": "conv"}
        for i in range(self.depth):
            paths[f"blocks.{i}.attn"] = "attn"
            paths[f"blocks.{i}.mlp"] = "mlp"
        paths["head"] = "head"
        if self.distilled:
            paths["head_dist"] = "head"
        return paths

    def quantized_modules(self) -> dict[str, QuantRule]:
        """Module path -> the rule quantizing it (modules absent stay full precision)."""
        out: dict[str, QuantRule] = {}
        paths = self.module_paths()
        for r, rule in enumerate(self.quantization.rules):
            for pattern in rule.modules:
                hits = [p for p in paths if fnmatch.fnmatchcase(p, pattern)]
                if not hits:
                    raise ValueError(
                        f"quantization.rules[{r}]: module pattern {pattern!r} matches no "
                        f"quantizable module of this {self.depth}-block model (quantizable: "
                        f"patch_embed.proj, blocks.0-{self.depth - 1}.attn/.mlp, head"
                        f"{', head_dist' if self.distilled else ''})")
                for p in hits:
                    if p in out and out[p] is not rule:
                        raise ValueError(f"quantization.rules[{r}]: module {p!r} is already "
                                         "quantized by an earlier rule; each module may match "
                                         "one rule only")
                    out[p] = rule
        return {p: out[p] for p in paths if p in out}

    @model_validator(mode="after")
    def _check(self) -> "Arch":
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads "
                             f"{self.num_heads}")
        if self.img_size % self.patch_size:
            raise ValueError(f"img_size {self.img_size} is not a multiple of patch_size "
                             f"{self.patch_size}")
        self.quantized_modules()
        return self
