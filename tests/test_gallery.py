"""The before/after gallery: written through the CLI from real runs, then looked at in a real
headless Chromium (Debian's chromium and chromium-driver, driven by selenium)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from batchthumb.sandbox import Sandbox
from tests.clihelp import cli
from tests.conftest import P1, TOKEN, plan_id
from tests.scenario import FAILING, HOSTILE, run_scenario

pytestmark = pytest.mark.anyio

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).parent / "artifacts"  # gitignored: the screenshots of each run
SCREENSHOT = Path(__file__).parent / "screenshots" / "gallery.png"  # the README's


async def make_gallery(
    box: Sandbox, url: str, folder: Path, *extra: str, plans: int = 6, shared: bool = False
) -> tuple[Path, int]:
    """Run the scenario, then `report --format html`; the gallery folder and downloads made."""
    run = await run_scenario(box, url, folder, plans=plans, shared=shared)
    downloads = box.stats.downloads
    out = folder / "gallery"
    result = await cli(
        "report", str(run.report), "--format", "html", "-o", str(out), "--endpoint", url, *extra
    )
    assert result.code == 0, result.err
    assert f"{out / 'index.html'}" in result.err
    return out, box.stats.downloads - downloads


async def test_the_gallery_holds_every_image_once_and_no_token(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """Each distinct thumbnail is downloaded once through the API into the folder, the pages
    point at the copies only, and no file holds the token."""
    box, url = sandbox
    out, downloads = await make_gallery(box, url, tmp_path)
    images = sorted((out / "images").iterdir())
    # 4 plans had a thumbnail (one of them already showing its new one), 6 new ones: 9 URLs.
    assert downloads == len(images) == 9
    page = (out / "index.html").read_text(encoding="utf-8")
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sources and all(src.startswith("images/") for src in sources)
    assert {Path(src).name for src in sources} == {image.name for image in images}
    assert "http://" not in page.replace("http://evil.example/", "")  # nothing to fetch
    for path in out.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


async def test_names_and_messages_are_shown_as_text_and_failures_come_first(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """A plan named like an HTML tag and a server message with a script are escaped; the
    failed plan is the first card."""
    box, url = sandbox
    out, _ = await make_gallery(box, url, tmp_path)
    page = (out / "index.html").read_text(encoding="utf-8")
    assert HOSTILE not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<script>alert(2)</script>" not in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    cards = re.findall(r'<article class="card (\w+)"', page)
    assert cards[0] == "failed" and cards.count("failed") == 1
    first = page.index("<article")
    assert plan_id(FAILING) in page[first : page.index("</article>", first)]


async def test_a_large_report_is_split_into_linked_pages(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """--page-size 2 with 7 plans: four pages, each linking to the others, 7 cards in all;
    an image shown on every page is downloaded once."""
    box, url = sandbox
    out, downloads = await make_gallery(
        box, url, tmp_path, "--page-size", "2", plans=7, shared=True
    )
    assert downloads == len(list((out / "images").iterdir())) == 6  # 5 before, 1 shared new
    pages = sorted(path.name for path in out.glob("*.html"))
    assert pages == ["index.html", "page-2.html", "page-3.html", "page-4.html"]
    cards = 0
    for name in pages:
        page = (out / name).read_text(encoding="utf-8")
        cards += page.count("<article")
        assert "of 4:" in page
        for other in set(pages) - {name}:
            assert f'href="{other}"' in page
    assert cards == 7


async def test_run_gallery_writes_the_pages_after_the_run(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """`run --gallery DIR` writes the gallery of the run it just did."""
    box, url = sandbox
    run = await run_scenario(box, url, tmp_path)
    out = tmp_path / "after"
    result = await cli(
        "run", str(run.job), "--no-progress", "--gallery", str(out), "--report",
        str(tmp_path / "second.jsonl"),
    )  # fmt: skip
    assert result.code == 0, result.err
    assert f"gallery of 6 plans: {out / 'index.html'}" in result.err
    assert (out / "index.html").read_text(encoding="utf-8").count("<article") == 6


async def test_html_needs_a_folder_and_an_endpoint(tmp_path: Path) -> None:
    """Without -o, or without an endpoint, html is a usage error (exit 2) and sends nothing."""
    report = tmp_path / "r.jsonl"
    report.write_text(
        f'{{"project_id": "{P1}", "plan_id": "{plan_id(1)}", "outcome": "skipped"}}\n'
    )
    no_folder = await cli("report", str(report), "--format", "html")
    assert no_folder.code == 2
    assert "--format html writes a folder: give it with -o DIR" in no_folder.err
    no_endpoint = await cli("report", str(report), "--format", "html", "-o", str(tmp_path / "g"))
    assert no_endpoint.code == 2
    assert "no endpoint" in no_endpoint.err


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    """A real headless Chromium; skipped where it is not installed, but never under CI."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        reason = f"{' and '.join(missing)} not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--window-size=1280,900", f"--user-data-dir={tmp_path / 'profile'}",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


async def test_the_gallery_renders_in_a_real_browser(
    tmp_path: Path, sandbox: tuple[Sandbox, str], browser: object
) -> None:
    """Chromium loads the page from file://: every image decodes, the counts show, the
    failure filter leaves only the failed card; the screenshot is kept."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    box, url = sandbox
    out, _ = await make_gallery(box, url, tmp_path)
    driver = browser

    def look() -> dict[str, object]:
        driver.get((out / "index.html").as_uri())
        # The page loads images lazily: ask for all of them now, and wait (on their load and
        # error events, within the script timeout) until each has loaded or failed.
        driver.set_script_timeout(60)
        driver.execute_async_script(
            """
            const done = arguments[arguments.length - 1];
            const images = [...document.images];
            images.forEach(i => { i.loading = 'eager'; });
            Promise.all(images.map(i => i.complete ? null : new Promise(settle => {
              i.addEventListener('load', settle); i.addEventListener('error', settle);
            }))).then(() => done(null));
            """
        )
        state: dict[str, object] = driver.execute_script(
            """
            const images = [...document.images];
            return {
              images: images.length,
              decoded: images.filter(i => i.complete && i.naturalWidth > 0).length,
              summary: document.querySelector('.summary').innerText,
              titles: [...document.querySelectorAll('.card h2')].map(h => h.innerText),
              visible: document.querySelectorAll('.card:not([hidden])').length,
            };
            """
        )
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "gallery.png"))
        driver.find_element(By.CSS_SELECTOR, 'button[data-show="failed"]').click()
        state["after_filter"] = driver.execute_script(
            "return [...document.querySelectorAll('.card:not([hidden])')]"
            ".map(c => c.dataset.outcome)"
        )
        driver.save_screenshot(str(ARTIFACTS / "gallery-failed.png"))
        return state

    with anyio.fail_after(120):
        state = await anyio.to_thread.run_sync(look)
    assert state["images"] == 10  # 6 new, 4 before (the 2 without one show "none")
    assert state["decoded"] == state["images"]
    assert "6 plans" in str(state["summary"]) and "1 failed" in str(state["summary"])
    assert HOSTILE in list(state["titles"])  # type: ignore[call-overload]
    assert state["visible"] == 6
    assert state["after_filter"] == ["failed"]
    if os.environ.get("BATCHTHUMB_SCREENSHOT"):  # refresh the README's picture on purpose
        shutil.copy(ARTIFACTS / "gallery.png", SCREENSHOT)


async def test_run_gallery_works_against_the_embedded_sandbox(tmp_path: Path) -> None:
    """`run --sandbox --gallery DIR` of a local-images job: the pages are written while the
    embedded sandbox is still up, with the two uploaded images."""
    shipped = Path(__file__).parents[1] / "jobs"
    shutil.copy(shipped / "local-images.yaml", tmp_path)
    shutil.copytree(shipped / "images", tmp_path / "images")
    out = tmp_path / "gallery"
    result = await cli(
        "run", str(tmp_path / "local-images.yaml"), "--sandbox", "--no-progress",
        "--gallery", str(out),
    )  # fmt: skip
    assert result.code == 0, result.err
    assert f"gallery of 4 plans: {out / 'index.html'}" in result.err
    assert len(list((out / "images").iterdir())) == 2
