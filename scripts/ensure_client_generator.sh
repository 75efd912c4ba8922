#!/bin/sh
# The OpenAPI client generator the tests try the API's document with: openapi-python-client from PyPI.
#
#     scripts/ensure_client_generator.sh      # prints the tool venv's bin directory
#
# Idempotent. The generator pins its own httpx, attrs and ruff, which disagree with
# the project's, so it lives in a venv of its own under .local/tools; a generated
# client runs there too, as a user's would.
set -eu

VERSION="0.29.1"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$ROOT/.local/tools/openapi-python-client-$VERSION"

if [ ! -x "$VENV/bin/openapi-python-client" ]; then
    echo "==> ensure_client_generator: installing openapi-python-client $VERSION into $VENV" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "openapi-python-client==$VERSION" >&2
fi
echo "$VENV/bin"
