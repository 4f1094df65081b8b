#!/usr/bin/env bash
# `npm test`: install everything the tests need, then lint, type-check,
# build and run the whole test suite. Safe to run on a fresh machine with only
# Node.js and npm, and again on a warm one.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/pnpm.sh
bash .ci/services.sh
bash .ci/browser.sh
pnpm_ install --frozen-lockfile
pnpm_ run lint
pnpm_ run build
pnpm_ run test:only
