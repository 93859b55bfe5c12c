# shellcheck shell=bash
# lab/lib/common.sh: helpers shared by lab/lab and lab/instance.sh. Source it from bash:
#
#   . "$(dirname "$0")/lib/common.sh"
#
# It sets nothing else in the caller's shell than these names (no `set -e` etc.):
#
#   LAB               the lab's state folder: ${OCM_LAB_DIR:-/var/tmp/ocmigrate-lab} (absolute)
#   LAB_OLD, LAB_NEW  the hosts' addresses: 127.0.0.2 and 127.0.0.3
#   LAB_HOSTS         "old new"
#   LAB_REPO          the repository root (the parent of lab/)
#
#   lab_die MSG...            print "lab: MSG" to stderr and exit 1
#   lab_log MSG...            print "lab: MSG" to stderr
#   lab_addr HOST             print HOST's address (old -> 127.0.0.2, new -> 127.0.0.3); dies on others
#   lab_host_dir HOST         print $LAB/hosts/HOST (the host's files as seen from the operator:
#                             www/ = /var/www/owncloud, mysql/, pg/, root/, run/, etc-ssh/, apache2/, log/)
#   lab_is_up HOST            true when HOST's namespace files are mounted (the host exists)
#   lab_host_alive HOST       true when HOST's PID 1 runs (else nothing can be started on it)
#   lab_exec HOST CMD ARG...  run CMD on HOST as root (nsenter into its mount, UTS, IPC and PID namespaces,
#                             cwd /, HOME=/root); stdin/stdout/stderr and the exit status pass through.
#                             Dies when the host is not up. Does not pass file descriptors >= 3 on.
#   lab_sh HOST 'SHELL CODE'  lab_exec HOST sh -c 'SHELL CODE'
#
# Paths of the ssh client side: $LAB/client/{id_ed25519,known_hosts,ssh_config};
# `ssh -F "$LAB/client/ssh_config" old CMD` runs CMD on old over ssh.

LAB_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LAB=${OCM_LAB_DIR:-/var/tmp/ocmigrate-lab}
LAB_OLD=127.0.0.2
LAB_NEW=127.0.0.3
LAB_HOSTS="old new"

lab_log() { printf 'lab: %s\n' "$*" >&2; }
lab_die() { printf 'lab: %s\n' "$*" >&2; exit 1; }

case "$LAB" in
  /?*/?*) LAB=${LAB%/} ;;
  *) lab_die "OCM_LAB_DIR must be an absolute path at least two levels deep (got '$LAB')" ;;
esac

lab_addr() {
  case "${1:-}" in
    old) echo "$LAB_OLD" ;;
    new) echo "$LAB_NEW" ;;
    *) lab_die "unknown host '${1:-}': the lab's hosts are 'old' and 'new'" ;;
  esac
}

lab_host_dir() { lab_addr "$1" >/dev/null; echo "$LAB/hosts/$1"; }

# Whether the namespace file $1 is a bind mount of a namespace (an nsfs mount).
_lab_is_ns() { [ "$(stat -f -c %T "$1" 2>/dev/null)" = nsfs ]; }

lab_is_up() {
  lab_addr "$1" >/dev/null
  _lab_is_ns "$LAB/ns/$1.mnt" && _lab_is_ns "$LAB/ns/$1.uts" && _lab_is_ns "$LAB/ns/$1.ipc" && _lab_is_ns "$LAB/ns/$1.pid"
}

# Whether HOST's PID 1 (lab/lib/host-init.sh) still runs: without it nothing can start on the host.
lab_host_alive() {
  local init
  init=$(head -n1 "$LAB/pids/$1.init.pid" 2>/dev/null) || return 1
  [ -n "$init" ] && [ "$(stat -L -c %i "/proc/$init/ns/pid" 2>/dev/null)" = "$(stat -L -c %i "$LAB/ns/$1.pid" 2>/dev/null)" ]
}

lab_exec() {
  local h=${1:-}
  shift || true
  lab_addr "$h" >/dev/null
  [ $# -gt 0 ] || lab_die "lab_exec $h: no command given"
  lab_is_up "$h" || lab_die "host '$h' is not up ($LAB/ns/$h.mnt is not a namespace): run lab/lab up"
  lab_host_alive "$h" || lab_die "host '$h' is down (its PID 1, see $LAB/pids/$h.init.pid, is gone): run lab/lab up"
  HOME=/root nsenter --mount="$LAB/ns/$h.mnt" --uts="$LAB/ns/$h.uts" --ipc="$LAB/ns/$h.ipc" --pid="$LAB/ns/$h.pid" \
    --wd=/ -- "$@" 9>&-
}

lab_sh() { lab_exec "$1" sh -c "$2"; }
