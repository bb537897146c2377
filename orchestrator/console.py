"""What a study prints stays what a person reads: library warnings go to the study's log file.

Ax, BoTorch, GPyTorch / linear_operator and transformers warn freely (winsorization without
thresholds, Cholesky jitter, tensor copies), each warning followed by the source line it quotes;
on a console they bury the progress lines. While a driver runs a study, Python warnings and the
records of those libraries' loggers are written to `<study directory>/lmnas.log` instead, with a
time stamp, so nothing is lost and the console holds progress, the front and errors.
"""
from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, TextIO

LOG_FILE = "lmnas.log"
#: loggers of the libraries the driver runs (searchers, the Pareto code, trainers' stages).
#: `torch.onnx` has a console handler of its own (torch's logging setup), so it is named besides `torch`.
LIBRARY_LOGGERS = ("ax", "botorch", "gpytorch", "linear_operator", "pyro", "torch", "torch.onnx", "transformers",
                   "datasets")


@contextmanager
def library_log(directory: Path) -> Iterator[Path]:
    """Within the block, warnings and library log records go to `<directory>/lmnas.log`."""
    path = Path(directory) / LOG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    warning_log = logging.getLogger("lmnas.warnings")

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        warning_log.warning("%s:%d: %s: %s", filename, lineno, category.__name__, message)

    saved: dict[str, tuple[list[logging.Handler], bool]] = {}
    for name in (*LIBRARY_LOGGERS, warning_log.name):
        logger = logging.getLogger(name)
        saved[name] = (logger.handlers[:], logger.propagate)
        logger.handlers, logger.propagate = [handler], False
    previous_show: Any = warnings.showwarning
    warnings.showwarning = show
    try:
        yield path
    finally:
        warnings.showwarning = previous_show
        for name, (handlers, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers, logger.propagate = handlers, propagate
        handler.close()
