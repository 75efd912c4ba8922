"""docs/adding-an-aggregate.md, followed to the letter: its patch, applied to a copy of this
repository, builds a working aggregate (HTTP → processor → event → read model → query), served by
a process started in the copy. Its stated size is checked by tests/unit/test_adding_an_aggregate_guide.py.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from tests.conftest import ROOT, create_database
from tests.guide import guide_patch
from tests.support import environment, free_port, fresh_namespace
from tests.waiting import eventually


@pytest.fixture
def example(tmp_path: Path) -> Iterator[Path]:
    """A copy of the repository's tracked files with the guide's patch applied."""
    copy = tmp_path / "repo"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in tracked.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    applied = subprocess.run(["git", "apply", "-"], cwd=copy, input=guide_patch().encode(), capture_output=True)
    assert applied.returncode == 0, f"the guide's patch no longer applies:\n{applied.stderr.decode()}"
    yield copy


async def test_the_guides_aggregate_works_end_to_end(settings: Settings, example: Path) -> None:
    ns = await fresh_namespace(settings, api_port=free_port())
    ns = ns.model_copy(
        update={"database_url": await create_database(ns.database_url, f"eventline_test_{uuid.uuid4().hex[:10]}")}
    )
    # The copy's code, not this checkout's: PYTHONPATH comes before the editable install.
    env = environment(ns) | {"PYTHONPATH": str(example)}
    migrate(example, env)
    log = example / "eventline.log"
    process = start(example, env, log)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ns.api_port}", timeout=30) as http:
            await eventually(lambda: ready(http), 200, timeout=90, interval=0.2)
            await drive(http)
    except BaseException:
        print(log.read_text(errors="replace")[-5000:])
        raise
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


EVENTLINE = str(ROOT / ".venv/bin/eventline")


def migrate(example: Path, env: dict[str, str]) -> None:
    migrated = subprocess.run([EVENTLINE, "migrate"], cwd=example, env=env, capture_output=True, text=True)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr


def start(example: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`eventline run` (API, processor, projector, saga) from the copy."""
    with log.open("wb") as sink:
        return subprocess.Popen(
            [EVENTLINE, "run"], cwd=example, env=env, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


async def ready(http: httpx.AsyncClient) -> int:
    return (await http.get("/health/ready")).status_code


async def drive(http: httpx.AsyncClient) -> None:
    created = await http.post("/subscriptions", json={"plan": "monthly"})
    assert created.status_code == 201, created.text
    subscription_id, token = created.json()["aggregate_id"], created.json()["position"]
    view = await http.get(f"/subscriptions/{subscription_id}", headers={"X-Consistent-With": token})
    assert view.json() == {"subscription_id": subscription_id, "plan": "monthly", "active": True, "version": 1}

    cancelled = await http.post(f"/subscriptions/{subscription_id}/cancellation")
    assert cancelled.status_code == 200, cancelled.text
    view = await http.get(
        f"/subscriptions/{subscription_id}", headers={"X-Consistent-With": cancelled.json()["position"]}
    )
    assert view.json()["active"] is False and view.json()["version"] == 2

    again = await http.post(f"/subscriptions/{subscription_id}/cancellation")
    assert again.status_code == 422 and again.json()["type"].endswith("/already-cancelled"), again.text
    unknown = await http.post(f"/subscriptions/{uuid.uuid4()}/cancellation")
    assert unknown.status_code == 404, unknown.text
