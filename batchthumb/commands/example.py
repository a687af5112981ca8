"""``batchthumb example DIR``: write the example jobs, their images and the migration seeds.

They ship in the wheel as package data (``batchthumb/examples``, from the repository's
``jobs/`` folder), so they are reachable after ``pip install .``; in a source checkout the
``jobs/`` folder is used directly.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from batchthumb.commands import Done
from batchthumb.console import Console
from batchthumb.errors import UsageError, os_errors

DESCRIPTION = (
    "Write the example jobs (example.yaml, local-images.yaml), their images and the "
    "migration seeds (seeds/migration.yaml, seeds/region-*.yaml) into DIR, which must not "
    "hold them already."
)


@dataclass(frozen=True, slots=True)
class ExampleResult(Done):
    """The example files written, relative to ``folder``."""

    folder: Path
    written: tuple[str, ...]

    def stdout_lines(self) -> list[str]:
        """What was written, and the first command to try."""
        return [
            *(str(self.folder / name) for name in self.written),
            f"try: batchthumb run {self.folder / 'example.yaml'} --sandbox",
        ]


def register(parser: argparse.ArgumentParser) -> None:
    """``example DIR``."""
    parser.description = DESCRIPTION
    parser.add_argument("folder", type=Path, metavar="DIR")


def from_args(args: argparse.Namespace, console: Console) -> ExampleResult:
    """Write the examples into the folder named on the command line."""
    return example(folder=args.folder)


def examples() -> Traversable:
    """The shipped examples: package data when installed, else the checkout's ``jobs/``."""
    shipped = files("batchthumb") / "examples"
    if shipped.is_dir():
        return shipped
    return Path(__file__).resolve().parents[2] / "jobs"


def example(*, folder: Path) -> ExampleResult:
    """Copy every example file into ``folder``; refuse, writing nothing, if one is there."""
    sources = sorted(_walk(examples(), ""))
    clash = next((name for name, _ in sources if (folder / name).exists()), None)
    if clash is not None:
        raise UsageError(f"{folder / clash} exists already; pick another folder")
    for name, source in sources:
        target = folder / name
        with os_errors(target, "write"):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    return ExampleResult(folder, tuple(name for name, _ in sources))


def _walk(folder: Traversable, prefix: str) -> list[tuple[str, Traversable]]:
    """Every shipped file under ``folder`` as (relative name, file); reports left out."""
    found: list[tuple[str, Traversable]] = []
    for entry in folder.iterdir():
        name = f"{prefix}{entry.name}"
        if entry.is_dir():
            found.extend(_walk(entry, f"{name}/"))
        elif entry.name.endswith((".yaml", ".png")):
            found.append((name, entry))
    return found
