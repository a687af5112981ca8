"""``batchthumb export``: write a job file that sets every plan's current thumbnail."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import anyio

from batchthumb.commands import Done
from batchthumb.commands.flags import add_connection_arguments, check_project, settings_from_args
from batchthumb.console import Console, Quiet
from batchthumb.export import export_job
from batchthumb.jobwriter import Written, write_job
from batchthumb.model import PlanSummary, RunSettings
from batchthumb.plans import list_project
from batchthumb.session import connect, open_session

DESCRIPTION = (
    "List every plan of a project and write a job that sets each current thumbnail; plans "
    "without one are listed as comments."
)


@dataclass(frozen=True, slots=True)
class ExportResult(Done):
    """The backup job written: plans listed, and how many had a thumbnail."""

    written: Written
    plans: int
    with_thumbnail: int

    def _summary(self) -> str:
        return (
            f"{self.written.path}: {self.with_thumbnail} of {self.plans} plans with a thumbnail "
            f"({self.plans - self.with_thumbnail} listed as comments)"
        )

    def stdout_lines(self) -> list[str]:
        """``OUT: N of M plans with a thumbnail (K listed as comments)``, or the job (``-o -``)."""
        return self.written.stdout_lines(self._summary())

    def stderr_lines(self) -> list[str]:
        """The summary line, when the job went to standard output."""
        return self.written.stderr_lines(self._summary())


def register(parser: argparse.ArgumentParser) -> None:
    """``export --project ID -o FILE`` with the connection flags."""
    parser.description = DESCRIPTION
    parser.add_argument("--project", required=True, metavar="ID", help="the project to export")
    parser.add_argument("--type", choices=("gantt", "mind"), help="only plans of this type")
    parser.add_argument("--search", metavar="TEXT", help="only plans whose name contains TEXT")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="FILE",
        help="where to write the job (- for stdout; an existing file is kept as FILE.1)",
    )  # fmt: skip
    add_connection_arguments(parser)


def from_args(args: argparse.Namespace, console: Console) -> ExportResult:
    """Export the project named on the command line."""
    project = check_project(args.project, "--project")
    return export(
        project=project,
        output=args.output,
        settings=settings_from_args(args, RunSettings()),
        plan_type=args.type,
        search=args.search,
        console=console,
    )


def export(
    *,
    project: str,
    output: Path,
    settings: RunSettings | None = None,
    plan_type: str | None = None,
    search: str | None = None,
    console: Console | None = None,
) -> ExportResult:
    """List ``project``'s plans and write to ``output`` a job that sets their thumbnails."""
    settings = settings or RunSettings()
    connection = connect(settings, None, console or Quiet())

    async def listing() -> tuple[PlanSummary, ...]:
        async with open_session(connection, settings) as (api, sender):
            return await list_project(
                api,
                sender,
                project,
                plan_type=plan_type,
                search=search,
                max_pages=settings.max_list_pages,
            )

    plans = anyio.run(listing)
    text, count = export_job(plans, project_id=project, endpoint=connection.endpoint)
    return ExportResult(write_job(output, text), len(plans), count)
