"""The library API (`import batchthumb`), the `example` command, and what the wheel ships."""

from __future__ import annotations

import ast
import contextlib
import graphlib
import io
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

import batchthumb
from batchthumb import cli
from batchthumb.errors import UsageError
from tests.clihelp import write_job
from tests.conftest import TOKEN

ROOT = Path(__file__).resolve().parents[1]


def readme_example() -> str:
    """The Python block that follows ``<!-- api-example -->`` in the README."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    after = text.split("<!-- api-example -->", 1)[1]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_api_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's library example runs as printed: 24 plans set, a resume sends nothing."""
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(readme_example(), "README.md", "exec"), {"__name__": "readme"})
    assert out.getvalue().splitlines() == [
        "24 plans set; report: try/example.results.jsonl",
        "resumed: 24 already done, nothing sent: True",
        "exit code 2: try/missing.yaml: no such file",
    ]


def test_every_public_name_resolves_and_others_do_not() -> None:
    """Each name in batchthumb.__all__ loads on first use; an unknown one is AttributeError."""
    assert set(batchthumb.__all__) == {*batchthumb._EXPORTS, "__version__"}
    for name in batchthumb.__all__:
        assert getattr(batchthumb, name) is not None
    assert dir(batchthumb) == sorted(batchthumb.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = batchthumb.nothing


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -c CODE`` from the repository root; fail after 90 s instead of hanging."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=90,
    )


@pytest.mark.subprocess
def test_import_and_help_load_no_command() -> None:
    """`import batchthumb` loads nothing else; `batchthumb --help` loads no command module."""
    code = textwrap.dedent(
        """
        import sys
        import batchthumb
        first = sorted(m for m in sys.modules if m.startswith("batchthumb"))
        from batchthumb import cli
        try:
            cli.main(["--help"])
        except SystemExit:
            pass
        print(first, sorted(m for m in sys.modules if m.startswith("batchthumb.commands.")))
        """
    )
    done = run_python(code)
    assert done.stdout.splitlines()[-1] == "['batchthumb'] []"


def test_the_api_raises_and_prints_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A job with no endpoint: run() raises UsageError (exit code 2) and says nothing."""
    job = batchthumb.load_job(write_job(tmp_path / "job.yaml", endpoint=None, plans=range(2)))
    with pytest.raises(UsageError, match="no endpoint") as raised:
        batchthumb.run(job=job)
    assert raised.value.exit_code == 2
    assert capsys.readouterr() == ("", "")


def test_dry_run_and_validate_return_what_the_cli_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dry_run lists the first requests and sends nothing; validate counts items and projects."""
    monkeypatch.setenv(
        "BATCHTHUMB_TOKEN", TOKEN
    )  # a dry run checks the credentials a run would use
    path = write_job(tmp_path / "job.yaml", endpoint="https://h.example", plans=range(25))
    job = batchthumb.load_job(path)
    lines = batchthumb.dry_run(job=job).stdout_lines()
    assert lines[0] == "dry run: 25 of 25 plans to set, 0 already done"
    assert lines[-2:] == ["  ... and 5 more", "nothing was sent"]
    assert not (tmp_path / "job.results.jsonl").exists()
    result = batchthumb.validate(job_path=path)
    assert (result.items, result.projects, result.exit_code) == (25, 1, 0)


def test_example_writes_the_shipped_jobs_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`batchthumb example DIR` writes valid jobs, images and the seed; run again, exit 2."""
    folder = tmp_path / "ex"
    assert cli.main(["example", str(folder)]) == 0
    out = capsys.readouterr().out
    assert f"try: batchthumb run {folder / 'example.yaml'} --sandbox" in out
    for name in ("example.yaml", "local-images.yaml"):
        assert len(batchthumb.load_job(folder / name).items) > 0
    assert (folder / "images/blue.png").read_bytes() == (ROOT / "jobs/images/blue.png").read_bytes()
    before = (folder / "example.yaml").read_text()
    (folder / "example.yaml").write_text(before + "# edited\n")
    assert cli.main(["example", str(folder)]) == 2
    assert capsys.readouterr().err == (
        f"batchthumb: {folder / 'example.yaml'} exists already; pick another folder\n"
    )
    assert (folder / "example.yaml").read_text() == before + "# edited\n"


def test_the_wheel_ships_every_example_file() -> None:
    """pyproject's force-include names every job, image and seed in jobs/, nothing else."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    shipped = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    on_disk = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "jobs").rglob("*")
        if path.suffix in (".yaml", ".png")
    }
    assert set(shipped) == on_disk
    assert all(v == "batchthumb/examples/" + k.removeprefix("jobs/") for k, v in shipped.items())


@pytest.mark.subprocess
def test_without_fcntl_everything_imports_and_the_lock_says_posix_only(tmp_path: Path) -> None:
    """On "win32" without fcntl, every module imports; taking the lock is a clear error."""
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        import aiohttp, anyio, yaml, tqdm  # third-party imports, as on Linux
        sys.modules["fcntl"] = None  # import fcntl now raises ImportError
        sys.platform = "win32"
        import batchthumb.cli, batchthumb.commands.run, batchthumb.report
        from batchthumb.errors import UsageError
        try:
            with batchthumb.report.report_lock(Path({str(tmp_path / "r.jsonl")!r})):
                pass
        except UsageError as exc:
            print(exc)
        """
    )
    done = run_python(code)
    assert done.stdout.strip() == (
        "batchthumb needs a POSIX system (Linux or macOS; on Windows, WSL) for the report's lock"
    )
    assert not (tmp_path / "r.jsonl.lock").exists()


def _imports(path: Path, name: str, modules: set[str]) -> set[str]:
    """The batchthumb modules a module imports anywhere in it (TYPE_CHECKING included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                inner = f"{node.module}.{alias.name}"
                found.add(inner if inner in modules else node.module)
    return {module for module in found if module in modules and module != name}


def test_imports_point_down_with_no_cycle() -> None:
    """No batchthumb module imports, even for types, one that imports it back (sandbox too)."""
    package = ROOT / "batchthumb"
    paths = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
        for p in package.rglob("*.py")
    }
    modules = set(paths)
    graph = {
        name: _imports(path, name, modules)
        for name, path in paths.items()
        if name != "batchthumb"  # the API's lazy re-exports import everything, by design
    }
    graph["batchthumb"] = set()
    tuple(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError on a cycle
    assert not graph["batchthumb.model"] - {"batchthumb.errors"}
    assert "batchthumb.runner" not in graph["batchthumb.plans"] | graph["batchthumb.migrate"]
    top = {m for m in modules if ".commands" in m or m.endswith((".cli", "__main__"))}
    below = set().union(*(deps for name, deps in graph.items() if name not in top))
    assert not top & below  # nothing but an entry point imports cli or a command


def test_the_readme_layout_table_names_every_module() -> None:
    """Every top-level module and package of batchthumb has a row in the README's table."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("## How the code is laid out", 1)[1].split("\n\n", 2)[2]
    rows = [line.split("|")[1] for line in table.split("\n\n", 1)[0].splitlines()[2:]]
    named = set(re.findall(r"`([a-z_]+(?:\.py|/))`", "".join(rows)))
    package = ROOT / "batchthumb"
    tree = {p.name for p in package.glob("*.py") if p.name != "__main__.py"} | {
        f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").exists()
    }
    assert named == tree
