"""Headless Chromium for the browser tests, and what more than one of them does with it."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 120  # the first answer may wait for the models on a busy CPU

# The WCAG contrast ratio of an element's computed text colour against the first opaque background behind it.
CONTRAST_JS = """
function rgb(s) { const m = s.match(/[\\d.]+/g).map(Number); return m.length > 3 ? m : [...m, 1]; }
function lum(c) { const [r, g, b] = c.slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b; }
function background(el) { for (; el; el = el.parentElement) { const c = rgb(getComputedStyle(el).backgroundColor); if (c[3] > 0.5) return c; } return [255, 255, 255, 1]; }
const el = arguments[0], fg = rgb(getComputedStyle(el).color), bg = background(el);
const a = lum(fg), b = lum(bg);
return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
"""


def start_chromium(width: int, height: int, downloads: Path | None = None):
    """Headless Chromium on a fresh profile, ``width`` x ``height``, saving downloads into ``downloads``
    when given; returns (driver, profile folder). A missing browser or selenium fails the test, saying
    how to install it."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"Chromium is not installed ({', '.join(missing)} missing): "
                    "run `apt-get install -y chromium chromium-driver`.", pytrace=False)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is not installed: run `pip install selenium`.", pytrace=False)
    profile = tempfile.mkdtemp(prefix="qa-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    if downloads is not None:
        options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                                  "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    if downloads is not None:
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    return driver, profile


def stop_chromium(driver, profile: str) -> None:
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def ask(driver, wait, question: str, replies: int):
    """Types ``question``, sends it, and returns the chat's last reply once there are ``replies`` of them."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    box = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#qa-question textarea")))
    box.send_keys(question)
    driver.find_element(By.CSS_SELECTOR, "#qa-ask").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#qa-chat .qa-reply")) >= replies)
    return driver.find_elements(By.CSS_SELECTOR, "#qa-chat .qa-reply")[-1]


def screenshot_taken(driver) -> bool:
    """Whether Chromium renders the page into a screenshot of some substance (over 10 kB as PNG). The
    screenshot is not kept: benchmarks/screenshots.py makes the ones people look at."""
    return len(driver.get_screenshot_as_png()) > 10_000
