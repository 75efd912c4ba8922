#!/bin/sh
# The compose CLI that validates docker-compose.yml in the tests: Debian's `docker-compose`.
#
#     scripts/ensure_compose.sh
#
# Idempotent: when `docker compose` (the v2 plugin) or `docker-compose` works it
# exits 0 without a word. Otherwise it installs the Debian package
# `docker-compose` with apt-get (through sudo when not root). `config` needs no
# Docker engine, so this works on machines without one.
set -eu

if docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; then
    exit 0
fi

fail() {
    echo "ensure_compose: $1" >&2
    echo "ensure_compose: install Debian's 'docker-compose' package by hand" >&2
    exit 1
}

command -v apt-get >/dev/null 2>&1 || fail "apt-get not found (this script expects Debian or a derivative)"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || fail "not root and sudo is not available"
    SUDO="sudo"
fi

echo "==> ensure_compose: no compose CLI; installing Debian's docker-compose"
if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker-compose; then
    $SUDO apt-get update || fail "'apt-get update' failed"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker-compose \
        || fail "'apt-get install docker-compose' failed"
fi
command -v docker-compose >/dev/null 2>&1 || fail "docker-compose is still missing after the install"
echo "==> ensure_compose: $(docker-compose version --short 2>/dev/null || echo docker-compose) installed"
