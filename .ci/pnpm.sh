# Sourced by the other scripts: runs the pinned pnpm through npx, so a machine
# with only Node.js and npm needs nothing else installed.
PNPM_VERSION=10.34.9
export TURBO_TELEMETRY_DISABLED=1
export DO_NOT_TRACK=1
pnpm_() { npx -y "pnpm@${PNPM_VERSION}" "$@"; }
