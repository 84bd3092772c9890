#!/usr/bin/env bash
# The system packages the test suite needs beyond Python, installed from Debian's packages where
# they are missing (the README's test command runs this first; so does CI, through that command):
#   postgresql      - the database tests start their own PostgreSQL server (initdb, pg_ctl) and psql
#   sqlite3         - the README's SQL runs through the sqlite3 shell as written
#   chromium        - the MLflow UI test browses the UI headless
#   fonts-liberation- fonts for that browser
#   docker-compose  - the Docker test validates docker/docker-compose.yml offline (no engine needed)
# Nothing is installed when everything is there. Needs root, or sudo without a password.
set -euo pipefail

missing=()
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1 \
   || ! command -v psql >/dev/null 2>&1; then
  missing+=(postgresql)
fi
command -v sqlite3 >/dev/null 2>&1 || missing+=(sqlite3)
[ -x /usr/bin/chromium ] || missing+=(chromium fonts-liberation)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "tests/install_system_packages.sh: the tests need ${missing[*]}, and this machine has no" \
       "apt-get: install them with its package manager, then run the test command again" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "tests/install_system_packages.sh: the tests need Debian's ${missing[*]}; run" \
       "'sudo apt-get install ${missing[*]}' (or this script as root), then the test command again" >&2
  exit 1
fi
echo "+ apt-get install ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
