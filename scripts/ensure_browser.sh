#!/bin/sh
# The headless browser of the e2e tests: Debian's Chromium and its matching chromedriver.
#
#     scripts/ensure_browser.sh
#
# Idempotent: when /usr/bin/chromium and /usr/bin/chromedriver exist it exits 0
# without a word. Otherwise it installs the Debian packages `chromium` and
# `chromium-driver` with apt-get (through sudo when not root). It never
# downloads a browser build from anywhere else.
set -eu

CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver

if [ -x "$CHROMIUM" ] && [ -x "$CHROMEDRIVER" ]; then
    exit 0
fi

fail() {
    echo "ensure_browser: $1" >&2
    echo "ensure_browser: install Debian's 'chromium' and 'chromium-driver' packages by hand" >&2
    exit 1
}

if ! command -v apt-get >/dev/null 2>&1; then
    fail "apt-get not found (this script expects Debian or a derivative)"
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || fail "not root and sudo is not available"
    SUDO="sudo"
fi

echo "==> ensure_browser: $CHROMIUM or $CHROMEDRIVER missing; installing Debian's chromium and chromium-driver"
$SUDO apt-get update || fail "'apt-get update' failed"
$SUDO env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends chromium chromium-driver \
    || fail "'apt-get install chromium chromium-driver' failed"

[ -x "$CHROMIUM" ] || fail "$CHROMIUM is still missing after the install"
[ -x "$CHROMEDRIVER" ] || fail "$CHROMEDRIVER is still missing after the install"
echo "==> ensure_browser: $("$CHROMIUM" --version 2>/dev/null || echo chromium) and chromedriver installed"
