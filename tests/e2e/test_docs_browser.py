"""A real headless Chromium uses `/docs` of a real `eventline run`: authorize, try it out, get a 201.

The browser is Debian's `chromium` with its `chromium-driver`, installed by
`scripts/ensure_browser.sh` (a missing browser fails the setup; it is never
skipped, and no browser build is ever downloaded). Every host but 127.0.0.1
is made unresolvable for the browser, so the docs pages work here only if they
load nothing from the internet, as on a closed production network.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec

from app.config import Settings
from tests.conftest import ROOT
from tests.e2e.browser import blocked_by_the_page_policy, loaded_from_elsewhere, wait
from tests.support import Process, free_port, fresh_namespace
from tests.waiting import eventually

SCREENSHOT = ROOT / "artifacts" / "docs-browser.png"
NEW_ACCOUNT = {"owner": "Ada", "currency": "EUR"}


@dataclass
class Server:
    url: str
    api_key: str


@pytest.fixture(scope="module")
async def server(settings: Settings) -> AsyncIterator[Server]:
    """`eventline run` (API and every worker) on a free port, with one admin key."""
    api_key = "el_e2e_" + secrets.token_urlsafe(24)
    port = free_port()
    ns = await fresh_namespace(
        settings,
        own_database=True,
        api_port=port,
        api_keys=f"dev:admin:{hashlib.sha256(api_key.encode()).hexdigest()}",
        command_timeout_s=30,  # the first command of a cold processor on a busy machine still gets its 201
    )
    process = Process(ns, "run").start()
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=5) as http:

            async def ready() -> int:
                return (await http.get("/health/ready")).status_code

            try:
                await eventually(ready, 200, timeout=90, interval=0.25)
            except AssertionError as error:
                raise AssertionError(f"{error}\n--- eventline run log ---\n{process.log()}") from None
        yield Server(url, api_key)
    finally:
        if process.popen is not None and process.popen.poll() is not None:
            print(f"--- eventline run exited early ({process.popen.returncode}) ---\n{process.log()}")
        process.stop()


def parsed(text: str | None) -> object:
    try:
        return json.loads(text or "null")
    except ValueError:
        return None


def operation_id(server: Server, method: str, path: str) -> tuple[str, str]:
    schema = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    operation = schema["paths"][path][method]
    return operation["tags"][0], operation["operationId"]


def test_swagger_ui_authorizes_with_an_api_key_and_opens_an_account(driver: WebDriver, server: Server) -> None:
    tag, op_id = operation_id(server, "post", "/accounts")
    block = f"#operations-{tag}-{op_id}"
    started = time.monotonic()
    driver.get(f"{server.url}/docs")
    try:
        # Authorize: the HTTPBearer scheme takes the key as it is.
        wait(driver).until(ec.element_to_be_clickable((By.CSS_SELECTOR, ".scheme-container button.authorize"))).click()
        modal = wait(driver).until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".modal-ux")))
        assert "HTTPBearer" in modal.text
        wait(driver).until(ec.element_to_be_clickable((By.CSS_SELECTOR, "input#auth-bearer-value"))).send_keys(
            server.api_key
        )
        modal.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper button.authorize").click()
        wait(driver).until(
            ec.visibility_of_element_located(
                (By.XPATH, "//div[@class='auth-container']//h6[normalize-space()='Authorized']")
            )
        )
        wait(driver).until(ec.element_to_be_clickable((By.CSS_SELECTOR, ".auth-btn-wrapper button.btn-done"))).click()
        wait(driver).until(ec.invisibility_of_element_located((By.CSS_SELECTOR, ".modal-ux")))

        # POST /accounts: expand, try it out, fill the body, execute.
        summary = wait(driver).until(ec.element_to_be_clickable((By.CSS_SELECTOR, f"{block} .opblock-summary")))
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", summary)
        summary.click()
        wait(driver).until(ec.element_to_be_clickable((By.CSS_SELECTOR, f"{block} button.try-out__btn"))).click()
        body: WebElement = wait(driver).until(
            ec.element_to_be_clickable((By.CSS_SELECTOR, f"{block} textarea.body-param__text"))
        )
        body.send_keys(Keys.CONTROL, "a")
        body.send_keys(Keys.DELETE)
        body.send_keys(json.dumps(NEW_ACCOUNT))
        wait(driver).until(lambda _: parsed(body.get_attribute("value")) == NEW_ACCOUNT)
        wait(driver).until(ec.element_to_be_clickable((By.CSS_SELECTOR, f"{block} button.execute"))).click()

        # The live response, and the request that got it.
        status = wait(driver).until(
            ec.visibility_of_element_located(
                (By.CSS_SELECTOR, f"{block} .live-responses-table tr.response td.response-col_status")
            )
        )
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", status)
        response = driver.find_element(
            By.CSS_SELECTOR, f"{block} .live-responses-table tr.response td.response-col_description"
        )
        curl = driver.find_element(By.CSS_SELECTOR, f"{block} .curl-command").text
        print(f"\n/docs: from page load to the response shown: {time.monotonic() - started:.1f}s")
    finally:
        SCREENSHOT.parent.mkdir(exist_ok=True)
        driver.save_screenshot(str(SCREENSHOT))

    assert status.text.strip() == "201", f"{status.text}: {response.text}"
    assert '"aggregate_id"' in response.text and '"position"' in response.text, response.text
    assert f"Authorization: Bearer {server.api_key}" in curl
    assert loaded_from_elsewhere(driver, server.url) == []
    assert blocked_by_the_page_policy(driver) == []


def test_redoc_renders_without_the_network(driver: WebDriver, server: Server) -> None:
    driver.get(f"{server.url}/redoc")
    try:
        heading = wait(driver).until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".api-info h1")))
        wait(driver).until(lambda d: "/accounts" in d.find_element(By.TAG_NAME, "body").text)
    except TimeoutException:
        raise AssertionError(f"ReDoc did not render:\n{driver.page_source[:2000]}") from None
    assert heading.text.startswith("Eventline")
    assert urlsplit(driver.current_url).path == "/redoc"
    # ReDoc 2's "API docs by Redocly" footer has an <img> on cdn.redoc.ly: the page's policy refuses it,
    # so whatever the page tried to fetch from elsewhere must be exactly what the policy blocked.
    wait(driver).until(
        lambda d: (
            {f"img-src {url}" for url in loaded_from_elsewhere(d, server.url)} <= set(blocked_by_the_page_policy(d))
        )
    )
    assert all(entry.startswith("img-src ") for entry in blocked_by_the_page_policy(driver))
