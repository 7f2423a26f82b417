"""Hostile hubs and careless users (issue 17): every input ends in a zoo error or a correct load,
and nothing is written outside huggingface_hub's cache, zoo's cache and the requested output.

The sandbox of each test holds the caches (``hub`` fixture: ``HF_HUB_CACHE``/``ZOO_CACHE`` under
one temporary root) next to a "victim" file; the tests compare a listing of everything outside
the caches before and after.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zoo
from tests.hubfixtures import safetensors_bytes
from zoo.errors import (CheckpointError, CorruptWeightsError, HubResponseError, SpecError,
                        StateDictMismatchError, WeightsError, ZooError)
from zoo.weights import save_pretrained
from zoo.weights.refs import check_repo_id, check_revision, is_repo_id, is_revision, parse_hub_reference

NAME = "simplenetv1_small_m1_05"          # small and fast; mode 1
TWIN = "simplenetv1_small_m2_05"          # same keys and shapes, other stride mode
ROOT = Path(__file__).resolve().parents[1]
HOSTILE_SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                            suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                   HealthCheck.too_slow])


# -- the sandbox -------------------------------------------------------------------------------

def _listing(root: Path, skip: tuple[Path, ...]) -> dict[str, str]:
    """path -> content hash (files) or kind, for everything under ``root`` outside ``skip``."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if not any((here / d) == s for s in skip)]
        for d in dirnames:
            out[str((here / d).relative_to(root))] = "dir"
        for f in filenames:
            p = here / f
            out[str(p.relative_to(root))] = ("link" if p.is_symlink() else
                                             hashlib.sha256(p.read_bytes()).hexdigest())
    return out


@pytest.fixture
def sandbox(hub, tmp_path_factory, monkeypatch):
    """(root, check): the temp tree around the caches, with a victim file in it and as the
    working directory; ``check()`` asserts nothing changed there outside the caches."""
    cache_root = Path(os.environ["HF_HOME"]).parent
    monkeypatch.chdir(cache_root)
    victim = cache_root / "victim.txt"
    victim.write_text("precious")
    skip = (Path(os.environ["HF_HOME"]), Path(os.environ["ZOO_CACHE"]))
    before = _listing(cache_root, skip)

    def check(*allowed: Path) -> None:
        after = _listing(cache_root, (*skip, *allowed))
        assert after == {k: v for k, v in before.items()
                         if not any((cache_root / k).is_relative_to(a) for a in allowed)}
        assert victim.read_text() == "precious"
    return cache_root, check


def _reference(name: str = NAME) -> torch.nn.Module:
    torch.manual_seed(0)
    return zoo.create(name).eval()


def _x(name: str = NAME) -> torch.Tensor:
    return torch.randn(2, *zoo.get_spec(name).data.input_size,
                       generator=torch.Generator().manual_seed(1))


def _serve(hub, repo: str, model: torch.nn.Module, config: bytes | None = None) -> str:
    """Commit model.safetensors (+ config.json) written by save_pretrained to ``repo``."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        save_pretrained(model, tmp)
        files = {"model.safetensors": (Path(tmp) / "model.safetensors").read_bytes(),
                 "config.json": config if config is not None
                 else (Path(tmp) / "config.json").read_bytes()}
    return hub.commit(repo, files)


# -- 1. a weights string never writes outside the cache ----------------------------------------

@pytest.mark.parametrize("depth", [1, 3, 8, 14])
def test_traversing_revision_is_refused_before_any_request(sandbox, hub, depth) -> None:
    root, check = sandbox
    reference = "hf-hub:org/repo@" + "../" * depth + "victim.txt"
    with pytest.raises(WeightsError, match="invalid Hub revision"):
        zoo.create(NAME, weights=reference)
    assert hub.requests == []
    check()


@pytest.mark.parametrize("reference", [
    "hf-hub:", "hf-hub:org", "hf-hub:org/", "hf-hub:/repo", "hf-hub:org/repo/extra",
    "hf-hub:org/..", "hf-hub:../repo", "hf-hub:org--x/repo", "hf-hub:org/repo@",
    "hf-hub:org/repo@main/../../x", "hf-hub:org/repo@refs//pr", "hf-hub:org/repo@a.lock",
    "hf-hub:org/repo@" + "x" * 300, "hf-hub:org/re po", "hf-hub:org/repo@ma in",
])
def test_malformed_hub_references_are_zoo_errors(sandbox, hub, reference) -> None:
    _, check = sandbox
    with pytest.raises(WeightsError):
        zoo.create(NAME, weights=reference)
    assert hub.requests == []
    check()


def test_reference_grammar_accepts_what_the_hub_uses() -> None:
    assert parse_hub_reference("hf-hub:timm/spnasnet_100.rmsp_in1k") == (
        "timm/spnasnet_100.rmsp_in1k", None)
    for rev in ["main", "v1.0", "refs/pr/1", "a" * 40, "release-2024_01"]:
        assert is_revision(rev), rev
    for rev in ["..", "a/../b", "/main", "main/", "x.lock", "", "a b", "a\x00b", "~1", "a" * 256]:
        assert not is_revision(rev), rev
    for repo in ["org/repo", "Org-1/re.po_2"]:
        assert is_repo_id(repo)
    for repo in ["org", "org/re/po", "../x", "org/..", "org--a/b", "org/b.", "-org/b", "org/a..b",
                 "org/repo.git"]:
        assert not is_repo_id(repo), repo
    with pytest.raises(WeightsError) as err:
        check_repo_id("org/a..b")
    assert str(err.value) == ("invalid Hub repo id 'org/a..b': use org/name (letters, digits, '-', '_', "
                              "'.'; no '..' or '--'; at most 96 characters each)")


weights_strings = st.lists(st.sampled_from(list("ab./-_@:~%\\ \x00é") + [
    "../", "hf-hub:", "org/", "@main", "repo", ".safetensors", "model.safetensors"]),
    max_size=12).map("".join)


@given(text=weights_strings)
@HOSTILE_SETTINGS
def test_any_weights_string_is_an_error_or_a_load_never_a_write(sandbox, hub, text) -> None:
    _, check = sandbox
    try:
        zoo.create(NAME, weights=text)
    except ZooError:
        pass
    check()


# -- 2. a hostile endpoint cannot create files outside the cache -------------------------------

@pytest.mark.parametrize("header, value", [
    ("X-Repo-Commit", "../../../../evil"), ("X-Repo-Commit", "0" * 39 + "/"),
    ("ETag", '"../../../evil"'), ("X-Linked-Etag", '"../../evil"'), ("ETag", '"/tmp/evil"'),
    ("ETag", 'W/"a/b"'),
])
@pytest.mark.parametrize("methods", [("HEAD",), ("GET",), ("HEAD", "GET")])
def test_hostile_headers_are_refused_before_anything_is_written(sandbox, hub, header, value,
                                                                methods) -> None:
    root, check = sandbox
    _serve(hub, "org/net", _reference())
    hub.hostile("org/net", "model.safetensors", headers={header: value}, methods=methods)
    try:
        model = zoo.create(NAME, weights="hf-hub:org/net")
    except HubResponseError as e:
        assert header.lower() in str(e) and "refused" in str(e)
    else:  # the hostile header was on a request huggingface_hub did not need: a correct load
        assert torch.equal(model(_x()), _reference()(_x()))
    check()
    assert not list(root.rglob("evil"))


def test_hostile_not_found_cannot_plant_a_ref(sandbox, hub) -> None:
    """huggingface_hub caches a 404's X-Repo-Commit (``.no_exist/<commit>/``, ``refs/``)."""
    root, check = sandbox
    hub.create_repo("org/net")
    hub.hostile("org/net", "model.safetensors", status=404,
                headers={"X-Repo-Commit": "../../../../../planted", "X-Error-Code": "EntryNotFound"})
    with pytest.raises(HubResponseError):
        zoo.create(NAME, weights="hf-hub:org/net")
    check()
    assert not list(root.rglob("planted"))


@pytest.mark.parametrize("fault", [
    {"body": b"\x00" * 100},  # other bytes under the file's own headers: a size mismatch
    {"body": b"\x00" * 100, "headers": {"X-Linked-Size": "100"}},  # sizes agree: not safetensors
    {"body": b"<!DOCTYPE html><html>sign in</html>", "headers": {"Content-Type": "text/html"}},
    {"body": b""},
    {"status": 500}, {"status": 403}, {"status": 418},
    {"status": 302, "headers": {"Location": "/../../victim.txt"}},
], ids=lambda fault: "-".join(f"{k}={str(v)[:12]}" for k, v in fault.items()))
def test_hostile_statuses_and_bodies_end_in_zoo_errors(sandbox, hub, fault) -> None:
    """The emulator's hostile mode with other status codes and bodies: a zoo error, and
    nothing outside the caches changes."""
    root, check = sandbox
    _serve(hub, "org/net", _reference())
    hub.hostile("org/net", "model.safetensors", **fault)
    with pytest.raises(ZooError):
        zoo.create(NAME, weights="hf-hub:org/net")
    check()


header_values = st.one_of(
    st.text(alphabet=st.sampled_from(list("0123456789abcdef./-\"W ")), max_size=70),
    st.sampled_from(["a" * 40, "b" * 64, '"' + "c" * 64 + '"', "../" * 5, "..", "/", ""]))


@given(commit=header_values, etag=header_values)
@HOSTILE_SETTINGS
def test_any_server_headers_are_an_error_or_a_load_never_a_write(sandbox, hub, commit,
                                                                 etag) -> None:
    _, check = sandbox
    if "org/net" not in hub.repos():
        _serve(hub, "org/net", _reference())
    hub.clear_faults()
    hub.hostile("org/net", "model.safetensors", headers={"X-Repo-Commit": commit, "ETag": etag,
                                                         "X-Linked-Etag": etag})
    try:
        model = zoo.create(NAME, weights="hf-hub:org/net")
    except ZooError:
        pass
    else:
        assert torch.equal(model(_x()), _reference()(_x()))
    check()


# -- 3-5. config.json is validated before anything is built -------------------------------------

def _folder(tmp: Path, name: str = NAME, config: object | None = None) -> Path:
    out = tmp / "weights"
    save_pretrained(_reference(name), out)
    if config is not None:
        (out / "config.json").write_text(json.dumps(config))
    return out


def _config(tmp: Path, **zoo_section: object) -> dict:
    folder = _folder(tmp / "base")
    config = json.loads((folder / "config.json").read_text())
    config["zoo"].update(zoo_section)
    return config


def test_unknown_layout_is_refused(tmp_path) -> None:
    folder = _folder(tmp_path, config=_config(tmp_path, layout="anything"))
    with pytest.raises(CorruptWeightsError, match="layout"):
        zoo.create(NAME, weights=folder)


@pytest.mark.parametrize("layout", ["zoo", "original"])
def test_architecture_check_runs_in_every_layout(tmp_path, layout) -> None:
    """Weights of the twin variant (same keys and shapes, other stride mode) are refused, also
    when config.json claims another layout."""
    folder = _folder(tmp_path, TWIN)
    config = json.loads((folder / "config.json").read_text())
    config["zoo"]["layout"] = layout
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(StateDictMismatchError, match=TWIN):
        zoo.create(NAME, weights=folder)
    (folder / "config.json").unlink()  # the file's own metadata still names it
    with pytest.raises(StateDictMismatchError, match=TWIN):
        zoo.create(NAME, weights=folder)


def test_packed_layout_of_a_family_without_one_is_refused(tmp_path) -> None:
    folder = _folder(tmp_path, config=_config(tmp_path, layout="packed"))
    with pytest.raises(CorruptWeightsError, match="packed"):
        zoo.create(NAME, weights=folder)


@pytest.mark.parametrize("num_classes", [10**12, -1, 2**70, 1.5, "1000", True])
def test_config_num_classes_is_bounded_before_building(tmp_path, num_classes) -> None:
    config = _config(tmp_path)
    config["num_classes"] = num_classes
    folder = _folder(tmp_path, config=config)
    with pytest.raises(CorruptWeightsError, match="num_classes"):
        zoo.create(NAME, weights=folder)


@pytest.mark.parametrize("text", ['"a string"', "[1, 2]", "null", "12", "{", "\xff\xfe",
                                  "[" * 100_000 + "]" * 100_000,
                                  '{"a":' * 200 + "1" + "}" * 200])
def test_config_that_is_no_object_is_a_zoo_error(tmp_path, text) -> None:
    folder = _folder(tmp_path)
    (folder / "config.json").write_bytes(text.encode("utf-8", "surrogateescape")
                                         if text != "\xff\xfe" else b"\xff\xfe")
    with pytest.raises(CorruptWeightsError):
        zoo.create(NAME, weights=folder)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**80, max_value=2**80),
              st.floats(allow_nan=False), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12)
config_keys = st.sampled_from(["architecture", "num_classes", "num_features", "pretrained_cfg",
                               "zoo", "label_names"])


@given(top=st.dictionaries(config_keys, json_values, max_size=5),
       section=st.dictionaries(st.sampled_from(["layout", "tag", "spec", "extra"]), json_values,
                               max_size=3))
@HOSTILE_SETTINGS
def test_any_config_json_is_an_error_or_a_correct_load(sandbox, hub, top, section) -> None:
    """Each generated config.json, in a local folder and served by the Hub beside the same
    weights: a zoo error or a correct load, and nothing written outside the caches (the input
    folder itself is left as it was)."""
    root, check = sandbox
    config = dict(top)
    if section:
        config["zoo"] = section
    folder = root / "input"
    if not folder.exists():
        save_pretrained(_reference(), folder)
    (folder / "config.json").write_text(json.dumps(config))
    given = _listing(folder, ())
    commit = hub.commit("org/cfg", {name: (folder / name).read_bytes()
                                    for name in ("model.safetensors", "config.json")})
    for weights in (folder, f"hf-hub:org/cfg@{commit}"):
        try:
            model = zoo.create(NAME, weights=weights)
        except ZooError:
            continue
        assert model.num_classes == (config.get("num_classes") or 1000)
        if model.num_classes == 1000:
            assert torch.equal(model(_x()), _reference()(_x()))
    check(folder)
    assert _listing(folder, ()) == given


def test_spec_num_classes_beyond_any_label_set_is_a_spec_error() -> None:
    from zoo.catalog import validate_spec
    from zoo.catalog import catalog

    raw = dict(catalog().resolve(NAME))
    raw["data"] = {**raw["data"], "num_classes": 2**70}
    with pytest.raises(SpecError, match="num_classes"):
        validate_spec(raw)
    with pytest.raises(SpecError, match="num_classes"):
        zoo.create(NAME, num_classes=2**70)


@pytest.mark.parametrize("weights", ["dir/bad\x00path", "x" * 5000 + ".safetensors",
                                     "/proc/self/nonexistent/model.safetensors", "/dev/null",
                                     "/dev/zero"])
def test_unusable_weights_paths_are_zoo_errors(weights) -> None:
    with pytest.raises(WeightsError):
        zoo.create(NAME, weights=weights)
    with pytest.raises(ZooError):  # no path: a registry tag that does not exist
        zoo.create(NAME, weights="bad\x00path")


# -- 6. regular files only; stale partial downloads are removed ---------------------------------

def test_fifo_weights_fail_fast_instead_of_hanging(tmp_path) -> None:
    folder = _folder(tmp_path)
    (folder / "model.safetensors").unlink()
    os.mkfifo(folder / "model.safetensors")
    outcome: list[BaseException] = []

    def load() -> None:
        try:
            zoo.create(NAME, weights=folder)
        except BaseException as e:  # noqa: BLE001 - recorded for the assertion
            outcome.append(e)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(60)
    if thread.is_alive():  # unblock the reader so the thread can end, then fail
        with open(folder / "model.safetensors", "wb"):
            pass
        pytest.fail("reading a FIFO as weights hangs")
    assert len(outcome) == 1 and isinstance(outcome[0], WeightsError)
    assert "not a regular file" in str(outcome[0])


def test_partial_downloads_left_by_a_killed_process_are_removed(sandbox, hub) -> None:
    """A download killed with kill -9 leaves ``blobs/<etag>.<id>.incomplete`` (huggingface_hub
    names temporary files per process, so nobody resumes them); the next zoo download from the
    repo removes those whose lock nobody holds, and keeps one being written."""
    from filelock import FileLock
    from huggingface_hub import constants

    _serve(hub, "org/net", _reference())
    blobs = Path(constants.HF_HUB_CACHE) / "models--org--net" / "blobs"
    locks = Path(constants.HF_HUB_CACHE) / ".locks" / "models--org--net"
    blobs.mkdir(parents=True)
    locks.mkdir(parents=True)
    stale = blobs / f"{'a' * 64}.1234abcd.incomplete"
    busy = blobs / f"{'b' * 64}.5678abcd.incomplete"
    stale.write_bytes(b"x" * 1000)
    busy.write_bytes(b"y" * 1000)
    script = ("import sys, time; from filelock import FileLock; "
              "l = FileLock(sys.argv[1]); l.acquire(); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", script, str(locks / f"{'b' * 64}.lock")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        zoo.create(NAME, weights="hf-hub:org/net")
        assert not stale.exists()
        assert busy.exists()  # another process is still writing it
    finally:
        holder.kill()
        holder.wait()
    zoo.create(NAME, weights="hf-hub:org/net")
    assert not busy.exists()
    assert FileLock(str(locks / f"{'b' * 64}.lock"), timeout=0).acquire()


# -- 7. a broken plug-in is skipped with a warning ------------------------------------------------

@pytest.mark.parametrize("group", ["zoo.specs", "zoo.families"])
def test_broken_entry_point_plugin_is_skipped_with_a_warning(tmp_path, group) -> None:
    dist = tmp_path / "brokenplugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenplugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{group}]\nbroken = missing_plugin_package\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-m", "zoo", "list", "sret*"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "sret_s" in proc.stdout.split()
    assert "broken" in proc.stderr and "missing_plugin_package" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- 8. refused checkpoints say what was refused, never "weights_only=False" ------------------------

class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_malicious_pickle_names_the_refused_global(tmp_path) -> None:
    from zoo.weights.checkpoint import load_original_checkpoint

    path = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(2), "payload": _Evil()}, path)
    with pytest.raises(CheckpointError) as e:
        load_original_checkpoint(path)
    text = str(e.value)
    assert "system" in text and "not plain data" in text
    assert "weights_only" not in text


@pytest.mark.parametrize("content, match", [
    (b"<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title>", "HTML page"),
    (b"404: Not Found\n", "text file"),
    (b"", "empty"),
])
def test_a_file_that_is_no_checkpoint_says_so(tmp_path, content, match) -> None:
    from zoo.cli import main

    path = tmp_path / "download.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        from zoo.weights.checkpoint import load_original_checkpoint

        load_original_checkpoint(path)
    assert main(["convert", NAME, str(path), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


def test_safetensors_with_the_victims_name_stays_out(sandbox, hub) -> None:
    """A config/tag coming from a server cannot steer where the conversion cache writes."""
    root, check = sandbox
    config = json.loads(json.dumps({"architecture": NAME, "num_classes": 1000,
                                    "zoo": {"layout": "zoo", "tag": "../../victim"}}))
    model = _reference()
    data = safetensors_bytes(model.state_dict(), {"zoo_architecture": NAME})
    hub.commit("org/tagged", {"model.safetensors": data, "config.json": json.dumps(config).encode()})
    with pytest.raises(CorruptWeightsError, match="tag"):
        zoo.create(NAME, weights="hf-hub:org/tagged")
    check()


@pytest.mark.parametrize("reference, message", [
    ("org/repo", "not a Hub reference: 'org/repo' (use hf-hub:org/repo[@revision])"),
    ("hf-hub:", "malformed weights reference 'hf-hub:': use hf-hub:org/repo[@revision]"),
    ("hf-hub:@main", "malformed weights reference 'hf-hub:@main': use hf-hub:org/repo[@revision]"),
    ("hf-hub:org/..", "invalid Hub repo id in 'hf-hub:org/..' 'org/..': use org/name (letters, "
                      "digits, '-', '_', '.'; no '..' or '--'; at most 96 characters each)"),
    ("hf-hub:org/r@a..b", "invalid Hub revision in 'hf-hub:org/r@a..b' 'a..b': use a full commit "
                          "hash (40 hex digits) or a branch/tag name such as main, v1.0 or "
                          "refs/pr/1 (no '..', no empty or dot-only path segments)"),
])
def test_reference_errors_say_what_and_how_word_for_word(reference: str, message: str) -> None:
    with pytest.raises(WeightsError) as err:
        parse_hub_reference(reference)
    assert str(err.value) == message


def test_long_values_are_shown_cut() -> None:
    from zoo.weights.refs import _show

    assert _show("a" * 118) == repr("a" * 118)  # 120 characters with the quotes: whole
    assert _show("a" * 119) == repr("a" * 119)[:120] + "..."
    assert _show("x", limit=3) == "'x'" and _show("xy", limit=3) == "'xy"[:3] + "..."
    with pytest.raises(WeightsError) as err:
        parse_hub_reference("hf-hub:org/" + "r" * 200)
    assert ("'hf-hub:org/" + "r" * 108 + "...") in str(err.value)


def test_revision_length_bounds() -> None:
    long = "/".join(["x" * 100, "y" * 100, "z" * 53])  # 255 characters, segments of <= 100
    for rev in ["a", long]:
        assert is_revision(rev), len(rev)
    assert not is_revision(long + "z") and not is_revision("x" * 101)
    with pytest.raises(WeightsError) as err:
        check_revision("a..b")
    assert str(err.value).startswith("invalid Hub revision 'a..b': use a full commit hash")


def test_server_values_are_checked_against_their_own_shape() -> None:
    from zoo.errors import HubResponseError
    from zoo.weights.refs import check_server_value, normalize_etag

    assert normalize_etag(' W/"' + "a" * 64 + '" ') == "a" * 64
    assert normalize_etag('"' + "b" * 40 + '"') == "b" * 40
    assert normalize_etag("W/" + "e" * 40) == "e" * 40
    check_server_value("x-repo-commit", "c" * 40, "http://h")
    check_server_value("etag", 'W/"' + "d" * 64 + '"', "http://h")
    with pytest.raises(HubResponseError) as err:  # a content hash is not a commit
        check_server_value("x-repo-commit", "c" * 64, "http://h")
    assert str(err.value) == (
        f"the Hub at http://h sent a x-repo-commit header that is not a commit hash (40 hex "
        f"digits): '{'c' * 64}'. zoo refused the response before writing anything; check "
        "HF_ENDPOINT (a mirror or proxy in between may be broken or hostile).")
    with pytest.raises(HubResponseError) as err:
        check_server_value("x-linked-etag", "../../x", "http://h")
    assert "x-linked-etag header that is not a content hash (40 or 64 hex digits): '../../x'." \
        in str(err.value)


# -- 10. messages that mislead --------------------------------------------------------------------

def test_input_size_error_suggests_only_what_works(tmp_path) -> None:
    """A fixed-size model given another size names fixes that each work: resizing with the
    model's data config, ``img_size=`` where the family resamples (KAT), else a spec variant
    with the new ``data.input_size`` (and ``arch.img_size`` where the arch has one, OFQ)."""
    from timm.data import resolve_data_config

    from zoo.errors import InputShapeError, UnknownArgumentError

    kat = zoo.create("kat_tiny_patch16_224", depth=1).eval()
    with pytest.raises(InputShapeError) as err:
        kat(torch.randn(1, 3, 160, 160))
    text = str(err.value)
    assert "Resize the input to 224x224" in text and "resolve_data_config(model=model)" in text
    assert "img_size=(h, w)" in text and "data.input_size" in text and "arch.img_size" in text
    assert resolve_data_config(model=kat)["input_size"] == (3, 224, 224)
    resized = zoo.create("kat_tiny_patch16_224", depth=1, img_size=160).eval()
    assert resized(torch.randn(1, 3, 160, 160)).shape == (1, 1000)
    with pytest.raises(UnknownArgumentError, match="img_size"):
        zoo.create("ofq_deit_tiny_w2a2", img_size=160)
    spec = tmp_path / "variant.yaml"
    spec.write_text("models:\n  ofq_deit_tiny_w2a2_160:\n    extends: ofq_deit_tiny_w2a2\n"
                    "    data: {input_size: [3, 160, 160]}\n    arch: {img_size: 160}\n")
    zoo.register_specs(spec)
    ofq = zoo.create("ofq_deit_tiny_w2a2_160").eval()
    assert ofq(torch.randn(1, 3, 160, 160)).shape == (1, 1000)
