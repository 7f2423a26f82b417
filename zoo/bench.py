"""``zoo bench``: inference throughput and latency of a model (warm-up excluded)."""
from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from zoo.argtypes import non_negative_int, positive_int
from zoo.catalog import get_spec, register_specs
from zoo.errors import UsageError, ZooError


@dataclass
class BenchResult:
    model: str
    batch_size: int
    img_size: int
    device: str
    images_per_sec: float
    latency_ms_median: float
    latency_ms_p90: float
    runs: int
    options: dict[str, Any]


def bench(name: str, *, batch_size: int = 8, img_size: int | None = None,
          channels_last: bool = False, compile: bool = False, amp: bool = False,
          device: str | None = None, warmup: int = 3, runs: int = 10) -> BenchResult:
    """Inference throughput/latency (warm-up excluded; median and p90 over ``runs``)."""
    import torch

    from zoo.build import create

    from zoo.device import resolve_device

    device = str(resolve_device(device))
    model = create(name).to(device).eval()
    spec = get_spec(name.partition(".")[0])
    size = img_size or spec.data.input_size[1]
    with _sized_errors(name, batch_size, size, spec.data.input_size[1], device):
        return _time(model, spec.data.in_chans, batch_size, size, channels_last=channels_last,
                     compile=compile, amp=amp, device=device, warmup=warmup, runs=runs,
                     name=name)


@contextmanager
def _sized_errors(name: str, batch_size: int, size: int, spec_size: int,
                  device: str) -> Iterator[None]:
    """Out of memory, or a model that cannot run at ``--img-size``: a :class:`UsageError`
    saying which option to change, instead of torch's allocator message."""
    import torch

    try:
        yield
    except RuntimeError as e:
        text = " ".join(str(e).split())[:300]
        if isinstance(e, torch.OutOfMemoryError) or "can't allocate memory" in text:
            raise UsageError(f"{name}: out of memory for batch {batch_size} at {size} px on "
                             f"{device} ({text}); use a smaller --batch-size or --img-size") from None
        if size != spec_size and not isinstance(e, ZooError):
            raise UsageError(f"{name} cannot run at --img-size {size} ({text}); its spec's size "
                             f"is {spec_size}") from None
        raise


def _time(model: Any, in_chans: int, batch_size: int, size: int, *, channels_last: bool,
          compile: bool, amp: bool, device: str, warmup: int, runs: int,
          name: str) -> BenchResult:
    import torch

    x = torch.randn(batch_size, in_chans, size, size, device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    fn = torch.compile(model) if compile else model
    autocast = torch.autocast(device_type=torch.device(device).type,
                              dtype=torch.bfloat16 if device == "cpu" else torch.float16,
                              enabled=amp)
    times = []
    with torch.inference_mode(), autocast:
        for i in range(warmup + runs):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn(x)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    p90 = sorted(times)[math.ceil(0.9 * len(times)) - 1]  # nearest rank
    return BenchResult(name, batch_size, size, device, batch_size / med, med * 1e3, p90 * 1e3,
                       runs, {"channels_last": channels_last, "compile": compile, "amp": amp})


def _cmd_bench(args: argparse.Namespace) -> int:
    for path in args.specs or []:
        register_specs(path)
    res = bench(args.name, batch_size=args.batch_size, img_size=args.img_size,
                channels_last=args.channels_last, compile=args.compile, amp=args.amp,
                device=args.device, warmup=args.warmup, runs=args.runs)
    print(f"{res.model}: {res.images_per_sec:.1f} img/s, latency median {res.latency_ms_median:.2f} ms"
          f" (p90 {res.latency_ms_p90:.2f} ms), batch {res.batch_size}, {res.img_size} px, "
          f"{res.device}, {res.runs} runs after warm-up, {res.options}")
    return 0



def register(sub: Any) -> None:
    p = sub.add_parser("bench", help="inference throughput and latency")
    p.add_argument("name")
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--img-size", type=positive_int)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--amp", action="store_true")
    p.add_argument("--device")
    p.add_argument("--warmup", type=non_negative_int, default=3)
    p.add_argument("--runs", type=positive_int, default=10)
    p.add_argument("--specs", action="append", help="extra spec YAML file(s) to register")
    p.set_defaults(func=_cmd_bench)
