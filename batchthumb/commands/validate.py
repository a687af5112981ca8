"""``batchthumb validate``: check a job file; send nothing."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from batchthumb.commands import Done
from batchthumb.console import Console, Quiet
from batchthumb.jobfile import load_job


@dataclass(frozen=True, slots=True)
class ValidateResult(Done):
    """A valid job file: how many items, in how many projects."""

    path: Path
    items: int
    projects: int

    def stdout_lines(self) -> list[str]:
        """``JOB: OK, N items in P project(s)``."""
        return [f"{self.path}: OK, {self.items} items in {self.projects} project(s)"]


def register(parser: argparse.ArgumentParser) -> None:
    """``validate JOB.yaml``."""
    parser.add_argument("job", type=Path, metavar="JOB.yaml")


def from_args(args: argparse.Namespace, console: Console) -> ValidateResult:
    """Validate the job file named on the command line."""
    return validate(job_path=args.job, console=console)


def validate(*, job_path: Path, console: Console | None = None) -> ValidateResult:
    """Read and check the job at ``job_path`` (warnings go to ``console``)."""
    job = load_job(job_path)
    for warning in job.warnings:
        (console or Quiet()).warn(str(warning))
    return ValidateResult(job_path, len(job.items), len(job.projects))
