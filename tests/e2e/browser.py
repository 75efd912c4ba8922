"""What the browser tests share: a headless Chromium on a closed network, and what to ask it.

The browser is Debian's `chromium` with its `chromium-driver`, installed by
`scripts/ensure_browser.sh` (a missing browser fails the setup; it is never
skipped, and no browser build is ever downloaded). Every host but 127.0.0.1
is made unresolvable for the browser, so a page works here only if it loads
nothing from the internet, as on a closed production network.
"""

from __future__ import annotations

from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_S = 60
RECORD_CSP_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation",
                          event => window.cspViolations.push([event.violatedDirective, event.blockedURI]));
"""  # two shared cores: a cold Chromium rendering a 1.5 MB bundle can be slow


def wait(browser: WebDriver) -> WebDriverWait[WebDriver]:
    return WebDriverWait(browser, WAIT_S)


def loaded_from_elsewhere(browser: WebDriver, origin: str) -> list[str]:
    """Every resource the page tried to load from anywhere but `origin` (blocked attempts included)."""
    names: list[str] = browser.execute_script(
        "return performance.getEntriesByType('resource').map(entry => entry.name)"
    )
    return [name for name in names if not name.startswith(origin + "/") and not name.startswith("data:")]


def blocked_by_the_page_policy(browser: WebDriver) -> list[str]:
    """What the docs pages' Content-Security-Policy refused, as `directive URL`."""
    violations: list[list[str]] = browser.execute_script("return window.cspViolations || []")
    return [f"{directive} {uri}" for directive, uri in violations]
