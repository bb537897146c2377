"""The `lmnas` command line.

  lmnas validate STUDY [STUDY...] check study files (exit 2 with one line per wrong file)
  lmnas run STUDY [--address A]   run it on an embedded local Ray (or join a cluster)
  lmnas resume DIR|URI            continue a study that stopped early
  lmnas run|resume --backend local  the trials one at a time in this process, without Ray (pdb works in a trainer)
  lmnas submit STUDY --address U  run it as a job on a Ray cluster (the dashboard's http://host:port)
  lmnas status DIR|URI            progress and the current Pareto front of a study (also while it runs)
  lmnas supernet train STUDY      run the trainer's stage before the trials (e.g. train its super-network; cached)
  lmnas export DIR [--trial ID]   export the knee of the front (or one trial) to DIR/export
  lmnas distill DIR [--trials ID]  run the trainer's stage after the trials (e.g. regular distillation of the
                                  front, ELM retraining) again, or on the named trials
  lmnas calibrate DIR [--n 8]     train N of a study's trials standalone: how well its proxy ranks them
  lmnas remeasure DIR             time the front's latency again, one trial at a time on an idle host
  lmnas report DIR|URI            write report.png and the study page report.html into the study
  lmnas assets fetch|list|verify  the offline models and data sets
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from cluster.jobs import SubmitError
from orchestrator import ray_env
from orchestrator.errors import LmnasError

if TYPE_CHECKING:
    from cluster.storage import StudyLocation
    from orchestrator.run import RunOutcome

EXIT_USER_ERROR = 2


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["assets"]:
        from trainers.assets import main as assets_main

        return assets_main(args[1:])
    parser = build_parser()
    ns = parser.parse_args(args)
    # Before any command imports Ray: loopback unless this command joins a cluster.
    ray_env.configure(getattr(ns, "address", None))
    try:
        return ns.handler(ns)
    except (LmnasError, SubmitError) as e:
        print(f"lmnas: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("lmnas: interrupted; finished trials are saved in the study directory", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lmnas", description="Multi-objective search for compact language models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check study files")
    p.add_argument("study", type=Path, nargs="+")
    p.set_defaults(handler=cmd_validate)

    p = sub.add_parser("run", help="run a study")
    p.add_argument("study", type=Path)
    p.add_argument("--address", help="join this Ray cluster instead of starting a local one (e.g. auto)")
    p.add_argument("--overwrite", action="store_true", help="delete earlier results of a study with this name")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    add_backend(p)
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("resume", help="continue a study that stopped early (finished trials are kept)")
    p.add_argument("directory", help="the study directory, or its URI (s3://..., gs://..., file://...)")
    p.add_argument("--address", help="join this Ray cluster instead of starting a local one (e.g. auto)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    add_backend(p)
    p.set_defaults(handler=cmd_resume)

    p = sub.add_parser("submit", help="run a study as a job on a Ray cluster")
    p.add_argument("study", type=Path)
    p.add_argument("--address", help="the cluster's dashboard, http://host:port (default: RAY_ADDRESS when it is "
                   "a URL, else http://127.0.0.1:8265)")
    p.add_argument("--working-dir", type=Path, default=Path("."), help="uploaded to the cluster; holds the study")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="environment variable of the job")
    p.add_argument("--pip", action="append", default=[], metavar="REQ", help="pip requirement for the job")
    p.add_argument("--requirements", type=Path, help="a requirements file for the job")
    p.add_argument("--constraints", type=Path, help="pins applied to the job's pip requirements")
    p.add_argument("--job-id", help="the job's submission id (default: lmnas-<study>-<time>)")
    p.add_argument("--wait", action="store_true", help="wait for the job to end; exit 1 unless it succeeded")
    p.set_defaults(handler=cmd_submit)

    p = sub.add_parser("supernet", help="the trainer's stage before the trials (train a super-network)")
    p.add_argument("action", choices=["train"])
    p.add_argument("study", type=Path)
    p.add_argument("--address", help="join this Ray cluster instead of starting a local one (e.g. auto)")
    p.set_defaults(handler=cmd_supernet)

    p = sub.add_parser("export", help="export the knee of a study's front (or --trial ID) to DIR/export")
    p.add_argument("directory", type=Path)
    p.add_argument("--trial", help="export this trial instead of the knee")
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("distill", help="the trainer's stage after the trials (regular distillation of the front, "
                       "retraining) on the study in DIR, or on --trials")
    p.add_argument("directory", type=Path)
    p.add_argument("--trials", nargs="+", default=[], metavar="ID", help="work on these trials instead")
    p.add_argument("--address", help="join this Ray cluster instead of starting a local one (e.g. auto)")
    p.set_defaults(handler=cmd_distill)

    p = sub.add_parser("calibrate", help="train N trials of a finished study standalone and rank them against "
                       "the proxy the search used (Kendall tau, Spearman rho, top-k overlap)")
    p.add_argument("directory", type=Path)
    p.add_argument("--n", type=int, default=8, help="trials to train standalone (default 8)")
    p.add_argument("--address", help="join this Ray cluster instead of starting a local one (e.g. auto)")
    p.set_defaults(handler=cmd_calibrate)

    p = sub.add_parser("remeasure", help="time the front's latency again in one quiet pass (remeasured.csv)")
    p.add_argument("directory", type=Path)
    p.add_argument("--address", help="join this Ray cluster instead of starting a local one (e.g. auto)")
    p.set_defaults(handler=cmd_remeasure)

    p = sub.add_parser("status", help="progress and Pareto front of a study directory or URI")
    p.add_argument("directory", help="a study directory, or its URI (s3://..., gs://..., file://...)")
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("report", help="write report.png and report.html for a study directory or URI")
    p.add_argument("directory", help="a study directory, or its URI (s3://..., gs://..., file://...)")
    p.set_defaults(handler=cmd_report)

    sub.add_parser("assets", help="fetch | list | verify the offline models and data sets")
    return parser


def add_backend(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=("ray", "local"), default="ray",
                   help="ray (default): trials on Ray Tune; local: one at a time in this process, without Ray, "
                        "so a debugger works inside a trainer")


def cmd_validate(ns: argparse.Namespace) -> int:
    """Every file is checked (one process: the libraries load once), one line each; exit 2 if any is wrong."""
    from orchestrator.study import load_study

    wrong = 0
    for path in ns.study:
        try:
            study = load_study(path)
        except LmnasError as e:
            wrong += 1
            print(f"lmnas: error: {path}: {e}", file=sys.stderr)
            continue
        print(f"{path}: ok ({study.search_space.name} space, {study.trainer.name} trainer, "
              f"{study.searcher.name} searcher, {study.budget.num_trials} trials)")
    return EXIT_USER_ERROR if wrong else 0


def cmd_run(ns: argparse.Namespace) -> int:
    from cluster.storage import study_location
    from orchestrator.run import run_study
    from orchestrator.study import load_study

    study = load_study(ns.study)
    outcome = run_study(study, address=ns.address, overwrite=ns.overwrite, progress=not ns.quiet, backend=ns.backend)
    return finish(outcome, study_location(study.storage, study.name))


def cmd_resume(ns: argparse.Namespace) -> int:
    from orchestrator.run import resume_study

    # A URI is brought into this machine's mirror first: the study may have run on another one.
    location = open_study(ns.directory)
    return finish(resume_study(location.local, address=ns.address, progress=not ns.quiet, backend=ns.backend), location)


def finish(outcome: "RunOutcome", location: "StudyLocation") -> int:
    """Print the front and write the report (copied to the study's URI, if it has one); say how to
    continue when trials are left."""
    from orchestrator.report import print_summary, write_report

    print_summary(outcome.summary, location.shown)
    print(f"report: {write_report(outcome.directory, study=outcome.study, trials=outcome.trials)[1]}")
    location.push()
    if outcome.unfinished:
        print(f"lmnas: {outcome.unfinished} trials not run yet; continue with: lmnas resume {location.shown}",
              file=sys.stderr)
    return 0


def cmd_submit(ns: argparse.Namespace) -> int:
    from cluster import jobs
    from orchestrator.study import load_study

    study = load_study(ns.study)  # fail here, not on the cluster
    if (warning := jobs.storage_warning(study.storage)) is not None:
        print(f"lmnas: warning: {warning}", file=sys.stderr)
    pip = tuple(ns.pip) + (jobs.read_lines(ns.requirements, "requirements") if ns.requirements else ())
    request = jobs.JobRequest(
        study=ns.study, address=ns.address or jobs.default_address(), working_dir=ns.working_dir,
        env=jobs.parse_env(ns.env), pip=pip,
        constraints=jobs.read_lines(ns.constraints, "constraints") if ns.constraints else (),
        job_id=ns.job_id or jobs.default_job_id(study.name),
    )
    job_id = jobs.submit(request)
    print(jobs.follow_hint(request.address, job_id))
    if not ns.wait:
        return 0
    status = jobs.wait(request.address, job_id, on_status=lambda s: print(f"job {job_id}: {s}", flush=True))
    if status == "SUCCEEDED":
        return 0
    print("\n".join(jobs.failure_lines(request.address, job_id)), file=sys.stderr)
    return 1


def open_study(target: str, reader: bool = False) -> "StudyLocation":
    """A study directory, or the local mirror of a study URI brought up to date (a mirror of its
    own for a `reader`, which never writes where a driver does)."""
    from cluster.storage import location_of
    from orchestrator.errors import ResultsError

    try:
        location = location_of(target, reader=reader)
    except ValueError as e:
        raise ResultsError(f"{target!r}: {e}") from None
    if not location.pull():
        raise ResultsError(f"no study at {target!r}; pass a study directory or URI (<storage>/<name>)")
    return location


def cmd_supernet(ns: argparse.Namespace) -> int:
    from orchestrator import hooks
    from orchestrator.plugins import build_space
    from orchestrator.run import ray_session
    from orchestrator.study import load_study

    study = load_study(ns.study)
    hooks.require(study, "prepare", "lmnas supernet train")
    with ray_session(ns.address):
        prepared = hooks.prepare_stage(study, build_space(study))
    print(prepared.checkpoint or "nothing to train: the trainer's stage before the trials keeps no checkpoint")
    return 0


def cmd_export(ns: argparse.Namespace) -> int:
    from orchestrator.export import export_study

    print(f"exported to {export_study(ns.directory, ns.trial)}")
    return 0


def cmd_distill(ns: argparse.Namespace) -> int:
    from orchestrator import hooks
    from orchestrator.plugins import build_space
    from orchestrator.results import ResultsStore, load_trials
    from orchestrator.run import ray_session
    from orchestrator.study import load_saved_study

    directory = ns.directory.absolute()
    study = load_saved_study(directory)
    hooks.require(study, "finish", "lmnas distill")
    load_trials(directory)  # a directory without results fails here, in one line
    store = ResultsStore(directory, study.objectives, study.constraints)
    with ray_session(ns.address):
        # The stage after the trials sees what the stage before them settled (a cache hit by now).
        prepared = hooks.prepare_stage(study, build_space(study))
        path = hooks.finish_stage(study, prepared, directory, store, chosen=ns.trials)
    print(f"results: {path}" if path else "nothing done (see the lines above; name trials with --trials)")
    return 0


def cmd_calibrate(ns: argparse.Namespace) -> int:
    from orchestrator.calibrate import CALIBRATION_CSV, CALIBRATION_JSON, calibrate_study
    from orchestrator.errors import StudyError
    from orchestrator.results import load_trials

    if ns.n < 3:
        raise StudyError("--n", f"calibration ranks at least 3 trials, got {ns.n}")
    load_trials(ns.directory)  # a directory without results fails here, in one line
    result = calibrate_study(ns.directory, ns.n, ns.address)
    print(result.headline)
    print(f"wrote {ns.directory / CALIBRATION_CSV}\nwrote {ns.directory / CALIBRATION_JSON}")
    return 0


def cmd_remeasure(ns: argparse.Namespace) -> int:
    from orchestrator.remeasure import REMEASURED_CSV, remeasure_front
    from orchestrator.results import load_trials

    load_trials(ns.directory)  # a directory without results fails here, in one line
    table = remeasure_front(ns.directory, ns.address)
    measured = [c[: -len("_remeasured")] for c in table.columns if c.endswith("_remeasured")]
    for _, r in table.iterrows():
        pairs = [f"{m} {r[m]:.4g} -> {r[f'{m}_remeasured']:.4g}" for m in measured
                 if isinstance(r[f"{m}_remeasured"], (int, float))]
        print(f"{r['trial_id']}: " + ", ".join(pairs) + " (during the search -> alone)")
    print(f"wrote {ns.directory / REMEASURED_CSV}")
    return 0


def cmd_status(ns: argparse.Namespace) -> int:
    from orchestrator.report import load_summary, print_summary

    location = open_study(ns.directory, reader=True)
    print_summary(load_summary(location.local), location.shown)
    return 0


def cmd_report(ns: argparse.Namespace) -> int:
    from cluster.storage import snapshot_dir
    from orchestrator.report import write_report
    from orchestrator.study_page import page_is_live

    location = open_study(ns.directory, reader=True)
    if page_is_live(location.local):
        # A driver is writing the study (or was killed mid-run): its live page stays its own.
        out = snapshot_dir(location.shown)
        png, html = write_report(location.local, out)
        print(f"wrote {png}\nwrote {html}\n(a snapshot: the study is running, or its driver stopped before the "
              f"end and `lmnas resume {location.shown}` finishes it; its own page is {location.shown}/report.html)")
        return 0
    png, html = write_report(location.local)
    location.push([png.name, html.name])
    print(f"wrote {png}\nwrote {html}" + (f"\ncopied to {location.uri}" if location.uri else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
