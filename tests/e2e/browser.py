"""What the browser tests share: a headless Chromium on a closed network, and what to ask it.

The browser is Debian's `chromium` with its `chromium-driver`, installed by
`scripts/ensure_browser.sh` (a missing browser fails the setup; it is never
skipped, and no browser build is ever downloaded). Every host but 127.0.0.1
is made unresolvable for the browser, so a page works here only if it loads
nothing from the internet, as on a closed production network.
"""

from __future__ import annotations

from typing import Any

from selenium.common.exceptions import StaleElementReferenceException
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
    """Polls a condition until it holds. The console re-renders its tables every few seconds, so an
    element found a moment ago may be gone when the condition reads it: that poll counts as "not
    yet" and the next one finds the new element (a stale read once failed a CI run)."""
    return WebDriverWait(browser, WAIT_S, ignored_exceptions=(StaleElementReferenceException,))


def read(browser: WebDriver, script: str, *args: Any) -> Any:
    """What `script` returns, computed in the page in one go: no element found by one call and read
    by the next, which the page may have replaced in between."""
    return browser.execute_script(script, *args)


def text_of(browser: WebDriver, selector: str) -> str:
    """The text of the element `selector` finds ("" when none), read in one step in the page."""
    return str(
        read(
            browser,
            "const found = document.querySelector(arguments[0]); return found ? found.textContent : '';",
            selector,
        )
    )


def click(browser: WebDriver, selector: str) -> None:
    """Click the element `selector` finds once it is shown and enabled, found and clicked in one
    step in the page: the console replaces its rows every second, and an element found by one
    WebDriver call can be gone by the next (clicking through WebDriver then races the page)."""
    script = (
        "const target = document.querySelector(arguments[0]);"
        "if (!target || target.disabled || target.offsetParent === null) return false;"
        "target.click(); return true;"
    )
    wait(browser).until(lambda b: read(b, script, selector))


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
