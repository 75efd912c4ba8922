"""Drives Eventline through a client that openapi-python-client generated from /openapi.json.

Run by tests/integration/test_generated_client.py in the generator's venv, as a user
would run their generated client: `python drive_generated_client.py <package> <base url>`.
Prints what it saw as JSON.
"""

import importlib
import json
import sys
from typing import Any


def main() -> None:
    package, base_url = sys.argv[1], sys.argv[2]

    def load(name: str) -> Any:  # the generated modules are not on the project's path
        return importlib.import_module(f"{package}.{name}")

    client = load("client").Client(base_url=base_url, raise_on_unexpected_status=True)
    models = load("models")
    opened = load("api.accounts.open_account").sync(
        client=client, body=models.OpenAccountRequest(owner="Generated", currency="EUR")
    )
    deposited = load("api.accounts.deposit").sync(
        opened.aggregate_id, client=client, body=models.AmountRequest(amount=10), idempotency_key="gen-1"
    )
    refused = load("api.accounts.withdraw").sync(
        opened.aggregate_id, client=client, body=models.AmountRequest(amount=11)
    )
    print(
        json.dumps(
            {
                "opened": type(opened).__name__,
                "deposited": [type(deposited).__name__, deposited.version],
                "refused": [type(refused).__name__, refused.status, refused.type_, refused.additional_properties],
            }
        )
    )


if __name__ == "__main__":
    main()
