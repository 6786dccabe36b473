#!/usr/bin/env bash
# Installs everything meshroute needs on a fresh Debian machine: system packages (only what the
# agent and the tests use, --no-install-recommends; chromium for the dashboard's browser tests) and
# the Python package into ./.venv.
# Usage: scripts/install.sh [--system] [--python]   (no flag: both)
set -euo pipefail
cd "$(dirname "$0")/.."

want_system=1 want_python=1
if [ $# -gt 0 ]; then
  want_system=0 want_python=0
  for a in "$@"; do
    case "$a" in
      --system) want_system=1 ;;
      --python) want_python=1 ;;
      *) echo "unknown option $a" >&2; exit 2 ;;
    esac
  done
fi

# chromium: the dashboard's browser tests (tests/browser, Playwright drives it; no browser download);
# dnsmasq-base: the upstream resolver of the domain-route tests
SYSTEM_PACKAGES=(wireguard-go wireguard-tools nftables iproute2 iputils-ping dnsutils procps curl iperf3 util-linux
  chromium dnsmasq-base)

if [ "$want_system" = 1 ]; then
  missing=()
  for p in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "installing system packages: ${missing[*]}"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
      echo "warning: missing system packages (need root + apt-get): ${missing[*]}" >&2
    fi
  fi
fi

if [ "$want_python" = 1 ]; then
  PY=${PYTHON:-python3}
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  # (this machine's pip configuration names a local mirror that may be absent; its warnings are noise)
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -m pip install -q -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import meshroute, fastapi, sqlalchemy, grpc, psycopg" \
    || { echo "the Python install failed" >&2; exit 1; }
fi
