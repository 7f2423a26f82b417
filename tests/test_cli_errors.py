"""Every ``zoo`` command given bad arguments: exit 2, exactly one ``zoo: error:`` line that says
what to do, no traceback -- unless ``--debug`` (before the command), which re-raises."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from zoo.cli import build_parser, main
from zoo.errors import ZooError

ROOT = Path(__file__).resolve().parents[1]
SMALL = "simplenetv1_small_m1_05"


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """(argv prefix, parser) of every leaf command, nested ones (``design deepmad``) included."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield prefix, parser
        return
    for name, sub in subs[0].choices.items():
        yield from _commands(sub, (*prefix, name))


COMMANDS = sorted(_commands(build_parser()), key=lambda c: c[0])


def _one_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("zoo: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("argv", [c[0] for c in COMMANDS], ids=" ".join)
def test_unknown_option(argv, capsys) -> None:
    assert main([*argv, "--no-such-option"]) == 2
    line = _one_error(capsys)
    # argparse names the missing required arguments first, else the unknown option
    assert ("--no-such-option" in line or "required" in line) and "--help" in line


@pytest.mark.parametrize("argv", [c[0] for c in COMMANDS
                                  if any(a.required for a in c[1]._actions)], ids=" ".join)
def test_missing_required_argument(argv, capsys) -> None:
    assert main(list(argv)) == 2
    line = _one_error(capsys)
    assert "required" in line and "--help" in line


@pytest.mark.parametrize("argv, expected", [
    (["lst"], "did you mean list"),
    (["list", "--family", "simplnet"], "did you mean: simplenet"),
    (["info", "sret_ss"], "did you mean: sret_s"),
    (["info", SMALL, "--specs", "/no/such.yaml"], "no spec file"),
    (["demo", SMALL, "--image", "/no/such.png"], "no such file"),
    (["demo", SMALL, "--image", __file__], "not an image"),
    (["convert", SMALL, "/no/such.pth", "--out", "x"], "no checkpoint file"),
    (["convert", SMALL, __file__, "--out", __file__], "existing file"),
    (["convert", SMALL, __file__, "--out", "out"], "text file, not a checkpoint"),
    (["push", "/no/such/dir", "org/repo"], "not a save_pretrained folder"),
    (["push", str(ROOT), "../repo"], "not a save_pretrained folder"),
    (["verify"], "--all"),
    (["verify", "sret_s.nosuchtag"], "unknown weights tag"),
    (["download", "sret_ss"], "did you mean"),
    (["eval", SMALL, "--data", "/no/such/dir"], "no such data folder"),
    (["eval", SMALL, "--data", ".", "--batch-size", "0"], "positive integer"),
    (["eval", SMALL, "--data", ".", "--label-map", "/no/such.json"], "no such file"),
    (["bench", SMALL, "--batch-size", "0"], "positive integer"),
    (["bench", SMALL, "--runs", "-1"], "positive integer"),
    (["bench", SMALL, "--warmup", "x"], "integer"),
    (["bench", SMALL, "--batch-size", str(10**12), "--runs", "1"], "smaller --batch-size"),
    (["bench", SMALL, "--img-size", "3", "--runs", "1", "--warmup", "0"],
     "cannot run at --img-size 3"),
    (["bench", SMALL, "--device", "cuda:7"], "device"),
    (["bench", SMALL, "--device", "nonsense"], "device"),
    (["calibrate", "bignas_attentivenas_a0", "--data", "/no/such/dir", "--out", "o"],
     "no weights"),
    (["calibrate", SMALL, "--data", ".", "--out", "o"], "nothing to calibrate"),
    (["calibrate", "bignas_attentivenas_a0", "--data", "."], "give --out"),
    (["schema", "--entry", "extra"], "unrecognized"),
    (["design", "deepmad", "--macs", "1e9", "--params", "5e6", "--stages", "0"],
     "positive integer"),
    (["design", "deepmad", "--macs", "lots", "--params", "5e6"], "invalid float"),
])
def test_bad_values_say_what_is_wrong(argv, expected, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    line = _one_error(capsys)
    assert expected.lower() in line.lower(), line


def test_bench_without_cuda_says_so(capsys) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["bench", SMALL, "--device", "cuda"]) == 2
    assert "CUDA is not available" in _one_error(capsys)


def test_debug_shows_the_traceback(capsys) -> None:
    with pytest.raises(ZooError):
        main(["--debug", "info", "sret_ss"])
    with pytest.raises(ZooError):
        main(["--debug", "lst"])


def test_eval_decompression_bomb_is_a_zoo_error(tmp_path, capsys) -> None:
    """An image whose header claims a gigantic size: refused (and skipped with --skip-bad)."""
    from PIL import Image

    folder = tmp_path / "data" / "n01440764"
    folder.mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(folder / "good.png")
    bomb = folder / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb)  # 400 Mpx: over Pillow's 2x bomb limit
    argv = ["eval", SMALL, "--data", str(tmp_path / "data"), "--workers", "0", "--no-progress"]
    assert main(argv) == 2
    assert "bomb.png" in _one_error(capsys)
    with pytest.warns(UserWarning, match="bomb.png"):
        assert main([*argv, "--skip-bad"]) == 0


def test_eval_warns_about_random_weights_and_unmapped_folders(tmp_path) -> None:
    from PIL import Image

    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        Image.new("RGB", (32, 32)).save(tmp_path / cls / "a.png")
    with pytest.warns(UserWarning) as record:
        assert main(["eval", SMALL, "--data", str(tmp_path), "--workers", "0",
                     "--no-progress"]) == 0
    text = " ".join(str(w.message) for w in record)
    assert "randomly initialized" in text and "--label-map" in text


def test_design_without_scipy_names_the_extra(tmp_path) -> None:
    """`zoo design deepmad` where scipy cannot be imported: one line naming `zoo[design]`."""
    blocker = tmp_path / "scipy"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('blocked for the test')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT)])}
    code = ("import importlib.util, sys; real = importlib.util.find_spec; "
            "importlib.util.find_spec = lambda n, *a: None if n == 'scipy' else real(n, *a); "
            "from zoo.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "design", "deepmad", "--macs", "1e9",
                           "--params", "5e6"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 2
    assert "zoo[design]" in proc.stderr and "Traceback" not in proc.stderr


def test_readme_lists_every_command_and_debug() -> None:
    readme = (ROOT / "README.md").read_text()
    for argv, _ in COMMANDS:
        assert f"zoo {' '.join(argv)}" in readme, argv
    assert "--debug" in readme
    assert "zoo[design]" in readme or ".[design]" in readme


def test_demo_checks_the_image_before_building_the_model(monkeypatch, tmp_path, capsys) -> None:
    import zoo.build

    def no_build(*args, **kwargs):
        raise AssertionError("the model was built before --image was checked")

    monkeypatch.setattr(zoo.build, "create", no_build)
    picture = tmp_path / "photo.png"
    picture.write_text("not an image")
    for image, expected in ((picture, "not an image"), (tmp_path / "none.png", "no such file"),
                            (tmp_path, "not a regular file")):
        assert main(["demo", SMALL, "--image", str(image)]) == 2
        assert expected in _one_error(capsys)


def test_demo_says_whose_top1_it_prints(capsys) -> None:
    assert main(["demo", SMALL]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("top-1"))
    assert "as the paper reports it" in line and "not measured here" in line


def test_source_only_messages_describe_the_published_file(monkeypatch, tmp_path, capsys) -> None:
    """A safetensors original is called that, and the message does not talk about unpickling;
    a pickle original keeps the warning."""
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path))
    monkeypatch.delenv("ZOO_ALLOW_SOURCE_FETCH", raising=False)
    assert main(["demo", "singlepath_nas_100", "--pretrained"]) == 2
    line = _one_error(capsys)
    assert "published only as a safetensors file in upstream's layout" in line
    assert "`zoo fetch singlepath_nas_100.rmsp_in1k`" in line
    assert not any(word in line for word in ("pickle", "weights_only", "an safetensors"))
    assert main(["download", SMALL]) == 2
    line = _one_error(capsys)
    assert "published only as an original pickle checkpoint" in line
    assert "weights_only" in line and "never unpickles" in line


@pytest.mark.parametrize("argv", [  # zoo catalog and zoo export check --out up front (below)
    ["design", "deepmad", "--macs", "1e9", "--params", "5e6", "--out", "{blocked}/d.yaml"],
], ids=lambda argv: argv[0])
def test_unusable_output_path_is_named_not_called_a_bug(argv, tmp_path, capsys) -> None:
    """An --out below a regular file: the file system's answer, naming the path, not 'a bug'."""
    blocked = tmp_path / "file"
    blocked.write_text("mine")
    assert main([a.format(blocked=blocked) for a in argv]) == 2
    line = _one_error(capsys)
    assert str(blocked) in line and "check that this path" in line and "a bug" not in line
    assert blocked.read_text() == "mine" and list(tmp_path.iterdir()) == [blocked]


@pytest.mark.parametrize("error", [RuntimeError("boom"), OSError("no path in it")],
                         ids=["RuntimeError", "OSError"])
def test_other_failures_are_reported_as_bugs_in_one_line(error, monkeypatch, capsys) -> None:
    import zoo.cli

    def fail(args):
        raise error

    monkeypatch.setattr(zoo.cli, "cmd_families", fail)
    assert main(["families"]) == 2
    line = _one_error(capsys)
    assert f"unexpected {type(error).__name__}" in line and "this is a bug" in line
    assert "zoo --debug" in line
    with pytest.raises(type(error)):
        main(["--debug", "families"])


def test_catalog_checks_out_before_measuring(monkeypatch, tmp_path, capsys) -> None:
    import zoo.site.generate

    def no_collect(*args, **kwargs):
        raise AssertionError("models were measured before --out was checked")

    monkeypatch.setattr(zoo.site.generate, "collect", no_collect)
    afile = tmp_path / "afile"
    afile.write_text("mine")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    for out, expected in ((afile, "is not a folder"), (foreign, "was not written by `zoo catalog`"),
                          (afile / "site", f"{afile} is a file, not a folder")):
        assert main(["catalog", SMALL, "--quiet", "--out", str(out)]) == 2
        assert expected in _one_error(capsys)
    assert afile.read_text() == "mine" and (foreign / "notes.txt").read_text() == "mine"
