#!/usr/bin/env bash
# lab/instance.sh: make a test instance; run as `lab/lab instance ...` (see lab/README.md, "Test
# instances", and lab/labkit/README.md).
#
#   lab/lab instance --flavor owncloud|nextcloud --db sqlite|mysql|pgsql \
#                    [--users N] [--files N] [--bytes SIZE] [--seed S] [--extra-config]
#
# Defaults: owncloud, sqlite, 3 users, 300 files, 20M, seed 1. Re-runnable: the previous instance
# (files on both hosts, the owncloud/nextcloud databases and the oc_admin DB user on both hosts'
# MariaDB and PostgreSQL) is removed first.
#
# Result:
#   old  /var/www/owncloud = the release (tests/double + apps/*/appinfo/info.xml from labkit) plus
#        config/, data/, apps-external/ (ownCloud) from labkit, owned by www-data; the database
#        created and loaded (SQLite: data/owncloud.db); apache running (started when an earlier
#        test, e.g. a migration, left it stopped; reloaded when it runs).
#   new  /var/www/owncloud = the same release only; no instance database; apache stopped.
#   $LAB/instance/  admin-password, users.tsv, dbpassword (0600), instance.env.
#
# labkit is built with cargo (release profile, target dir $LABKIT_TARGET_DIR, default
# <repo>/target-labkit) unless $LABKIT names a prebuilt binary. `instance.sh --print-labkit`
# builds it and prints its path (for tests). No password is ever put on a command line: SQL with
# passwords goes to the clients on stdin.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"

WWW=/var/www/owncloud
MYSQL=(mariadb --no-defaults --default-character-set=utf8mb4 --socket=/run/mysqld/mysqld.sock -u root)
PSQL=(runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1)

usage() {
  cat >&2 <<'EOF'
usage: lab/lab instance --flavor owncloud|nextcloud --db sqlite|mysql|pgsql
                        [--users N] [--files N] [--bytes SIZE] [--seed S] [--extra-config]
EOF
  exit 2
}

build_labkit() {
  if [ -n "${LABKIT:-}" ]; then
    [ -x "$LABKIT" ] || lab_die "LABKIT=$LABKIT is not an executable"
    echo "$LABKIT"
    return
  fi
  local target=${LABKIT_TARGET_DIR:-$LAB_REPO/target-labkit}
  cargo build --release -q -p labkit --manifest-path "$LAB_REPO/Cargo.toml" --target-dir "$target" >&2 ||
    lab_die "could not build labkit (cargo build --release -p labkit)"
  echo "$target/release/labkit"
}

if [ "${1:-}" = --print-labkit ]; then
  build_labkit
  exit 0
fi

flavor=owncloud db=sqlite users=3 files=300 bytes=20M seed=1 extra=()
while [ $# -gt 0 ]; do
  opt=$1
  case "$opt" in
    --extra-config) extra+=(--extra-config); shift; continue ;;
    -h | --help) usage ;;
    --*=*) val=${opt#*=}; opt=${opt%%=*}; shift ;;
    --*) [ $# -ge 2 ] || lab_die "$opt needs a value"; val=$2; shift 2 ;;
    *) lab_log "unexpected argument '$opt'"; usage ;;
  esac
  case "$opt" in
    --flavor) flavor=$val ;;
    --db) db=$val ;;
    --users) users=$val ;;
    --files) files=$val ;;
    --bytes) bytes=$val ;;
    --seed) seed=$val ;;
    *) lab_log "unknown option '$opt'"; usage ;;
  esac
done
case "$flavor" in owncloud | nextcloud) ;; *) lab_die "--flavor must be owncloud or nextcloud (got '$flavor')" ;; esac
case "$db" in sqlite | mysql | pgsql) ;; *) lab_die "--db must be sqlite, mysql or pgsql (got '$db')" ;; esac
for v in users files seed; do
  [[ ${!v} =~ ^[0-9]+$ ]] || lab_die "--$v must be a number (got '${!v}')"
done
[[ $bytes =~ ^[0-9]+[KkMmGg]?$ ]] || lab_die "--bytes must be a number with an optional K, M or G (got '$bytes')"

t0=$(date +%s.%N)
for h in $LAB_HOSTS; do
  lab_is_up "$h" || lab_die "host '$h' is not up: run lab/lab up"
done

labkit=$(build_labkit)

tmp=$(mktemp -d "$LAB/.instance.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

mysql_up() { [ -S "$LAB/hosts/$1/run/mysqld/mysqld.sock" ]; }
pg_up() { [ -S "$LAB/hosts/$1/run/postgresql/.s.PGSQL.5432" ]; }

# --- 1. remove the previous instance from both hosts -------------------------------------------
lab_exec new sh -c 'if [ -f /run/apache2/apache2.pid ]; then service apache2 stop; fi' >/dev/null 2>&1 || true
for h in $LAB_HOSTS; do
  www=$LAB/hosts/$h/www
  [ -d "$www" ] || lab_die "$www is missing: is the lab set up (lab/lab up)?"
  find "$www" -mindepth 1 -delete
  if mysql_up "$h"; then
    lab_exec "$h" "${MYSQL[@]}" <<'EOF' || lab_die "could not drop the previous instance's MariaDB database on $h"
DROP DATABASE IF EXISTS `owncloud`;
DROP DATABASE IF EXISTS `nextcloud`;
DROP USER IF EXISTS 'oc_admin'@'localhost';
DROP USER IF EXISTS 'oc_admin'@'%';
EOF
  fi
  if pg_up "$h"; then
    lab_exec "$h" "${PSQL[@]}" -d postgres <<'EOF' >/dev/null || lab_die "could not drop the previous instance's PostgreSQL database on $h"
SET client_min_messages = warning;
DROP DATABASE IF EXISTS owncloud WITH (FORCE);
DROP DATABASE IF EXISTS nextcloud WITH (FORCE);
DROP ROLE IF EXISTS oc_admin;
EOF
  fi
done
mkdir -p "$LAB/instance"
chmod 700 "$LAB/instance"
rm -f "$LAB/instance/admin-password" "$LAB/instance/users.tsv" "$LAB/instance/dbpassword" "$LAB/instance/instance.env"

# --- 2. the instance's files, straight into old's /var/www/owncloud ------------------------------
summary=$("$labkit" instance --flavor "$flavor" --db "$db" --users "$users" --files "$files" --bytes "$bytes" \
  --seed "$seed" --out "$LAB/hosts/old/www" --sql "$tmp/db.sql" --secrets "$LAB/instance" \
  --release-out "$tmp/release" "${extra[@]}") || lab_die "labkit failed"

# --- 3. the release (code only) on both hosts ---------------------------------------------------
for h in $LAB_HOSTS; do
  www=$LAB/hosts/$h/www
  tar -C "$LAB_REPO/tests/double" --exclude=./dev --exclude='./version-*.php' --exclude=./README.md -cf - . |
    tar -C "$www" -xpf -
  cp -p "$LAB_REPO/tests/double/version-$flavor.php" "$www/version.php"
  cp -a "$tmp/release/." "$www/"
  lab_exec "$h" chown -R www-data:www-data "$WWW"
done

# --- 4. the database on old ---------------------------------------------------------------------
# shellcheck disable=SC1091
dbname=$(. "$LAB/instance/instance.env" && echo "$DBNAME")
case "$db" in
  sqlite)
    # Creating owncloud.db changes data/'s mtime; put it back as labkit made it.
    touch -r "$LAB/hosts/old/www/data" "$tmp/data.mtime"
    lab_exec old runuser -u www-data -- sqlite3 -bail "$WWW/data/owncloud.db" <"$tmp/db.sql" >/dev/null ||
      lab_die "loading the SQLite database failed"
    lab_exec old chmod 0644 "$WWW/data/owncloud.db"
    touch -r "$tmp/data.mtime" "$LAB/hosts/old/www/data"
    ;;
  mysql)
    mysql_up old || lab_die "MariaDB is not running on old"
    pw=$(<"$LAB/instance/dbpassword")
    {
      printf 'CREATE DATABASE `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;\n' "$dbname"
      for host in localhost %; do
        printf "CREATE USER 'oc_admin'@'%s' IDENTIFIED BY '%s';\n" "$host" "$pw"
        printf "GRANT ALL PRIVILEGES ON \`%s\`.* TO 'oc_admin'@'%s';\n" "$dbname" "$host"
      done
      printf 'FLUSH PRIVILEGES;\n'
    } | lab_exec old "${MYSQL[@]}" || lab_die "could not create the MariaDB database and user on old"
    lab_exec old "${MYSQL[@]}" "$dbname" <"$tmp/db.sql" || lab_die "loading the MariaDB database failed"
    ;;
  pgsql)
    pg_up old || lab_die "PostgreSQL is not running on old"
    pw=$(<"$LAB/instance/dbpassword")
    {
      printf "CREATE ROLE oc_admin LOGIN PASSWORD '%s';\n" "$pw"
      printf "CREATE DATABASE %s OWNER oc_admin TEMPLATE template0 ENCODING 'UTF8';\n" "$dbname"
    } | lab_exec old "${PSQL[@]}" -d postgres >/dev/null || lab_die "could not create the PostgreSQL database and role on old"
    { echo 'SET ROLE oc_admin;'; cat "$tmp/db.sql"; } | lab_exec old "${PSQL[@]}" -d "$dbname" >/dev/null ||
      lab_die "loading the PostgreSQL database failed"
    ;;
esac

# A running apache on old may hold the previous instance's config.php in opcache: reload it. One
# that an earlier test stopped (a migration stops the source's web server) is started again.
lab_exec old sh -c 'p=/run/apache2/apache2.pid
  if [ -f "$p" ] && kill -0 "$(cat "$p")" 2>/dev/null; then apache2ctl graceful
  else rm -f "$p"; service apache2 start; fi' >/dev/null 2>&1 || true

t1=$(date +%s.%N)
# summary is "files=… dirs=… bytes=… rows=… seconds=…" from labkit (all trees, versions and trash included)
printf 'instance: %s, %s, %s users, %s files (%s under files/), seed %s; made %s; %.1f s\n' \
  "$flavor" "$db" "$users" "$files" "$bytes" "$seed" "$summary" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')"
