"""Open a page in Debian's headless Chromium (through Playwright) and measure what a reader would see.

Tests that need the browser skip without one, unless RDTFLOW_REQUIRE_BROWSER=1 (CI sets it
after scripts/install.sh installed `chromium`): then a missing browser fails them instead.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("RDTFLOW_TEST_ARTIFACTS", REPO / "test-artifacts"))
"""Where the browser tests leave their screenshots (git-ignored)."""
LOAD_TIMEOUT_MS = 30_000

# Everything the page loaded, and every image and video in it, once it has settled.
MEASURE = """() => ({
  images: Array.from(document.images).map(image => ({alt: image.alt, naturalWidth: image.naturalWidth})),
  videos: Array.from(document.querySelectorAll("video")).map(video => video.readyState),
  scrollWidth: document.documentElement.scrollWidth,
  innerWidth: window.innerWidth,
})"""
VIDEOS_READY = "() => Array.from(document.querySelectorAll('video')).every(video => video.readyState >= 2)"


def chromium() -> str:
    """The Chromium executable, or the test is skipped (failed under RDTFLOW_REQUIRE_BROWSER=1)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is not None:
        return found
    problem = "no chromium on PATH (scripts/install.sh installs Debian's chromium package as root)"
    if os.environ.get("RDTFLOW_REQUIRE_BROWSER") == "1":
        pytest.fail(f"RDTFLOW_REQUIRE_BROWSER=1 but {problem}", pytrace=False)
    pytest.skip(problem)


@dataclass
class PageView:
    """What one page showed at one width."""

    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)
    videos: list[int] = field(default_factory=list)  # readyState of each video
    scroll_width: int = 0
    inner_width: int = 0
    texts: dict[str, str] = field(default_factory=dict)  # selector -> its inner text


def view_page(page_file: Path, width: int, screenshot: Path, selectors: tuple[str, ...] = ()) -> PageView:
    """Load `page_file` at `width` px, wait until its videos can play, and screenshot it whole."""
    from playwright.sync_api import sync_playwright

    view = PageView()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.on("console", lambda message: view.console_errors.append(message.text)
                    if message.type == "error" else None)
            page.on("pageerror", lambda error: view.console_errors.append(str(error)))
            page.on("requestfailed", lambda request: view.failed_requests.append(request.url[:200]))
            page.goto(page_file.resolve().as_uri(), wait_until="load", timeout=LOAD_TIMEOUT_MS)
            page.wait_for_function(VIDEOS_READY, timeout=LOAD_TIMEOUT_MS)
            measured = page.evaluate(MEASURE)
            view.images, view.videos = measured["images"], measured["videos"]
            view.scroll_width, view.inner_width = measured["scrollWidth"], measured["innerWidth"]
            view.texts = {selector: page.inner_text(selector) for selector in selectors}
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return view
