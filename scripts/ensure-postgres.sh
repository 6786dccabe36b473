#!/usr/bin/env bash
# The integration tests need PostgreSQL on 127.0.0.1:5432 (trust auth, database `test`).
# Starts the machine's cluster if it is down; fails loudly if there is none.
set -euo pipefail
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then exit 0; fi
if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
fi
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && exit 0
  sleep 1
done
echo "PostgreSQL is not reachable on 127.0.0.1:5432; the PostgreSQL half of the suite cannot run" >&2
exit 1
