"""The browser tests' fixtures: Chromium installed, and one headless browser per test module."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.conftest import ROOT
from tests.e2e.browser import CHROMEDRIVER, CHROMIUM, RECORD_CSP_VIOLATIONS, WAIT_S


@pytest.fixture(scope="module")
def browser_installed() -> None:
    # Idempotent and quiet when both binaries exist; installs Debian's packages otherwise.
    subprocess.run([str(ROOT / "scripts" / "ensure_browser.sh")], check=True)


@pytest.fixture(scope="module")
def driver(browser_installed: None) -> Iterator[webdriver.Chrome]:
    with tempfile.TemporaryDirectory(prefix="eventline-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for argument in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1400",
            f"--user-data-dir={profile}",
            # A closed network: no name but the loopback address resolves.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        ):
            options.add_argument(argument)
        # An explicit driver path: Selenium Manager never looks for (or downloads) anything.
        browser = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
        try:
            browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_CSP_VIOLATIONS})
            browser.set_page_load_timeout(WAIT_S)
            yield browser
        finally:
            browser.quit()
