#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 for the persistence tests.
# Starts an installed-but-stopped cluster; installs one with apt-get when missing and we are root.
# Never fails the caller: without PostgreSQL the PostgreSQL tests are skipped with a reason.
set -u
ready() { command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; }

if ready; then echo "postgres: running"; exit 0; fi

if [ ! -d /etc/postgresql ] || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "postgres: not installed; installing with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq postgresql >/dev/null || {
      echo "postgres: install failed; PostgreSQL tests will be skipped"; exit 0; }
  else
    echo "postgres: not installed and cannot install (needs root and apt-get); PostgreSQL tests will be skipped"
    exit 0
  fi
fi

version=$(ls /etc/postgresql | sort -n | tail -n 1)
echo "postgres: starting cluster $version/main"
if command -v pg_ctlcluster >/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>&1 | tail -n 2
fi
for _ in $(seq 1 30); do ready && break; sleep 1; done
if ! ready; then echo "postgres: did not come up; PostgreSQL tests will be skipped"; exit 0; fi

# A fresh Debian install only trusts local peers: give the postgres role the password the tests use.
if [ "$(id -u)" = 0 ] && command -v su >/dev/null; then
  su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null 2>&1 || true
fi
echo "postgres: running"
