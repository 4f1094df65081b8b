#!/usr/bin/env bash
# Starts (or installs and starts) what the test suite talks to. The kernel
# tests need nothing beyond Node.js: SQLCipher is compiled into the
# @journeyapps/sqlcipher addon. Connector suites add their services here.
set -euo pipefail
echo "services: none needed by the current suites"
