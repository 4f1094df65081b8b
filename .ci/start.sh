#!/usr/bin/env bash
# `npm start`: install, build, and run the gateway on its default data
# directory (~/.aipermission, or AIP_DATA_DIR / --data-dir) on 127.0.0.1:3210.
# Extra arguments go to `aip start`, e.g. `npm start -- --port 4000`.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/pnpm.sh
pnpm_ install --frozen-lockfile
pnpm_ run build
exec node kernel/bin/aip.js start "$@"
