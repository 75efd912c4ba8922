"""A real headless Chromium watches `/console` of real Eventline processes, on a closed network.

The projector is SIGSTOPped while deposits flow and the page must show it stalled, then caught up
again; a poison event's failure is retried with the page's button; a message waiting for its payment
is highlighted until a saga process delivers it. Screenshots of each state go to `artifacts/`.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec

from app.config import Settings
from app.db import create_engine
from projections import failures
from projections.base import Message
from tests.conftest import ROOT
from tests.e2e.browser import blocked_by_the_page_policy, click, loaded_from_elsewhere, read, text_of, wait
from tests.support import Process, free_port, fresh_namespace, paused, read_opened_events
from tests.waiting import eventually

ARTIFACTS = ROOT / "artifacts"
STALL_AFTER_S = 2.0


@dataclass
class Deployment:
    ns: Settings
    url: str
    key: str
    projector: Process


@pytest.fixture(scope="module")
async def deployment(settings: Settings) -> AsyncIterator[Deployment]:
    """API, processor and projector as processes of their own (the projector can be paused alone)."""
    key = "el_console_" + secrets.token_urlsafe(24)
    port = free_port()
    ns = await fresh_namespace(
        settings,
        own_database=True,
        api_port=port,
        api_keys=f"operator:admin:{hashlib.sha256(key.encode()).hexdigest()}",
        projection_stall_after_s=STALL_AFTER_S,
        saga_pending_alert_s=STALL_AFTER_S,
        command_timeout_s=30,
    )
    processes = {name: Process(ns, name).start() for name in ("processor", "projector", "api")}
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=5) as http:

            async def ready() -> int:
                return (await http.get("/health/ready")).status_code

            await eventually(ready, 200, timeout=90, interval=0.25)
        yield Deployment(ns, url, key, processes["projector"])
    finally:
        for process in processes.values():
            process.stop()


@pytest.fixture(scope="module")
async def http(deployment: Deployment) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {deployment.key}"}
    async with httpx.AsyncClient(base_url=deployment.url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def console(driver: WebDriver, deployment: Deployment) -> Iterator[WebDriver]:
    """The console, opened and given the admin key."""
    driver.get(f"{deployment.url}/console")
    wait(driver).until(ec.element_to_be_clickable((By.ID, "key"))).send_keys(deployment.key)
    driver.find_element(By.CSS_SELECTOR, "#key-form button").click()
    wait(driver).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#projections tr[data-projection]")))
    yield driver


def health_of(browser: WebDriver, projection: str) -> str:
    return str(
        read(
            browser,
            "const row = document.querySelector(`#projections tr[data-projection='${arguments[0]}']`);"
            "return row ? row.getAttribute('data-health') || '' : '';",
            projection,
        )
    )


def until_health(browser: WebDriver, projection: str, wanted: str) -> None:
    wait(browser).until(lambda b: health_of(b, projection) == wanted, f"{projection} never showed {wanted}")


def screenshot(browser: WebDriver, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"console-{name}.png"))


async def test_the_console_loads_offline_and_shows_a_stalled_projector_and_its_recovery(
    console: WebDriver, deployment: Deployment, http: httpx.AsyncClient
) -> None:
    opened = await http.post("/accounts", json={"owner": "Ada", "currency": "EUR"})
    account = opened.json()["aggregate_id"]
    until_health(console, "accounts", "caught-up")
    assert loaded_from_elsewhere(console, deployment.url) == []
    assert blocked_by_the_page_policy(console) == []
    screenshot(console, "caught-up")

    with paused(deployment.projector.pid):
        for _ in range(5):
            assert (await http.post(f"/accounts/{account}/deposits", json={"amount": 1})).status_code == 200
        until_health(console, "accounts", "stalled")
        screenshot(console, "stalled")
    until_health(console, "accounts", "caught-up")
    members = console.find_element(By.ID, "group").text  # one element whose text the page updates
    assert "members: none" not in members, members  # the processor owns the partitions
    owners = read(
        console,
        "return [...document.querySelectorAll('#processors tr[data-partition] td:nth-child(2)')]"
        ".map(cell => cell.textContent)",
    )
    assert owners and all(owner != "unowned" for owner in owners), owners


async def test_a_failure_is_retried_with_the_button(
    console: WebDriver, deployment: Deployment, http: httpx.AsyncClient
) -> None:
    """A failure recorded as the runner records one (after its retries), then retried once fixed."""
    opened = await http.post("/accounts", json={"owner": "Poisoned", "currency": "EUR"})
    account = opened.json()["aggregate_id"]
    [event] = [e for e in await read_opened_events(deployment.ns) if e.aggregate_id == account]
    engine = create_engine(deployment.ns)
    try:
        async with engine.begin() as db:
            failure_id = await failures.record(
                db, "accounts", Message("events", 0, 0, event), RuntimeError("the handler broke"), attempts=3
            )
    finally:
        await engine.dispose()
    row = f"#failures tr[data-failure='{failure_id}']"
    wait(console).until(lambda browser: "AccountOpened" in text_of(browser, row))
    screenshot(console, "failure")

    click(console, f"{row} button")
    wait(console).until(ec.text_to_be_present_in_element((By.ID, "retry-outcome"), f"failure {failure_id}: applied"))
    wait(console).until(ec.invisibility_of_element_located((By.CSS_SELECTOR, row)))
    assert (await http.get("/projections/failures")).json() == []


async def test_a_pending_message_is_highlighted_until_the_saga_delivers_it(
    console: WebDriver, deployment: Deployment, http: httpx.AsyncClient
) -> None:
    ids = []
    for owner in ("Sender", "Recipient"):
        ids.append((await http.post("/accounts", json={"owner": owner, "currency": "EUR"})).json()["aggregate_id"])
    funded = await http.post(f"/accounts/{ids[0]}/deposits", json={"amount": 100})
    started = await http.post(
        "/conversations", json={"participants": ids}, headers={"X-Consistent-With": funded.json()["position"]}
    )
    conversation = started.json()["conversation_id"]
    await http.get(f"/conversations/{conversation}/messages", headers={"X-Consistent-With": started.json()["position"]})
    sent = await http.post(f"/conversations/{conversation}/messages", json={"sender": ids[0], "body": "hi"})
    message = sent.json()["message_id"]

    row = f"#pending tr[data-message='{message}']"
    wait(console).until(ec.presence_of_element_located((By.CSS_SELECTOR, f"{row}.alert")))  # past the alert
    screenshot(console, "pending")
    saga = Process(deployment.ns, "saga").start()
    try:
        wait(console).until(ec.invisibility_of_element_located((By.CSS_SELECTOR, row)))

        async def status() -> str:
            return str((await http.get(f"/messages/{message}")).json()["status"])

        await eventually(status, "delivered", timeout=30)
        screenshot(console, "delivered")
    finally:
        saga.stop()

    # The message's way through both services, on the page (asked again until the event log has it all).
    console.find_element(By.ID, "timeline-id").send_keys(message)
    steps = "#timeline tr[data-step]"

    def every_step_shown(browser: WebDriver) -> bool:
        browser.find_element(By.CSS_SELECTOR, "#timeline-form button").click()
        return len(browser.find_elements(By.CSS_SELECTOR, steps)) == 4

    wait(console).until(every_step_shown)
    shown = read(console, "return [...document.querySelectorAll(arguments[0])].map(row => row.dataset.step)", steps)
    assert shown == ["submitted", "charge-asked", "charged", "delivered"]
    screenshot(console, "timeline")
