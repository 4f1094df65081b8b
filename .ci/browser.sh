#!/usr/bin/env bash
# Installs what the web UI's browser tests drive, idempotently: Debian's
# Chromium at /usr/bin/chromium (playwright-core downloads no browser of its
# own; ui/test/helpers/browser.ts launches this one).
set -euo pipefail

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
    echo "browser: /usr/bin/chromium is missing and there is no root to install it; run apt-get install chromium and re-run" >&2
    exit 1
  fi
  SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo "sudo")
  echo "browser: installing chromium"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
echo "browser: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
