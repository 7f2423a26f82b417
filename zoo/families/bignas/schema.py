"""Architecture schema of the BigNAS family: a search space (a supernet) and a child choice.

A *supernet* spec declares ``arch.space``: the elastic dimensions of a MobileNet-style network
(BigNAS, arXiv:2003.11142, Table 1; AttentiveNAS, arXiv:2011.09011, whose space is the
``supernet_config`` of its ``configs/eval_attentive_nas_models.yml``):

- input ``resolution`` choices,
- the stem conv's ``width`` choices,
- per MBConv stage (``mb1`` ... ``mbN``): ``width`` (output channels), ``depth`` (blocks),
  ``kernel_size`` (depthwise kernel) and ``expand_ratio`` choices, plus fixed stride, SE and
  activation,
- the head's ``width`` choices (and whether it is the MobileNetV3 "v3 head").

A *child* spec names its supernet (``arch.supernet``, another spec of this family, which the
catalog resolves during validation) and picks one value per dimension (``arch.subnet``), in AttentiveNAS' own format
(``resolution``, ``width`` [stem, mb1..mbN, head], ``depth``, ``kernel_size``,
``expand_ratio``).  A choice outside the space is an error naming the stage and the allowed
values.  A supernet spec without ``subnet`` is its largest child.

No torch here: validation and listing stay cheap.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, PrivateAttr, ValidationInfo, model_validator

from zoo.spec import LOOKUP, NAME_PATTERN, ArchBase, SpecLookup, StrictModel

Act = Literal["swish", "relu", "relu6", "hard_swish"]
Choices = tuple[int, ...]  # plain: a child's picks (Subnet); validated sets below


def make_divisible(value: float, divisor: int = 8, min_value: int = 1) -> int:
    """Round ``value`` to a multiple of ``divisor``, never more than 10% down (MobileNetV2, and
    AttentiveNAS' ``make_divisible`` with ``min_value=1``)."""
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


def _increasing(v: Choices, info: ValidationInfo) -> Choices:
    if not v:
        raise ValueError(f"{info.field_name} needs at least one choice")
    if list(v) != sorted(set(v)):
        raise ValueError(f"{info.field_name} choices must be strictly increasing, got {list(v)}")
    return v


def _positive(v: Choices, info: ValidationInfo) -> Choices:
    if min(v) < 1:
        raise ValueError(f"{info.field_name} choices must be positive, got {list(v)}")
    return v


def _odd(v: Choices) -> Choices:
    if any(k % 2 == 0 for k in v):
        raise ValueError(f"kernel sizes must be odd (centre crop), got {list(v)}")
    return v


# The choices of one elastic dimension of a search space; errors name the field (and pydantic's
# error location the stage).  Validators run in nesting order: increasing, positive, odd.
ChoiceSet = Annotated[Choices, AfterValidator(_increasing)]
PositiveChoiceSet = Annotated[ChoiceSet, AfterValidator(_positive)]
KernelChoiceSet = Annotated[PositiveChoiceSet, AfterValidator(_odd)]


class StemSpace(StrictModel):
    """The first 3x3 conv + BN + activation (``first_conv``)."""

    width: ChoiceSet = Field(description="output channel choices (c)")
    stride: Literal[1, 2] = 2
    act: Act = "swish"


class StageSpace(StrictModel):
    """One stage of inverted-residual (MBConv) blocks; only its first block strides."""

    width: PositiveChoiceSet = Field(description="output channel choices (c)")
    depth: PositiveChoiceSet = Field(description="number-of-blocks choices (d)")
    kernel_size: KernelChoiceSet = Field(description="depthwise kernel choices (k), odd")
    expand_ratio: PositiveChoiceSet = Field(description="expansion ratio choices (t)")
    stride: Literal[1, 2] = 1
    se: bool = Field(False, description="squeeze-and-excitation (h_sigmoid gate) after the dw conv")
    act: Act = "swish"

    @property
    def expands(self) -> bool:
        """Whether the blocks have a 1x1 expansion conv (AttentiveNAS: max expand ratio > 1)."""
        return max(self.expand_ratio) > 1


class HeadSpace(StrictModel):
    """The last layers.  ``v3: true`` is MobileNetV3's efficient head (AttentiveNAS
    ``use_v3_head``): 1x1 conv+BN+act to ``expand x`` the last stage width, global pooling, then
    a 1x1 conv+act (no BN) to ``width``.  ``v3: false`` (BigNAS): 1x1 conv+BN+act to ``width``,
    then global pooling."""

    width: ChoiceSet = Field(description="feature width choices before the classifier")
    v3: bool = False
    expand: int = Field(6, ge=1, description="v3 head: expansion of the last stage width")
    act: Act = "swish"


class SearchSpace(StrictModel):
    """All elastic dimensions of a supernet."""

    resolution: ChoiceSet = Field(description="input resolution choices")
    stem: StemSpace
    stages: tuple[StageSpace, ...] = Field(min_length=1)
    head: HeadSpace

    @model_validator(mode="after")
    def _no_expansion_needs_aligned_input(self) -> "SearchSpace":
        prev = self.stem.width
        for i, st in enumerate(self.stages):
            if not st.expands:
                bad = [c for c in prev if make_divisible(c, 8) != c]
                if bad:
                    raise ValueError(
                        f"stage {stage_name(i)} has no expansion conv (expand_ratio "
                        f"{list(st.expand_ratio)}), so its input widths must be multiples of 8; "
                        f"got {bad}")
            prev = st.width
        return self

    def stage_names(self) -> list[str]:
        return [stage_name(i) for i in range(len(self.stages))]

    def largest(self) -> "Subnet":
        """The largest child: every dimension at its maximum."""
        return Subnet(resolution=max(self.resolution),
                      width=(max(self.stem.width), *(max(s.width) for s in self.stages),
                             max(self.head.width)),
                      depth=tuple(max(s.depth) for s in self.stages),
                      kernel_size=tuple(max(s.kernel_size) for s in self.stages),
                      expand_ratio=tuple(max(s.expand_ratio) for s in self.stages))

    def smallest(self) -> "Subnet":
        return Subnet(resolution=min(self.resolution),
                      width=(min(self.stem.width), *(min(s.width) for s in self.stages),
                             min(self.head.width)),
                      depth=tuple(min(s.depth) for s in self.stages),
                      kernel_size=tuple(min(s.kernel_size) for s in self.stages),
                      expand_ratio=tuple(min(s.expand_ratio) for s in self.stages))

    def check(self, subnet: "Subnet", supernet: str) -> None:
        """Raise ValueError unless ``subnet`` is a point of this space (names stage and choices)."""
        n = len(self.stages)
        for field, want in (("width", n + 2), ("depth", n), ("kernel_size", n),
                            ("expand_ratio", n)):
            got = len(getattr(subnet, field))
            if got != want:
                what = "stem, one per stage, head" if field == "width" else "one per stage"
                raise ValueError(f"subnet.{field} has {got} entries; supernet {supernet} needs "
                                 f"{want} ({what}: {', '.join(self.stage_names())})")
        problems = []
        if subnet.resolution not in self.resolution:
            problems.append(f"resolution {subnet.resolution} is not a choice of supernet "
                            f"{supernet}; allowed: {list(self.resolution)}")
        slots = [("stem", "width", subnet.width[0], self.stem.width)]
        for i, st in enumerate(self.stages):
            name = stage_name(i)
            slots += [(name, "width", subnet.width[i + 1], st.width),
                      (name, "depth", subnet.depth[i], st.depth),
                      (name, "kernel_size", subnet.kernel_size[i], st.kernel_size),
                      (name, "expand_ratio", subnet.expand_ratio[i], st.expand_ratio)]
        slots.append(("head", "width", subnet.width[-1], self.head.width))
        for stage, field, value, allowed in slots:
            if value not in allowed:
                problems.append(f"stage {stage}: {field} {value} is not a choice of supernet "
                                f"{supernet}; allowed: {list(allowed)}")
        if problems:
            raise ValueError("; ".join(problems))


def stage_name(index: int) -> str:
    """AttentiveNAS' stage names: ``mb1`` ... ``mbN``."""
    return f"mb{index + 1}"


def _supernet_space(name: str, lookup: SpecLookup) -> SearchSpace:
    """The search space declared by supernet spec ``name``."""
    from zoo.errors import ZooError

    try:
        parent = lookup(name)
    except ZooError as e:
        raise ValueError(f"supernet {e}") from None
    if parent.family != "bignas":
        raise ValueError(f"supernet {name!r} is a {parent.family} model, not a bignas supernet")
    arch = parent.arch
    assert isinstance(arch, Arch)
    if arch.space is None:
        raise ValueError(f"supernet {name!r} is itself a child (of {arch.supernet}); name a spec "
                         "that declares `space`")
    return arch.space


class Subnet(StrictModel):
    """One child of a supernet, in AttentiveNAS' ``set_active_subnet`` format."""

    resolution: int = Field(gt=0)
    width: Choices = Field(description="[stem, mb1 .. mbN, head] output widths")
    depth: Choices = Field(description="blocks per stage (the first d of the supernet's)")
    kernel_size: Choices
    expand_ratio: Choices


class Arch(ArchBase):
    """A BigNAS-style network: a supernet (``space``) or a child of one (``supernet``)."""

    space: SearchSpace | None = Field(None, description="search space (supernet specs only)")
    supernet: str | None = Field(None, pattern=NAME_PATTERN,
                                 description="name of the supernet spec (child specs only)")
    subnet: Subnet | None = Field(None, description="the child's choices; omitted: the largest")
    bn_eps: float = Field(1e-5, gt=0)
    resize_input: bool = Field(True, description="bicubic-resize inputs to subnet.resolution "
                               "first, as AttentiveNAS' forward does")
    global_pool: Literal["avg", "max", "avgmax", "catavgmax", ""] = Field(
        "avg", description="pooling of the last map before the head (AttentiveNAS: average; "
        "'' none: the head gets the map)")
    drop_rate: float = Field(0.0, ge=0, lt=1, description="dropout before the classifier")
    drop_path_rate: float = Field(0.0, ge=0, lt=1, description="stochastic depth (drop connect) "
                                  "of identity-shortcut blocks, linear in block index")

    _supernet_space: SearchSpace | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _space_or_supernet(self, info: ValidationInfo) -> "Arch":
        if (self.space is None) == (self.supernet is None):
            raise ValueError("give exactly one of `space` (a supernet spec) or `supernet` "
                             "(a child spec naming its supernet)")
        if self.supernet is not None:
            if self.subnet is None:
                raise ValueError(f"a child of {self.supernet} needs `subnet` (its choices)")
            lookup = (info.context or {}).get(LOOKUP)
            if lookup is None:
                raise ValueError(f"a child spec's supernet {self.supernet!r} is resolved through "
                                 "the catalog: register the spec (zoo.register_specs) instead of "
                                 "validating it alone")
            self._supernet_space = _supernet_space(self.supernet, lookup)
        space = self.resolved_space()
        if self.subnet is not None:
            space.check(self.subnet, self.supernet or "<this spec>")
        return self

    def resolved_space(self) -> SearchSpace:
        """The search space: this spec's own, or its supernet's (resolved at validation)."""
        space = self.space if self.space is not None else self._supernet_space
        assert space is not None  # guaranteed by validation
        return space

    def resolved_subnet(self) -> Subnet:
        return self.subnet if self.subnet is not None else self.resolved_space().largest()
