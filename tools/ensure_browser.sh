#!/usr/bin/env bash
# Make sure headless Chromium is there for the HTML report test (tests/test_report.py):
# installs Debian's chromium package when missing and we are root, else prints a one-line hint.
set -euo pipefail

if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium from Debian packages..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "hint: chromium missing; run as root: apt-get update && apt-get install -y chromium (the report test is skipped without it)"
    exit 0
  fi
fi
bin=$(command -v chromium || echo /usr/bin/chromium)
echo "browser: $("$bin" --version 2>/dev/null || echo "$bin (version unknown)")"
