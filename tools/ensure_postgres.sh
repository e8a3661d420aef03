#!/usr/bin/env bash
# Make sure PostgreSQL's server programs (initdb, postgres) are there for the shared-ledger tests:
# Debian's postgresql package, installed when we are root on Debian (as tools/ensure_runtime.sh does
# for podman). The tests start their own throwaway server; nothing here starts one.
# Last line of stdout: the directory holding initdb and postgres.
set -euo pipefail

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

bin="$(find_bin)"
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing PostgreSQL from Debian packages..." >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bin="$(find_bin)"
  fi
fi
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "error: no PostgreSQL server programs: apt-get install postgresql (as root)" >&2
  exit 1
fi
echo "$bin"
