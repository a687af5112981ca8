"""The exceptions batchthumb raises for a run, not for an item.

A failed item is data (an outcome in the report); these are for what stops a command::

    BatchthumbError       root; ``exit_code`` says how the CLI ends
    ├── UsageError        bad flags or arguments (exit 2)
    ├── JobFileError      a job file failed validation; holds every problem (exit 2)
    ├── CredentialsError  credentials missing or unusable, found before sending (exit 2)
    ├── ReportError       the report cannot be read or written (exit 2)
    ├── LockHeldError     another run holds the report's lock (exit 75)
    └── RunAborted        the run gave up early: credentials rejected (exit 3)
        └── ProjectNotFound   a project's listing says it does not exist
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from os import PathLike

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_ABORTED = 3
EXIT_INCOMPLETE = 4
EXIT_LOCKED = 75
EXIT_INTERRUPTED = 130


class BatchthumbError(Exception):
    """Root of every error batchthumb reports to the user as one message and an exit code."""

    exit_code = EXIT_USAGE
    shown = False  # already said where the user reads it (the JSON log on stderr)


class UsageError(BatchthumbError):
    """The command line does not make sense."""


# A file with a million bad lines should not print a million lines.
MAX_PROBLEMS = 100


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a job file, located as ``file:line: key: message``."""

    path: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class JobFileError(BatchthumbError):
    """A job file failed validation; ``problems`` lists every problem found, in file order."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class CredentialsError(BatchthumbError):
    """Credentials are missing or unusable; found before anything is sent."""


class ReportError(BatchthumbError):
    """The report (the run's journal) cannot be read or written."""


class LockHeldError(BatchthumbError):
    """Another run is using the same report."""

    exit_code = EXIT_LOCKED


class RunAborted(BatchthumbError):
    """The run stopped early because going on would only repeat the same failure."""

    exit_code = EXIT_ABORTED


class ProjectNotFound(RunAborted):
    """The list call says the project does not exist (or was deleted)."""

    def __init__(self, project_id: str, message: str) -> None:
        self.project_id = project_id
        super().__init__(message)


@contextmanager
def os_errors(
    path: str | PathLike[str], doing: str, error: type[BatchthumbError] = ReportError
) -> Iterator[None]:
    """Turn an ``OSError`` in the block into ``error("PATH: cannot DOING: reason")``.

    The one place where a file batchthumb reads or writes (job files, images, the report,
    the lock, secret files, logs) becomes a message instead of a traceback.
    """
    try:
        yield
    except OSError as exc:
        raise error(f"{path}: cannot {doing}: {exc.strerror or exc}") from exc
