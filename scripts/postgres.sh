#!/usr/bin/env bash
# The PostgreSQL the tests use: install Debian's server if missing, start its cluster if it
# is down, and create the role and database `taskstream` (password `taskstream`, CREATEDB,
# so the tests can create a database per test). Idempotent, needs no stdin, fast when the
# server is already up. Progress goes to stderr; the last line of stdout is the URL:
#   postgresql+psycopg://taskstream:taskstream@127.0.0.1:5432/taskstream
set -euo pipefail
exec </dev/null

ROLE=taskstream
PASSWORD=taskstream
DATABASE=taskstream
CLUSTER=main

say() { echo "postgres.sh: $*" >&2; }
die() {
  say "error: $*"
  exit 1
}

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || die "not root and sudo is missing: cannot install or start PostgreSQL"
  sudo="sudo -n"
fi

# One run at a time (pytest workers and `make test` may start it together).
lock="${TMPDIR:-/tmp}/taskstream-postgres.$(id -u).lock"
if command -v flock >/dev/null 2>&1 && : 2>/dev/null >>"$lock"; then
  exec 9>>"$lock"
  flock -w 120 9 || say "could not lock $lock in 120 s; going on without it"
fi

server_versions() {
  # Installed server versions, newest first (Debian: /usr/lib/postgresql/<ver>/bin/postgres).
  local bin
  for bin in /usr/lib/postgresql/*/bin/postgres; do
    if [ -x "$bin" ]; then basename "$(dirname "$(dirname "$bin")")"; fi
  done | sort -rn
}

if [ -z "$(server_versions)" ] || ! command -v pg_lsclusters >/dev/null 2>&1; then
  say "installing Debian's PostgreSQL server (apt-get install postgresql)"
  export DEBIAN_FRONTEND=noninteractive
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 9>&-
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2 9>&-
fi
version=$(server_versions | head -n 1)
[ -n "$version" ] || die "no PostgreSQL server under /usr/lib/postgresql after installing it"

# The cluster: Debian creates <ver>/main when it installs the server, unless configured not to.
if ! pg_lsclusters -h "$version" "$CLUSTER" >/dev/null 2>&1; then
  say "creating cluster $version/$CLUSTER"
  $sudo pg_createcluster "$version" "$CLUSTER" >&2 9>&-
fi
read -r _ _ port status _ < <(pg_lsclusters -h "$version" "$CLUSTER")
if [[ "$status" != online* ]]; then
  say "starting cluster $version/$CLUSTER on port $port"
  $sudo pg_ctlcluster "$version" "$CLUSTER" start >&2 9>&- ||
    die "pg_ctlcluster $version $CLUSTER start failed; see /var/log/postgresql/postgresql-$version-$CLUSTER.log"
fi

as_postgres() {
  # Run a client as the `postgres` superuser over the local socket (peer authentication).
  if [ "$(id -u)" -eq 0 ]; then
    (cd / && runuser -u postgres -- "$@")
  else
    (cd / && sudo -n -u postgres -- "$@")
  fi
}

deadline=$((SECONDS + 60))
until as_postgres pg_isready -q -p "$port"; do
  [ "$SECONDS" -lt "$deadline" ] ||
    die "cluster $version/$CLUSTER does not accept connections on port $port after 60 s; see /var/log/postgresql/postgresql-$version-$CLUSTER.log"
  sleep 0.2 # poll interval of a deadline-bounded wait
done

psql_admin() { as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$port" -d postgres "$@"; }

if [ "$(psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != 1 ]; then
  say "creating role $ROLE"
  psql_admin -c "CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD'" >&2
else
  psql_admin -c "ALTER ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD'" >&2
fi
if [ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")" != 1 ]; then
  say "creating database $DATABASE"
  psql_admin -c "CREATE DATABASE $DATABASE OWNER $ROLE" >&2
fi

url="postgresql+psycopg://$ROLE:$PASSWORD@127.0.0.1:$port/$DATABASE"
# Check what the tests will do: a password login over TCP on 127.0.0.1.
PGPASSWORD=$PASSWORD psql -X -q -w -h 127.0.0.1 -p "$port" -U "$ROLE" -d "$DATABASE" \
  -tAc "SELECT 1" >/dev/null ||
  die "cannot log in as $ROLE on 127.0.0.1:$port with a password (check pg_hba.conf and listen_addresses)"
echo "$url"
