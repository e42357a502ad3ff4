"""Screenshots of the chat app in headless Chromium, to look at: phone (390x844) and desktop (1280x900) width,
light and dark.

At each size and theme it saves the empty chat, then asks two questions and saves the chat, opens the last
answer's citation and saves the viewer, and saves the Documents tab, each as it shows on screen
(``<view>-<theme>-<width>.png``). Without ``--url`` it starts its own server on the bundled corpus
(``python -m qa.cli serve`` on a free port of 127.0.0.1, serving its copy in .qa-demo/) and stops it
afterwards. Needs ``selenium`` and Debian's ``chromium`` and ``chromium-driver`` (``make browser``).

Example:
    $ python -m benchmarks.screenshots --out /tmp/qa-shots
    $ python -m benchmarks.screenshots --url http://127.0.0.1:7860/ --widths 390 --themes dark
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.loadtest import free_port, wait_until_up

logger = logging.getLogger(__name__)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Two turns, so that the chat scrolls; the second cites a document with a long title, which the viewer's
# document picker then shows.
QUESTIONS = ("When do primary care trusts go live?", "Who is the chief executive of NHS North West?")
HEIGHTS = {390: 844, 1280: 900}  # a phone's viewport, and a laptop's
WAIT_S = 180


def start_server(port: int, workdir: Path) -> subprocess.Popen:
    """``python -m qa.cli serve`` on 127.0.0.1:``port`` with its feedback file and log in ``workdir``."""
    cmd = [sys.executable, "-m", "qa.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--feedback", str(workdir / "feedback.jsonl")]
    log = (workdir / "server.log").open("w", encoding="utf-8")
    logger.info("starting %s (log: %s)", " ".join(cmd), workdir / "server.log")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def open_browser(profile: Path):
    """Headless Chromium with a fresh profile in ``profile``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def set_viewport(driver, width: int, height: int) -> None:
    """The page's viewport exactly ``width`` x ``height`` CSS pixels; a narrow one is emulated as a phone
    (a mobile viewport), as a phone's browser lays the page out."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})


def shoot(driver, out: Path, name: str) -> Path:
    """The viewport as ``out/name``, once layout and transitions have settled."""
    time.sleep(0.6)
    path = out / name
    if not driver.save_screenshot(str(path)):
        raise RuntimeError(f"Chromium took no screenshot for {name}")
    logger.info("saved %s", path)
    return path


def scroll_to(driver, css: str) -> None:
    """Scroll so that the first element matching ``css`` starts at the top of the viewport."""
    driver.execute_script("const e = document.querySelector(arguments[0]); "
                          "if (e) e.scrollIntoView({block: 'start'});", css)


def tab(driver, label: str) -> None:
    """Click the side panel's tab named ``label``."""
    from selenium.webdriver.common.by import By

    button = driver.find_element(By.XPATH, f"//button[@role='tab' and normalize-space()='{label}']")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", button)


def ask(driver, wait, question: str, replies: int) -> None:
    """Type ``question``, press Ask, and wait until the chat holds ``replies`` replies."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    box = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#qa-question textarea")))
    box.send_keys(question)
    driver.find_element(By.CSS_SELECTOR, "#qa-ask").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#qa-chat .qa-reply")) >= replies)


def one_pass(driver, url: str, out: Path, width: int, theme: str) -> list[Path]:
    """The four screenshots of one size and theme; returns their paths."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, WAIT_S)
    set_viewport(driver, width, HEIGHTS.get(width, 900))
    page = url.rstrip("/") + f"/?__theme={theme}"
    driver.get(page)
    driver.execute_script("localStorage.clear(); sessionStorage.clear();")  # the page keeps the last chat
    driver.get(page)
    wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#qa-question textarea")))
    suffix = f"{theme}-{width}.png"
    shots = [shoot(driver, out, f"start-{suffix}")]
    for n, question in enumerate(QUESTIONS, 1):
        ask(driver, wait, question, n)
    scroll_to(driver, "#qa-chat")
    shots.append(shoot(driver, out, f"answer-{suffix}"))
    # The link is looked up at the click: the chat re-renders its messages while the page settles.
    driver.execute_script("const all = document.querySelectorAll('#qa-chat .qa-reply a.qa-cite'); "
                          "const cite = all[all.length - 1]; cite.scrollIntoView({block: 'center'}); cite.click();")
    wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "#qa-viewer mark#qa-focus")))
    time.sleep(0.5)  # the page's own script brings the viewer into view at a narrow width
    scroll_to(driver, "#qa-tabs")
    shots.append(shoot(driver, out, f"viewer-{suffix}"))
    tab(driver, "Documents")
    wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, ".qa-library")))
    scroll_to(driver, "#qa-tabs")
    shots.append(shoot(driver, out, f"documents-{suffix}"))
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "qa-screenshots",
                        help="folder for the PNG files (default: qa-screenshots in the temporary folder)")
    parser.add_argument("--url", default=None, help="a running app (default: start one on the bundled corpus)")
    parser.add_argument("--widths", type=int, nargs="+", default=[390, 1280], help="viewport widths in CSS px")
    parser.add_argument("--themes", nargs="+", choices=["light", "dark"], default=["light", "dark"])
    parser.add_argument("--startup-timeout", type=float, default=900,
                        help="seconds to wait for the started server, which loads its models first (default: 900)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        print(f"error: Chromium is not installed ({', '.join(missing)} missing): run `make browser`.",
              file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="qa-screenshots-"))
    server = None
    driver = None
    try:
        url = args.url
        if url is None:
            port = free_port()
            url = f"http://127.0.0.1:{port}/"
            server = start_server(port, workdir)
        wait_until_up(url, args.startup_timeout, server)
        driver = open_browser(workdir / "profile")
        for theme in args.themes:
            for width in args.widths:
                one_pass(driver, url, args.out, width, theme)
    finally:
        if driver is not None:
            driver.quit()
        if server is not None:
            server.terminate()
            server.wait(timeout=60)
        shutil.rmtree(workdir / "profile", ignore_errors=True)
    shutil.rmtree(workdir, ignore_errors=True)  # kept, with the server's log, only when something failed
    print(f"screenshots in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
