"""Library warnings and log records go to the study's log file while a driver runs it, not the console."""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest

from orchestrator.console import LOG_FILE, library_log


def test_library_warnings_and_records_go_to_the_study_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (logging.getLogger("ax").handlers[:], logging.getLogger("ax").propagate, warnings.showwarning)
    with library_log(tmp_path):
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("winsorization without thresholds", UserWarning)
        logging.getLogger("ax.service.ax_client").warning("an Ax notice")
        logging.getLogger("linear_operator.utils").warning("added jitter to the diagonal")
    err = capsys.readouterr().err
    assert "winsorization" not in err and "Ax notice" not in err and "jitter" not in err
    log = (tmp_path / LOG_FILE).read_text()
    assert "UserWarning: winsorization without thresholds" in log and "test_console.py" in log
    assert "ax.service.ax_client: an Ax notice" in log and "added jitter" in log
    # afterwards everything is as it was
    assert (logging.getLogger("ax").handlers, logging.getLogger("ax").propagate, warnings.showwarning) == before
