#!/usr/bin/env bash
# Starts (or installs and starts) what the test suites talk to, idempotently:
# - Redis on 127.0.0.1:6379 (the Redis connector's integration tests);
# - bubblewrap (the plugin sandbox; tests run plugins with and without it);
# - openssh-server (the SSH tests start their own sshd -D on a free loopback port, with
#   host keys made per test in a temp dir: nothing system-wide is started or changed);
# - openssl (throwaway certificates for the Redis TLS test), npm (plugin install tests).
# SQLCipher needs nothing: it is compiled into the @journeyapps/sqlcipher addon.
set -euo pipefail

need_apt=()
command -v bwrap >/dev/null 2>&1 || need_apt+=(bubblewrap)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
[ -x /usr/sbin/sshd ] || command -v sshd >/dev/null 2>&1 || need_apt+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || need_apt+=(openssh-client)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
    echo "services: missing ${need_apt[*]} and no root to install them; install them and re-run" >&2
    exit 1
  fi
  SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo "sudo")
  echo "services: installing ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "services: starting Redis on 127.0.0.1:6379"
  mkdir -p /tmp/aip-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no --dir /tmp/aip-redis --logfile /tmp/aip-redis/redis.log
  for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null
# sshd refuses to start without its privilege-separation directory; Debian's package makes it
# only when its own service starts, which a container never runs.
mkdir -p /run/sshd 2>/dev/null || true
echo "services: redis $(redis-server --version | awk '{print $3}'), $(bwrap --version), $(openssl version | awk '{print $1, $2}'), $(/usr/sbin/sshd -V 2>&1 | head -1 || true)"
