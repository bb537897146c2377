"""Studies as Ray jobs on the session's Ray head (with its dashboard): `ray job submit` and
`lmnas submit`, results at a storage URI, status and report read while the study runs, the
study's gauges on the head's metrics endpoint and its actors named after the study."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import yaml

from orchestrator.cli import main
from tests.integration.conftest import RayHead, ray_env

pytestmark = pytest.mark.integration


def study(name: str, storage: str, num_trials: int, step_seconds: float) -> dict:
    return {
        "name": name, "seed": 3, "storage": storage,
        "search_space": {"name": "synthetic", "options": {"num_dims": 3, "grid": 11}},
        "trainer": {"kind": "synthetic", "options": {"problem": "zdt1", "steps": 3, "step_seconds": step_seconds,
                                                     "fail_below_x0": 0.05}},
        "objectives": [{"metric": "f1", "mode": "min", "ref": 1.1}, {"metric": "f2", "mode": "min", "ref": 11}],
        "budget": {"num_trials": num_trials, "max_concurrent": 2},
        # fractions: two trials share one CPU, leaving the other for the job's driver
        "resources": {"cpu": 0.5},
    }


def working_dir(tmp_path: Path, data: dict) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    (work / "study.yaml").write_text(yaml.safe_dump(data))
    return work


def run(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), env=env or ray_env(), cwd=cwd, capture_output=True, text=True, timeout=300)


def lmnas(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run(sys.executable, "-m", "orchestrator.cli", *args, env=env)


def job_status(head: RayHead, job_id: str) -> str:
    from ray.job_submission import JobSubmissionClient

    return str(JobSubmissionClient(head.dashboard_url).get_job_status(job_id).value)


def scrape(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()
    except OSError:
        return ""


def wait_for_dashboard(head: RayHead, timeout_s: float = 120) -> None:
    from ray.job_submission import JobSubmissionClient

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            JobSubmissionClient(head.dashboard_url).list_jobs()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


@pytest.mark.timeout(1500)
def test_ray_job_submit_runs_a_study_readable_while_it_runs(tmp_path: Path, cluster_client: RayHead,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    ray_head = cluster_client
    wait_for_dashboard(ray_head)
    bucket = (tmp_path / "bucket").as_uri()
    data = study("job-zdt1", bucket, num_trials=8, step_seconds=2.0)
    data["trainer"]["options"]["print_steps"] = True
    work = working_dir(tmp_path, data)
    home = tmp_path / "home"
    env = {**ray_env(), "LMNAS_HOME": str(home)}
    for _ in range(60):  # the head's job agent starts a little after its dashboard
        submit = run(str(Path(sys.executable).with_name("ray")), "job", "submit", "--address", ray_head.dashboard_url,
                     "--working-dir", str(work), "--submission-id", "job-zdt1", "--no-wait",
                     # `lmnas` is not on the head's PATH: the job's own environment puts it there
                     "--runtime-env-json", json.dumps({"env_vars": {"LMNAS_HOME": str(home), "PATH": env["PATH"]}}),
                     "--", "lmnas", "run", "study.yaml", env=env)
        if "No available agent" not in submit.stderr:
            break
        time.sleep(2)
    assert submit.returncode == 0, submit.stdout[-2000:] + submit.stderr[-2000:]

    uri = f"{bucket}/job-zdt1"
    seen_running_status = seen_running_report = False
    metrics = ""
    deadline = time.monotonic() + 1200
    while (status := job_status(ray_head, "job-zdt1")) not in ("SUCCEEDED", "FAILED", "STOPPED"):
        assert time.monotonic() < deadline, f"job still {status}"
        if 'study="job-zdt1"' not in metrics:
            metrics = scrape(ray_head.metrics_url)
        if not seen_running_report and (tmp_path / "bucket" / "job-zdt1" / "trials.parquet").exists():
            # the study is read from its URI while the job writes it, on the driver's machine with the
            # driver's LMNAS_HOME; in this process (an interpreter start costs seconds on a busy machine)
            monkeypatch.setenv("LMNAS_HOME", str(home))
            driver_mirror = next(home.glob("studies/*/job-zdt1"), None)
            assert main(["status", uri]) == 0
            status_out = capsys.readouterr().out
            assert main(["report", uri]) == 0
            report_out = capsys.readouterr().out
            html = Path([ln for ln in report_out.splitlines() if ln.startswith("wrote ")][-1][len("wrote "):])
            assert driver_mirror is None or not html.is_relative_to(driver_mirror)  # readers write elsewhere
            counts = re.search(r"trials: (\d+) completed, (\d+) stopped early, (\d+) running, (\d+) failed", status_out)
            assert counts, status_out
            completed, _, running, failed = map(int, counts.groups())
            in_progress = completed + failed < 8  # read before the study finished
            seen_running_status |= in_progress
            seen_running_report |= in_progress and html.read_text().count("<circle") == completed
        time.sleep(0.5)
    logs = run(str(Path(sys.executable).with_name("ray")), "job", "logs", "--address", ray_head.dashboard_url,
               "job-zdt1").stdout
    assert status == "SUCCEEDED", logs[-3000:]
    assert seen_running_status and seen_running_report

    # results at the URI, readable by anyone with access to it
    remote = tmp_path / "bucket" / "job-zdt1"
    trials = pd.read_parquet(remote / "trials.parquet")
    assert len(trials) == 8 and set(trials["status"]) <= {"completed", "failed"}
    ok = trials[trials["status"] == "completed"]
    assert len(ok) >= 1 and (ok["f1"] == ok["config.x0"] / 10).all()
    assert (trials.loc[trials["status"] == "failed", "config.x0"] == 0).all()
    page = (remote / "report.html").read_text()
    assert page.count("<circle") == len(ok) and 'id="state">final' in page
    assert (remote / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert any(p.name.startswith("tune-") for p in remote.iterdir())  # Tune's own state went to the URI too
    assert "[job-zdt1] 8/8 trials" in logs  # the log's progress lines
    # trial output is in the job's log, each line under the trial that printed it (actors are reused)
    printed = re.findall(r"\(lmnas:job-zdt1/(\w+) pid=\d+[^)]*\) trial (\w+) step \d/3", logs)
    assert len({tid for tid, _ in printed}) == len(ok), (len(ok), printed)
    assert all(prefix == tid for prefix, tid in printed), printed
    assert "FileNotFoundError" not in logs and "Failed to fetch metrics" not in logs
    # Tune's own per-trial files: standard tools read the study
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(str(next(p for p in remote.iterdir() if p.name.startswith("tune-"))))
    reported = trials[trials["num_reports"] > 0]  # a trial that failed before its first report has no result
    assert sorted(analysis.dataframe()["trial_id"]) == sorted(reported["trial_id"])

    # the study's gauges reached the head's metrics agent (for the dashboard's metrics view)
    assert 'ray_lmnas_trials{' in metrics and 'study="job-zdt1"' in metrics

    # trial actors are named after the study; on a cluster each trial has its own, and the dashboard's
    # task list shows every trial under its own id
    from ray.util.state import list_actors, list_tasks

    names = {a.class_name for a in list_actors(address=ray_head.address, limit=1000)}
    assert "lmnas:job-zdt1" in names, names
    tasks = {t.name for t in list_tasks(address=ray_head.address, limit=10000, detail=True)}
    assert {f"lmnas:job-zdt1/{tid}.train" for tid in trials["trial_id"]} <= tasks, sorted(tasks)[:20]


@pytest.mark.timeout(900)
def test_lmnas_submit_sends_env_and_waits(tmp_path: Path, cluster_client: RayHead) -> None:
    ray_head = cluster_client
    wait_for_dashboard(ray_head)
    bucket = tmp_path / "bucket"
    work = working_dir(tmp_path, study("submit-zdt1", bucket.as_uri(), num_trials=3, step_seconds=0.0))
    marker = tmp_path / "home-from-env"  # the job's driver keeps its mirror of the URI there
    done = lmnas("submit", str(work / "study.yaml"), "--address", ray_head.dashboard_url, "--working-dir", str(work),
                 "--env", f"LMNAS_HOME={marker}", "--job-id", "submit-zdt1", "--wait")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "submitted job submit-zdt1" in done.stdout and "ray job logs" in done.stdout
    assert done.stdout.strip().endswith("job submit-zdt1: SUCCEEDED")
    trials = pd.read_parquet(bucket / "submit-zdt1" / "trials.parquet")
    assert len(trials) == 3
    assert len(list(marker.glob("studies/*/submit-zdt1/trials.parquet"))) == 1  # --env reached the job
    logs = run(str(Path(sys.executable).with_name("ray")), "job", "logs", "--address", ray_head.dashboard_url,
               "submit-zdt1").stdout
    assert "[submit-zdt1] 3/3 trials" in logs

    unreachable = lmnas("submit", str(work / "study.yaml"), "--address", "http://127.0.0.1:9", "--working-dir",
                        str(work))
    assert unreachable.returncode == 2 and "cannot reach the Ray dashboard" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr


@pytest.mark.timeout(900)
def test_a_resubmitted_study_keeps_its_results_and_is_refused_naming_resume(tmp_path: Path,
                                                                           cluster_client: RayHead) -> None:
    """A relative `storage` inside a job lands under $LMNAS_HOME/runs, not in the upload; the same
    submission again fails naming `lmnas resume`, and `--wait` shows why. The entrypoint finds the
    head's Python although the head's PATH has none."""
    ray_head = cluster_client
    wait_for_dashboard(ray_head)
    work = working_dir(tmp_path, study("again-zdt1", "runs", num_trials=2, step_seconds=0.0))
    home = tmp_path / "home"
    submit = ("submit", str(work / "study.yaml"), "--address", ray_head.dashboard_url, "--working-dir", str(work),
              "--env", f"LMNAS_HOME={home}", "--wait")
    first = lmnas(*submit, "--job-id", "again-1")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert len(pd.read_parquet(home / "runs" / "again-zdt1" / "trials.parquet")) == 2
    assert not (work / "runs").exists()

    second = lmnas(*submit, "--job-id", "again-2")
    assert second.returncode == 1
    assert second.stdout.strip().endswith("job again-2: FAILED")
    assert "already holds results; continue it with `lmnas resume" in second.stderr, second.stderr
    assert len(pd.read_parquet(home / "runs" / "again-zdt1" / "trials.parquet")) == 2  # untouched


@pytest.mark.timeout(300)
def test_submit_without_the_token_is_one_line_and_exit_2(tmp_path: Path, cluster_client: RayHead) -> None:
    ray_head = cluster_client
    wait_for_dashboard(ray_head)
    work = working_dir(tmp_path, study("no-token", "runs", num_trials=1, step_seconds=0.0))
    env = {k: v for k, v in ray_env().items() if k != "RAY_AUTH_TOKEN"}
    for mode in ("token", "disabled"):
        refused = lmnas("submit", str(work / "study.yaml"), "--address", ray_head.dashboard_url, "--working-dir",
                        str(work), env={**env, "RAY_AUTH_MODE": mode, "HOME": str(tmp_path)})
        assert refused.returncode == 2, refused.stderr[-2000:]
        assert "Traceback" not in refused.stderr
        lines = [ln for ln in refused.stderr.splitlines() if ln.startswith("lmnas: error")]
        assert len(lines) == 1 and "token" in lines[0], refused.stderr
