#!/bin/bash
# lab/lib/host-init.sh H HOST NSDIR: PID 1 of a lab host (started by lab/lab up inside the host's new
# mount/UTS/IPC/PID namespaces). Sets the hostname, bind-mounts the host's own folders from H
# (= $LAB/hosts/HOST), then waits forever, reaping orphans. `lab/lab down` kills it, which ends
# every process of the host.
set -e
H=$1; h=$2; NS=$3
hostname "$h"
umount -l "$NS"      # the host does not see the lab's namespace files
mount --bind "$H/www"          /var/www/owncloud
mount --bind "$H/mysql"        /var/lib/mysql
mount --bind "$H/pg"           /var/lib/postgresql
mount --bind "$H/root"         /root
mount --bind "$H/run"          /run
mount --bind "$H/etc-ssh"      /etc/ssh
mount --bind "$H/apache2"      /etc/apache2
mount --bind "$H/log/apache2"  /var/log/apache2
mount --bind "$H/hosts"        /etc/hosts
mount --bind "$H/hostname"     /etc/hostname
: >/run/.lab-host-ready
set +e
trap 'exit 0' TERM INT
while :; do sleep 3600 & wait; done
