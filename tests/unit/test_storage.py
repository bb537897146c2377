"""Study storage at a URI, with a `file://` directory standing in for a bucket."""
from __future__ import annotations

from pathlib import Path

import pytest

from cluster.storage import check_storage, fetch_dir, location_of, study_location, upload_dir
from orchestrator.errors import StudyError
from tests.unit.study_results import study, study_directory


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LMNAS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.mark.parametrize("ok", ["runs", "/shared/studies", "~/studies", "file:///tmp/bucket", "s3://bucket/studies",
                                "gs://bucket"])
def test_paths_and_supported_uris_are_accepted(ok: str) -> None:
    check_storage(ok)


@pytest.mark.parametrize("bad,why", [("ftp://host/x", "scheme 'ftp'"), ("s3://", "names no bucket")])
def test_unsupported_uris_are_refused_in_one_line(bad: str, why: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=why):
        check_storage(bad)
    from orchestrator.study import parse_study

    data = study(tmp_path).to_dict() | {"storage": bad}
    with pytest.raises(StudyError, match=f"^storage: .*{why}"):
        parse_study(data, check_plugins=False)


def test_a_path_is_used_as_it_is_a_uri_gets_a_stable_mirror(tmp_path: Path, home: Path) -> None:
    assert study_location(str(tmp_path / "runs"), "s1") == location_of(str(tmp_path / "runs" / "s1"))
    assert study_location(str(tmp_path / "runs"), "s1").uri is None
    uri = (tmp_path / "bucket").as_uri()
    loc = study_location(uri, "s1")
    assert loc.uri == f"{uri}/s1" and loc.local.is_relative_to(home) and loc.local.name == "s1"
    assert location_of(f"{uri}/s1/") == loc
    assert study(tmp_path).directory == tmp_path / "page-study"
    from orchestrator.study import parse_study

    remote = parse_study(study(tmp_path).to_dict() | {"storage": uri}, check_plugins=False)
    assert remote.directory == study_location(uri, "page-study").local


def test_inside_a_job_a_relative_storage_is_kept_under_lmnas_home(tmp_path: Path, home: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A job's working directory is a temporary upload: results there would vanish with the session."""
    monkeypatch.chdir(tmp_path)
    assert study_location("runs", "s1").local == tmp_path / "runs" / "s1"
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")  # what Ray sets for a job's driver
    assert study_location("runs", "s1").local == home / "runs" / "s1"
    assert study_location("sub/dir", "s1").local == home / "sub" / "dir" / "s1"
    assert study_location(str(tmp_path / "shared"), "s1").local == tmp_path / "shared" / "s1"


def test_results_reach_the_uri_and_come_back_on_another_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    bucket = tmp_path / "bucket"
    s, store = study_directory(tmp_path / "driver")
    loc = study_location(bucket.as_uri(), s.name)
    # the driver's files stand in for the mirror: copy them up
    pushed = type(loc)(s.directory, loc.uri)
    pushed.push()
    remote = bucket / s.name
    names = sorted(p.name for p in remote.iterdir())
    assert names == sorted(p.name for p in s.directory.iterdir() if p.is_file())
    assert not any(n.startswith(".") for n in names)  # no temporary file left behind
    # a second machine (another LMNAS_HOME) reads the study from the URI
    monkeypatch.setenv("LMNAS_HOME", str(tmp_path / "other"))
    other = location_of(loc.uri)
    assert other.local.is_relative_to(tmp_path / "other") and other.pull()
    for name in names:
        assert (other.local / name).read_bytes() == (s.directory / name).read_bytes()
    assert not location_of((bucket / "missing").as_uri()).pull()
    # a reader pushes only what it wrote: its older results never replace the driver's
    (other.local / "trials.parquet").write_bytes(b"stale")
    (other.local / "report.html").write_text("<p>new</p>")
    other.push(["report.html"])
    assert (remote / "report.html").read_text() == "<p>new</p>"
    assert (remote / "trials.parquet").read_bytes() == (s.directory / "trials.parquet").read_bytes()


def test_trial_artefacts_are_published_and_fetched_once(tmp_path: Path) -> None:
    local = tmp_path / "trial"
    (local / "model").mkdir(parents=True)
    (local / "model" / "weights.bin").write_bytes(b"\x00\x01" * 1000)
    (local / "train.json").write_text("{}")
    uri = (tmp_path / "bucket" / "supernet").as_uri()
    assert upload_dir(local, uri) == 2
    got = fetch_dir(uri)
    assert (got / "model" / "weights.bin").read_bytes() == b"\x00\x01" * 1000 and (got / "train.json").exists()
    (tmp_path / "bucket" / "supernet" / "train.json").unlink()
    assert fetch_dir(uri) == got and (got / "train.json").exists()  # cached: not downloaded again
    assert fetch_dir(str(local)) == local
    with pytest.raises(FileNotFoundError, match="nothing at"):
        fetch_dir((tmp_path / "bucket" / "none").as_uri())


@pytest.mark.parametrize("at_uri", [False, True], ids=["directory", "uri"])
def test_a_resumed_run_gets_the_next_tune_folder_where_tune_keeps_them(tmp_path: Path, at_uri: bool) -> None:
    from dataclasses import replace

    from orchestrator.run import next_run_index

    storage = (tmp_path / "bucket").as_uri() if at_uri else str(tmp_path / "runs")
    s = replace(study(tmp_path), storage=storage)
    location = study_location(storage, s.name)
    location.local.mkdir(parents=True)
    assert next_run_index(s, location.local) == 0
    kept = tmp_path / "bucket" / s.name if at_uri else location.local
    for name in ("tune-0", "tune-2", "tune-x"):
        (kept / name).mkdir(parents=True)
    (kept / "tune-7").write_text("a file, not a run")
    assert next_run_index(s, location.local) == 3
