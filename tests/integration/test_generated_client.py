"""The OpenAPI document serves client generators as users will use them.

openapi-python-client (PyPI, installed into a venv of its own by
`scripts/ensure_client_generator.sh`) generates a client from the running API's
/openapi.json without a single warning, and that client, run in the generator's
venv, opens an account, deposits and is refused a withdrawal as a typed problem,
against a real `eventline api` and processor.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from tests.conftest import ROOT
from tests.support import ApiProcess, Process, free_port, fresh_namespace

DRIVER = Path(__file__).parent / "clients" / "drive_generated_client.py"


@pytest.fixture(scope="module")
def generator_bin() -> Path:
    found = subprocess.run(
        [str(ROOT / "scripts" / "ensure_client_generator.sh")], check=True, capture_output=True, text=True, timeout=600
    )
    return Path(found.stdout.strip())


@pytest.fixture(scope="module")
async def api(settings: Settings) -> AsyncIterator[ApiProcess]:
    ns = await fresh_namespace(settings)
    served = ApiProcess(ns.model_copy(update={"api_port": free_port()}))
    processor = Process(ns, "processor").start()
    try:
        await served.start()
        yield served
    finally:
        if served.process is not None:
            served.process.stop()
        processor.stop()


async def test_a_generated_client_has_no_warnings_and_gets_typed_answers_and_problems(
    generator_bin: Path, api: ApiProcess, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
        (tmp_path / "openapi.json").write_bytes((await http.get("/openapi.json")).content)
    generated = await asyncio.to_thread(
        subprocess.run,
        [
            str(generator_bin / "openapi-python-client"),
            "generate",
            "--path",
            str(tmp_path / "openapi.json"),
            "--meta",
            "none",
            "--output-path",
            str(tmp_path / "eventline_client"),
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": f"{generator_bin}:/usr/bin:/bin"},  # its ruff formats the output
    )
    assert generated.returncode == 0 and "Warning" not in generated.stdout + generated.stderr, generated.stdout
    operations = {path.stem for path in (tmp_path / "eventline_client" / "api").rglob("*.py")}
    assert {"open_account", "deposit", "withdraw", "get_account"} <= operations  # short operation ids

    driven = await asyncio.to_thread(
        subprocess.run,
        [str(generator_bin / "python"), str(DRIVER), "eventline_client", api.url],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": f"{generator_bin}:/usr/bin:/bin", "PYTHONPATH": str(tmp_path)},
    )
    assert driven.returncode == 0, driven.stderr
    seen = json.loads(driven.stdout)
    assert seen["opened"] == "CommandAccepted"
    assert seen["deposited"] == ["CommandAccepted", 2]
    kind, status, problem_type, facts = seen["refused"]
    assert (kind, status) == ("ProblemDetails", 422)
    assert problem_type.endswith("insufficient-funds") and facts["balance"] == 10 and facts["requested"] == 11
