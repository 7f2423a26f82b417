"""Small helpers shared by tests."""
from __future__ import annotations

import torch

import zoo


def random_eval_model(name: str, seed: int = 0) -> torch.nn.Module:
    """``zoo.create(name)`` in eval mode with seeded random weights and BN running variances
    drawn from [0.5, 1.5] (so the statistics are not the identity), for round-trip tests."""
    torch.manual_seed(seed)
    model = zoo.create(name).eval()
    with torch.no_grad():
        for key, buf in model.named_buffers():
            if key.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
    return model


def run_script(script: str, *args: object) -> int:
    """Run ``scripts/<script>`` as ``python scripts/<script> ARGS`` would, in this process;
    return its exit status."""
    import runpy
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / script
    saved = sys.argv
    sys.argv = [str(path), *map(str, args)]
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as e:
        return int(e.code or 0)
    finally:
        sys.argv = saved
    return 0
