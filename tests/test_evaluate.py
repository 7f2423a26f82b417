"""zoo eval / zoo bench on a synthetic ImageFolder, single process and under torchrun."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import zoo
import zoo.evaluate as zoo_evaluate
from zoo.cli import main as zoo_main
from zoo.errors import RegistryError
from zoo.bench import bench
from zoo.evaluate import DataError, evaluate, find_samples, load_label_map, shard_indices
from zoo.publish import metrics_from_eval
from zoo.registry import Metrics

COLOURS = {"blue": (0, 0, 255), "green": (0, 255, 0), "red": (255, 0, 0)}
SPEC = """\
defaults: {family: simplenet, paper: {title: colour classifier for tests}}
models:
  colour_net:
    data: {input_size: [3, 16, 16], crop_pct: 1.0, num_classes: 3, label_set: colours,
           mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], interpolation: bilinear,
           first_conv: features.0, classifier: head.fc}
    arch: {layers: [{filters: 3, dropout: null}], strides: {}}
"""


@pytest.fixture(scope="module")
def colour_setup(tmp_path_factory):
    """An ImageFolder of pure-colour images and a SimpleNet-family model that is perfect on it
    (identity 3x3 conv, identity BN, global max pool, a Linear mapping channel -> class)."""
    root = tmp_path_factory.mktemp("colours")
    data = root / "data" / "val"
    for i, (name, rgb) in enumerate(COLOURS.items()):
        (data / name).mkdir(parents=True)
        for j in range(5 + i):  # uneven classes: 5, 6, 7 images
            Image.new("RGB", (20 + j, 18), rgb).save(data / name / f"{j}.png")
    spec_file = root / "colour.yaml"
    spec_file.write_text(SPEC)
    if "colour_net" not in zoo.list_models():
        zoo.register_specs(spec_file)
    model = zoo.create("colour_net").eval()
    with torch.no_grad():
        conv = model.features[0]
        conv.weight.zero_()
        conv.bias.zero_()
        for c in range(3):
            conv.weight[c, c, 1, 1] = 1.0
        bn = model.features[1]
        bn.running_mean.zero_(), bn.running_var.fill_(1.0), bn.weight.fill_(1.0), bn.bias.zero_()
        fc = model.get_classifier()
        fc.weight.zero_(), fc.bias.zero_()
        for cls, channel in ((0, 2), (1, 1), (2, 0)):  # blue, green, red (sorted folder names)
            fc.weight[cls, channel] = 1.0
    zoo.save_pretrained(model, root / "weights")
    return root, spec_file


def _cli(*args: str, torchrun: int = 0) -> subprocess.CompletedProcess:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                 "--nproc-per-node", str(torchrun), "-m", "zoo"] if torchrun else [sys.executable, "-m", "zoo"])
    return subprocess.run([*launcher, *args], capture_output=True, text=True, timeout=300)


def test_perfect_model_scores_100(colour_setup, capsys) -> None:
    root, _ = colour_setup
    res = evaluate("colour_net", root / "data", weights=str(root / "weights"), batch_size=4,
                   workers=0, progress=True)
    assert (res.num_samples, res.correct1, res.top1, res.top5) == (18, 18, 100.0, 100.0)
    assert not res.partial and res.skipped == 0 and res.images_per_sec > 0
    assert res.data == str(root / "data" / "val")  # the val split, found without --split
    # the spec's data config (not timm's 224 px / ImageNet mean defaults) built the transform
    assert res.data_config["input_size"] == [3, 16, 16]
    assert res.data_config["mean"] == [0.5, 0.5, 0.5] and res.data_config["crop_pct"] == 1.0
    # a progress bar with the elapsed<remaining (ETA) field, on stderr
    assert re.search(r"eval colour_net.*18/18 \[\d\d:\d\d<\d\d:\d\d", capsys.readouterr().err)


def test_split_folder(colour_setup) -> None:
    root, _ = colour_setup
    res = evaluate("colour_net", root / "data", split="val", weights=str(root / "weights"),
                   workers=0, progress=False)
    assert res.num_samples == 18 and res.data == str(root / "data" / "val")
    res = evaluate("colour_net", root / "data" / "val", weights=str(root / "weights"),
                   workers=0, progress=False)   # the split folder itself
    assert res.num_samples == 18
    # a split that is not there is an error, never a silent evaluation of the parent folder
    with pytest.raises(DataError, match="no split folder 'test'"):
        evaluate("colour_net", root / "data", split="test", weights=str(root / "weights"),
                 workers=0, progress=False)


@pytest.mark.parametrize("world", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("n", [0, 1, 5, 17, 18])
def test_shards_cover_every_index_once(n: int, world: int) -> None:
    shards = [shard_indices(n, rank, world) for rank in range(world)]
    flat = [i for shard in shards for i in shard]
    assert sorted(flat) == list(range(n))           # nothing dropped, nothing counted twice
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    if n % world == 0:  # no padding needed: exactly DistributedSampler's split
        from torch.utils.data import DistributedSampler

        for rank, shard in enumerate(shards):
            assert shard == list(DistributedSampler(range(n), num_replicas=world, rank=rank,
                                                    shuffle=False))


def test_wrong_labels_are_counted_wrong(colour_setup, tmp_path) -> None:
    root, _ = colour_setup
    label_map = tmp_path / "map.json"
    label_map.write_text(json.dumps({"blue": 1, "green": 0, "red": 2}))
    res = evaluate("colour_net", root / "data", weights=str(root / "weights"), workers=0,
                   label_map=label_map, progress=False)
    assert res.correct1 == 7 and res.correct5 == 18   # only red keeps its index
    label_map.write_text("blue 0\ngreen 1\nred 5\n")   # the 'folder index' lines format
    with pytest.raises(DataError, match=r"\[5\] are beyond the model's 3 classes"):
        evaluate("colour_net", root / "data", weights=str(root / "weights"), workers=0,
                 label_map=label_map, progress=False)


def test_imagenet_synset_folders_get_the_standard_indices(tmp_path) -> None:
    for synset in ("n01443537", "n01440764"):   # goldfish (index 1), tench (index 0)
        (tmp_path / synset).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / synset / "a.png")
    mapping = load_label_map(None, "imagenet-1k", 1000, tmp_path)
    assert mapping is not None and len(mapping) == 1000
    assert (mapping["n01440764"], mapping["n01443537"], mapping["n15075141"]) == (0, 1, 999)
    (tmp_path / "n01440764" / "a.png").unlink()
    (tmp_path / "n01440764").rmdir()
    samples, _ = find_samples(tmp_path, load_label_map(None, "imagenet-1k", 1000, tmp_path))
    assert [s.target for s in samples] == [1]      # a subset keeps its ImageNet index
    assert load_label_map(None, "cifar-10", 10, tmp_path) is None


def test_interrupt_gives_a_partial_result(colour_setup) -> None:
    root, _ = colour_setup
    res = evaluate("colour_net", root / "data", weights=str(root / "weights"), batch_size=4,
                   workers=0, progress=False, _interrupt_after=2)
    assert res.partial and res.num_samples == 8


def test_cli_json_feeds_push_metrics_and_partial_is_marked(colour_setup, tmp_path, monkeypatch,
                                                           capsys) -> None:
    """`zoo eval --out` JSON is what `zoo push --metrics` attaches; an interrupted run writes a
    JSON marked partial (exit 130) that push refuses."""
    root, _ = colour_setup
    args = ["eval", "colour_net", "--data", str(root / "data"), "--weights", str(root / "weights"),
            "--batch-size", "4", "--workers", "0", "--no-progress", "--out"]
    assert zoo_main([*args, str(tmp_path / "full.json")]) == 0
    metrics = Metrics.model_validate(metrics_from_eval(tmp_path / "full.json"))
    assert (metrics.top1, metrics.top5, metrics.num_samples, metrics.img_size) == (100.0, 100.0, 18, 16)
    assert "PARTIAL" not in capsys.readouterr().out

    real = zoo_evaluate.evaluate
    monkeypatch.setattr(zoo_evaluate, "evaluate",
                        lambda *a, **kw: real(*a, **kw, _interrupt_after=1))   # Ctrl-C after 1 batch
    assert zoo_main([*args, str(tmp_path / "part.json")]) == 130
    assert "PARTIAL" in capsys.readouterr().out
    part = json.loads((tmp_path / "part.json").read_text())
    assert part["partial"] is True and part["num_samples"] == 4
    with pytest.raises(RegistryError, match="partial"):
        metrics_from_eval(tmp_path / "part.json")


def test_cli_single_process_and_torchrun_agree(colour_setup, tmp_path) -> None:
    root, spec_file = colour_setup
    # 17 images: odd, so a padded DistributedSampler would count 18 and drop_last 16
    common = ["eval", "colour_net", "--data", str(root / "data"), "--weights",
              str(root / "weights"), "--specs", str(spec_file), "--batch-size", "4",
              "--workers", "0", "--no-progress", "--limit", "17"]
    one = _cli(*common, "--out", str(tmp_path / "one.json"))
    assert one.returncode == 0, one.stderr
    two = _cli(*common, "--out", str(tmp_path / "two.json"), torchrun=2)
    assert two.returncode == 0, two.stderr
    r1, r2 = (json.loads((tmp_path / f).read_text()) for f in ("one.json", "two.json"))
    assert r2["world_size"] == 2 and r1["world_size"] == 1
    for key in ("num_samples", "correct1", "correct5", "top1", "top5", "skipped"):
        assert r1[key] == r2[key], key
    assert r1["num_samples"] == 17 and r1["top1"] == 100.0
    assert two.stdout.count("colour_net: top-1") == 1   # only rank 0 reports


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs for nccl")
def test_cli_torchrun_nccl_on_gpus(colour_setup, tmp_path) -> None:
    root, spec_file = colour_setup
    out = _cli("eval", "colour_net", "--data", str(root / "data"), "--weights", str(root / "weights"),
               "--specs", str(spec_file), "--batch-size", "4", "--workers", "0", "--no-progress",
               "--limit", "17", "--out", str(tmp_path / "gpu.json"), torchrun=2)
    assert out.returncode == 0, out.stderr
    res = json.loads((tmp_path / "gpu.json").read_text())
    assert res["device"] == "cuda:0" and res["world_size"] == 2
    assert (res["num_samples"], res["correct1"]) == (17, 17)


def test_limit(colour_setup) -> None:
    root, _ = colour_setup
    res = evaluate("colour_net", root / "data", weights=str(root / "weights"), limit=4,
                   workers=0, progress=False)
    assert res.num_samples == 4


def test_corrupt_image_is_an_error_or_skipped(colour_setup, tmp_path) -> None:
    root, _ = colour_setup
    import shutil

    data = tmp_path / "data"
    shutil.copytree(root / "data" / "val", data)
    (data / "red" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match="broken.png"):
        evaluate("colour_net", data, weights=str(root / "weights"), workers=0, progress=False)
    with pytest.warns(UserWarning, match="skipped unreadable image .*broken.png"):
        res = evaluate("colour_net", data, weights=str(root / "weights"), workers=0,
                       progress=False, skip_bad=True)
    assert res.skipped == 1 and res.num_samples == 18 and res.top1 == 100.0


def test_empty_class_folder_and_missing_folder(colour_setup, tmp_path) -> None:
    root, _ = colour_setup
    (tmp_path / "data" / "red").mkdir(parents=True)
    Image.new("RGB", (16, 16), (255, 0, 0)).save(tmp_path / "data" / "red" / "a.png")
    (tmp_path / "data" / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        evaluate("colour_net", tmp_path / "data", weights=str(root / "weights"), workers=0,
                 progress=False)
    with pytest.warns(UserWarning, match="holds no images"):
        evaluate("colour_net", tmp_path / "data", weights=str(root / "weights"), workers=0,
                 progress=False, skip_bad=True)
    out = _cli("eval", "simplenetv1_small_m1_05", "--data", str(tmp_path / "nope"))
    assert out.returncode == 2 and "no such data folder" in out.stderr


def test_bench_reports_throughput() -> None:
    res = bench("simplenetv1_small_m1_05", batch_size=2, img_size=64, warmup=1, runs=3)
    assert res.images_per_sec > 0 and res.latency_ms_p90 >= res.latency_ms_median > 0
    assert res.runs == 3 and res.img_size == 64


class _FakeClock:
    """``time.perf_counter`` that only moves when the fake model runs."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_bench_excludes_warmup_and_takes_the_median(monkeypatch) -> None:
    clock = _FakeClock()
    durations = iter([100.0, 100.0, 3.0, 1.0, 2.0, 5.0, 4.0])  # 2 slow warm-up calls, 5 runs
    shapes = []

    class Fake(torch.nn.Module):
        def forward(self, x):
            shapes.append(tuple(x.shape))
            clock.now += next(durations)
            return x

    monkeypatch.setattr(zoo_evaluate.time, "perf_counter", clock)
    monkeypatch.setattr(zoo.build, "create", lambda name, **kw: Fake())
    res = bench("simplenetv1_small_m1_05", batch_size=4, img_size=32, warmup=2, runs=5,
                device="cpu")
    assert len(shapes) == 7 and shapes[0] == (4, 3, 32, 32)
    assert res.latency_ms_median == 3000.0 and res.images_per_sec == 4 / 3.0
    assert res.latency_ms_p90 == 5000.0


def test_cli_bench_options(monkeypatch, capsys) -> None:
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda m: compiled.append(m) or m)
    args = ["bench", "simplenetv1_small_m1_05", "--batch-size", "2", "--img-size", "32",
            "--warmup", "1", "--runs", "2", "--device", "cpu"]
    assert zoo_main([*args, "--channels-last", "--amp", "--compile"]) == 0
    out = capsys.readouterr().out
    assert "img/s" in out and "latency median" in out and "2 runs after warm-up" in out
    assert "'channels_last': True, 'compile': True, 'amp': True" in out and len(compiled) == 1
