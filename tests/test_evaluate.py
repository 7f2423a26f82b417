"""zoo eval / zoo bench on a synthetic ImageFolder, single process and under torchrun."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import zoo
from zoo.evaluate import DataError, bench, evaluate

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


def test_perfect_model_scores_100(colour_setup) -> None:
    root, _ = colour_setup
    res = evaluate("colour_net", root / "data", weights=str(root / "weights"), batch_size=4,
                   workers=0, progress=False)
    assert (res.num_samples, res.correct1, res.top1, res.top5) == (18, 18, 100.0, 100.0)
    assert not res.partial and res.skipped == 0
    assert res.data_config["input_size"] == [3, 16, 16]


def test_wrong_labels_are_counted_wrong(colour_setup, tmp_path) -> None:
    root, _ = colour_setup
    label_map = tmp_path / "map.json"
    label_map.write_text(json.dumps({"blue": 1, "green": 0, "red": 2}))
    res = evaluate("colour_net", root / "data", weights=str(root / "weights"), workers=0,
                   label_map=label_map, progress=False)
    assert res.correct1 == 7 and res.correct5 == 18   # only red keeps its index


def test_interrupt_gives_a_partial_result(colour_setup) -> None:
    root, _ = colour_setup
    res = evaluate("colour_net", root / "data", weights=str(root / "weights"), batch_size=4,
                   workers=0, progress=False, _interrupt_after=2)
    assert res.partial and res.num_samples == 8


def test_cli_single_process_and_torchrun_agree(colour_setup, tmp_path) -> None:
    root, spec_file = colour_setup
    common = ["eval", "colour_net", "--data", str(root / "data"), "--weights",
              str(root / "weights"), "--specs", str(spec_file), "--batch-size", "4",
              "--workers", "0", "--no-progress"]
    one = _cli(*common, "--out", str(tmp_path / "one.json"))
    assert one.returncode == 0, one.stderr
    two = _cli(*common, "--out", str(tmp_path / "two.json"), torchrun=2)
    assert two.returncode == 0, two.stderr
    r1, r2 = (json.loads((tmp_path / f).read_text()) for f in ("one.json", "two.json"))
    assert r2["world_size"] == 2 and r1["world_size"] == 1
    for key in ("num_samples", "correct1", "correct5", "top1", "top5", "skipped"):
        assert r1[key] == r2[key], key
    assert r1["num_samples"] == 18 and r1["top1"] == 100.0


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
