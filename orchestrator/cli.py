"""The `lmnas` command line.

  lmnas validate STUDY            check a study file (exit 2 with one line when it is wrong)
  lmnas run STUDY [--address A]   run it on an embedded local Ray (or join a cluster)
  lmnas status DIR                progress and the current Pareto front of a study directory
  lmnas supernet train STUDY      fine-tune a weight_sharing study's super-network (cached by config)
  lmnas export DIR [--trial ID]   export the knee of the front (or one trial) to DIR/export
  lmnas report DIR                write report.png and report.html into the study directory
  lmnas assets fetch|list|verify  the offline models and data sets
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from orchestrator.errors import LmnasError

EXIT_USER_ERROR = 2


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["assets"]:
        from trainers.assets import main as assets_main

        return assets_main(args[1:])
    parser = build_parser()
    ns = parser.parse_args(args)
    try:
        return ns.handler(ns)
    except LmnasError as e:
        print(f"lmnas: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("lmnas: interrupted; finished trials are saved in the study directory", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lmnas", description="Multi-objective search for compact language models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check a study file")
    p.add_argument("study", type=Path)
    p.set_defaults(handler=cmd_validate)

    p = sub.add_parser("run", help="run a study")
    p.add_argument("study", type=Path)
    p.add_argument("--address", help="join this Ray cluster instead of starting a local one (e.g. auto)")
    p.add_argument("--overwrite", action="store_true", help="delete earlier results of a study with this name")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("supernet", help="the super-network stage of a weight_sharing study")
    p.add_argument("action", choices=["train"])
    p.add_argument("study", type=Path)
    p.add_argument("--address", help="join this Ray cluster instead of starting a local one (e.g. auto)")
    p.set_defaults(handler=cmd_supernet)

    p = sub.add_parser("export", help="export the knee of a study's front (or --trial ID) to DIR/export")
    p.add_argument("directory", type=Path)
    p.add_argument("--trial", help="export this trial instead of the knee")
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("status", help="progress and Pareto front of a study directory")
    p.add_argument("directory", type=Path)
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("report", help="write report.png and report.html for a study directory")
    p.add_argument("directory", type=Path)
    p.set_defaults(handler=cmd_report)

    sub.add_parser("assets", help="fetch | list | verify the offline models and data sets")
    return parser


def cmd_validate(ns: argparse.Namespace) -> int:
    from orchestrator.study import load_study

    study = load_study(ns.study)
    print(f"{ns.study}: ok ({study.search_space.name} space, {study.trainer.name} trainer, "
          f"{study.searcher.name} searcher, {study.budget.num_trials} trials)")
    return 0


def cmd_run(ns: argparse.Namespace) -> int:
    from orchestrator.run import run_study
    from orchestrator.study import load_study

    study = load_study(ns.study)
    summary = run_study(study, address=ns.address, overwrite=ns.overwrite, progress=not ns.quiet)
    from orchestrator.report import print_summary, write_report

    print_summary(summary, study.directory)
    paths = write_report(study.directory)
    print(f"report: {paths[1]}")
    return 0


def cmd_supernet(ns: argparse.Namespace) -> int:
    from orchestrator.errors import StudyError
    from orchestrator.plugins import build_space
    from orchestrator.run import ray_session
    from orchestrator.stages import BEFORE
    from orchestrator.study import load_study

    study = load_study(ns.study)
    if study.trainer.name not in BEFORE:
        raise StudyError("trainer.kind", f"{study.trainer.name!r} has no super-network; use one of {', '.join(BEFORE)}")
    with ray_session(ns.address):
        print(BEFORE[study.trainer.name](study, build_space(study), sys.stderr))
    return 0


def cmd_export(ns: argparse.Namespace) -> int:
    from orchestrator.export import export_knee

    print(f"exported to {export_knee(ns.directory, ns.trial)}")
    return 0


def cmd_status(ns: argparse.Namespace) -> int:
    from orchestrator.report import load_summary, print_summary

    print_summary(load_summary(ns.directory), ns.directory)
    return 0


def cmd_report(ns: argparse.Namespace) -> int:
    from orchestrator.report import write_report

    png, html = write_report(ns.directory)
    print(f"wrote {png}\nwrote {html}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
