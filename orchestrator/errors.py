"""User-facing errors. Each carries one line that says what is wrong and how to fix it."""
from __future__ import annotations


class LmnasError(Exception):
    """Base of every error the command line reports as one line (exit code 2)."""


class StudyError(LmnasError):
    """A study file that is malformed, has unknown keys, wrong types or out-of-range values."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class UnknownPluginError(StudyError):
    """A plug-in name that is not registered."""


class ResultsError(LmnasError):
    """A study directory that holds no (or unreadable) results."""
