"""The README's "A paid message, with curl" runs as written against `eventline run`: its write
calls carry no consistency token, and the message ends delivered and paid for."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import uuid
from functools import partial
from pathlib import Path

import httpx

from app.api_keys import hash_key
from app.config import Settings
from tests.conftest import ROOT
from tests.support import Process, free_port, fresh_namespace
from tests.waiting import eventually

FIRST_LINE = "KEY=$(cat .local/dev-api-key); API=http://127.0.0.1:8000"


async def ready(http: httpx.AsyncClient) -> int:
    try:
        return (await http.get("/health/ready")).status_code
    except httpx.TransportError:
        return 0


def walkthrough() -> str:
    """The README's block, with the key and address of this test's server, and without the
    endless SSE stream at its end; the ids it made are printed for the checks."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## A paid message, with curl\n\n```sh\n(.*?)```", readme, re.S)
    assert block is not None, "the README lost its walkthrough"
    script = block[1]
    assert script.startswith(FIRST_LINE + "\n"), script[:80]
    lines = [line for line in script.splitlines()[1:] if "/notifications/stream" not in line]
    return "\n".join(["set -euo pipefail", *lines, 'echo "ids $ada $bob $msg"'])


async def test_the_readme_walkthrough_needs_no_token_between_commands(settings: Settings) -> None:
    key = secrets.token_urlsafe(24)
    port = free_port()
    ns = await fresh_namespace(settings, own_database=True, api_port=port, api_keys=f"readme:admin:{hash_key(key)}")
    api = f"http://127.0.0.1:{port}"
    server = Process(ns, "run").start()
    try:
        async with httpx.AsyncClient(base_url=api, timeout=10, headers={"Authorization": f"Bearer {key}"}) as http:
            await eventually(partial(ready, http), 200, timeout=60, interval=0.3)
            ran = await asyncio.create_subprocess_exec(
                "bash", "-c", f"KEY={key}; API={api}\n{walkthrough()}",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(ran.communicate(), timeout=120)
            assert ran.returncode == 0, err.decode()[-2000:]
            ids = out.decode().rsplit("ids ", 1)[-1].split()
            ada, bob, msg = (str(uuid.UUID(value)) for value in ids)  # each a real id, none "null"

            async def status() -> object:
                return (await http.get(f"/messages/{msg}")).json().get("status")

            await eventually(status, "delivered", timeout=60)

            async def balance() -> object:
                return (await http.get(f"/accounts/{ada}")).json().get("balance")

            await eventually(balance, 993, timeout=30)
            inbox = (await http.get(f"/accounts/{bob}/inbox")).json()["items"]
            assert [item["message_id"] for item in inbox] == [msg]

            # The forget walkthrough, continuing the same session.
            forgot = await asyncio.create_subprocess_exec(
                "bash", "-c", f"KEY={key}; API={api}; ada={ada}; msg={msg}\n{forget_walkthrough()}",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(forgot.communicate(), timeout=120)
            assert forgot.returncode == 0, err.decode()[-2000:]
            account = (await http.get(f"/accounts/{ada}")).json()
            assert (account["owner"], account["balance"]) == ("[erased]", 993)
            assert (await http.get(f"/messages/{msg}")).json()["body"] == "[erased]"
            shown = out.decode()
            assert '["SubjectForgotten",{"requested_by":"operator"},"readme"]' in shown, shown
            assert "/subject-forgotten" in shown and '"status":410' in shown, shown
            kept = (await http.get(f"/accounts/{bob}/inbox")).json()["items"]
            assert [item["message_id"] for item in kept] == [msg]  # Bob's inbox keeps the message
    finally:
        server.stop()


def forget_walkthrough() -> str:
    """The README's forget block, run after the paid-message block in the same session."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Forgetting someone, with curl\n\n.*?```sh\n(.*?)```", readme, re.S)
    assert block is not None, "the README lost its forget walkthrough"
    auth = 'auth=(-H "Authorization: Bearer $KEY" -H "Content-Type: application/json")'
    return "\n".join(["set -euo pipefail", auth, block[1]])


END_USER_FIRST_LINE = "ALICE=$(.venv/bin/python scripts/dev_tokens.py token alice); API=http://127.0.0.1:8000"


def end_user_walkthrough() -> str:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## As an end user, with curl\n\n.*?```sh\n(.*?)```", readme, re.S)
    assert block is not None, "the README lost its end-user walkthrough"
    assert block[1].startswith(END_USER_FIRST_LINE + "\n"), block[1][:100]
    return "set -euo pipefail\n" + block[1].replace("http://127.0.0.1:8000", "$API_UNDER_TEST")


async def test_the_readme_end_user_walkthrough_runs_with_the_development_identity_provider(
    settings: Settings, tmp_path: Path
) -> None:
    """`make run`'s end-user setup, as the README shows it: scripts/dev_tokens.py makes the key pair
    and the JWKS the server reads, and the tokens it prints are accepted; Alice holds her account,
    Bob gets 404 reading it and 403 moving money out of it."""
    env = {**os.environ, "EVENTLINE_LOCAL_DIR": str(tmp_path)}
    made = await asyncio.to_thread(
        subprocess.run,
        [str(ROOT / ".venv/bin/python"), "scripts/dev_tokens.py", "jwks"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    port = free_port()
    ns = await fresh_namespace(
        settings,
        own_database=True,
        api_port=port,
        token_issuer="eventline-dev",
        token_jwks_file=made.stdout.strip(),
        allow_anonymous=False,
    )
    server = Process(ns, "run").start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            await eventually(partial(ready, http), 200, timeout=60, interval=0.3)
        ran = await asyncio.create_subprocess_exec(
            "bash", "-c", end_user_walkthrough(), cwd=ROOT,
            env=env | {"API_UNDER_TEST": f"http://127.0.0.1:{port}"},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(ran.communicate(), timeout=120)
        assert ran.returncode == 0, err.decode()[-2000:]
        lines = out.decode().strip().splitlines()
        assert lines[-2:] == ["404", "403"], out.decode()
        assert '"balance":50' in out.decode().replace(" ", ""), out.decode()
    finally:
        server.stop()
