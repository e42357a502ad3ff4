"""Headless Chromium for the browser tests (the app they drive is the ``server`` fixture of tests/conftest.py,
or a folder of their own)."""

from __future__ import annotations

import pytest
from helpers.browser import start_chromium, stop_chromium


@pytest.fixture()
def start_browser():
    """Starts headless Chromium (1440 x 1000) when the test calls it, so a missing browser fails the test itself."""
    started = []

    def start():
        started.append(start_chromium(1440, 1000))
        return started[-1][0]

    yield start
    for driver, profile in started:
        stop_chromium(driver, profile)


@pytest.fixture()
def browser(tmp_path):
    """Headless Chromium (1280 x 1000) saving downloads into ``driver.downloads`` (tmp_path/downloads)."""
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver, profile = start_chromium(1280, 1000, downloads)
    driver.downloads = downloads
    yield driver
    stop_chromium(driver, profile)
