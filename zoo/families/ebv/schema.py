"""EBV architecture fields (paper Sec. 3; upstream ImageNet_Validation_Experiment/EBV_ImageNet.py):
the timm backbone whose classifier output is the embedding (``timm.create_model(model_name,
num_classes=dim)``), the embedding dimension, the temperature of the training logits, and the
threshold that newly generated basis vectors meet (upstream Generate_EBV/Generate_EBV.py)."""
from __future__ import annotations

from pydantic import Field

from zoo.spec import ArchBase


class Arch(ArchBase):
    backbone: str = Field(pattern=r"^[a-z][a-z0-9_]*$",
                          description="timm architecture with a global pool + `fc` head (upstream "
                          "CFG['model_name']); its fc maps the pooled features to the embedding")
    dim: int = Field(gt=1, description="dimension of the embedding and of the basis vectors "
                     "(upstream: the backbone's num_classes; 1000 for the ImageNet model)")
    temperature: float = Field(gt=0.0, le=1.0, description="logits = cosine similarity / "
                               "temperature (upstream's training logits, `image_preds @ d.t() / "
                               "0.07`); ranks as the cosines upstream evaluates")
    threshold: float = Field(0.002, gt=0.0, lt=1.0, description="max |cos| between two basis "
                             "vectors that a fresh set (new num_classes) must meet")
    drop_rate: float = Field(0.0, ge=0.0, lt=1.0, description="dropout before the embedding fc")
    drop_path_rate: float = Field(0.0, ge=0.0, lt=1.0, description="stochastic depth")
    global_pool: str | None = Field(None, description="timm's global_pool argument of the "
                                    "backbone (None: its default; '' none: every position is "
                                    "embedded and classified)")
