"""The browser every test of this directory drives: Debian's Chromium through Playwright, one per module."""
from __future__ import annotations

import pytest

from tests.browser.test_browser_panel import CHROMIUM, CHROMIUM_ARGS, _playwright


@pytest.fixture(scope="module")
def browser():
    sync_playwright = _playwright()
    with sync_playwright() as p:
        # launch() gives every run a fresh temporary profile (user data dir), removed at close.
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
