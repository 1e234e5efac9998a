"""The built documentation site in headless Chromium: the landing page and an API page
render from local files only (no CDN: the site must work offline), and their
screenshots are saved under ``test-artifacts/`` (git-ignored)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Browser, expect

from tests.example.test_browser import ARTIFACTS, browser  # noqa: F401 (a fixture)
from tests.test_docs import ROOT

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", directory],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=True,
        capture_output=True,
        timeout=300,
    )
    return directory


@pytest.mark.parametrize(
    ("page_path", "heading", "name"),
    [
        ("index.html", "channels-graphql-typed", "docs-landing"),
        ("reference/api/index.html", "GraphqlWsConsumer", "docs-api"),
    ],
)
def test_a_page_renders_from_local_files(
    browser: Browser,  # noqa: F811 (the fixture)
    site: Path,
    page_path: str,
    heading: str,
    name: str,
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    requested: list[str] = []
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("request", lambda request: requested.append(request.url))
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto((site / page_path).as_uri())
        expect(page.locator("article")).to_contain_text(heading)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / f"{name}.png")
    finally:
        context.close()
    assert not errors, errors
    assert requested, "the page requested nothing"
    outside = [url for url in requested if not url.startswith(("file://", "data:"))]
    assert outside == [], f"the page fetched from outside the site: {outside}"
    assert (ARTIFACTS / f"{name}.png").read_bytes().startswith(b"\x89PNG")
