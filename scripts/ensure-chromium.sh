#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the browser tests (tests/test_ui.py).
# Idempotent and quiet when it is already there; installs the `chromium` package otherwise
# (needs root or sudo and Debian's package archive); fails loudly when it cannot.
set -euo pipefail

CHROMIUM="${RETAIL_CHROMIUM:-/usr/bin/chromium}"

works() { "$CHROMIUM" --version >/dev/null 2>&1; }

if works; then
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo -n)
else
  echo "ensure-chromium: $CHROMIUM is missing and installing it needs root: apt-get install chromium" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: $CHROMIUM is missing and there is no apt-get: install Chromium, or set RETAIL_CHROMIUM" >&2
  exit 1
fi

echo "ensure-chromium: installing Debian's chromium package" >&2
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
# The package lists may be missing or stale on a fresh machine: try as they are, then refresh.
if ! "${SUDO[@]}" apt-get install -y -q chromium >"$log" 2>&1; then
  if ! { "${SUDO[@]}" apt-get update -q && "${SUDO[@]}" apt-get install -y -q chromium; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "ensure-chromium: could not install the chromium package (see above)" >&2
    exit 1
  fi
fi

if ! works; then
  echo "ensure-chromium: chromium was installed but '$CHROMIUM --version' fails" >&2
  "$CHROMIUM" --version >&2 || true
  exit 1
fi
echo "ensure-chromium: $("$CHROMIUM" --version 2>/dev/null)" >&2
