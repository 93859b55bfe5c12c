#!/usr/bin/env python3
"""bench/lib/measure.py: run one command and measure it on the operator and on each lab host.

    measure.py --out FILE.json [--ns NAME=INODE]... [--ssh-logs DIR] [--lo] -- CMD ARG...

What it records (JSON object in FILE):

* wall_s, rc: wall time of CMD and its exit status.
* operator: CPU (user, sys) and peak RSS of CMD and everything it starts on this machine, from
  getrusage(RUSAGE_CHILDREN). This process is a child subreaper (PR_SET_CHILD_SUBREAPER), so
  processes that detach (the `ssh -f` ControlMaster ocmigrate starts) are re-parented here and
  counted too; after CMD exits it waits up to --linger seconds for them (then kills them).
  rss_peak_kb is the largest single process (as /usr/bin/time's %M); rss_sum_peak_kb the largest
  sum over the processes alive at one sample (every --interval seconds); pss_sum_peak_kb the
  same with each process's Pss (shared pages divided among the processes that share them).
* one entry per --ns NAME=INODE (a lab host's PID namespace, `stat -L -c %i $LAB/ns/HOST.pid`):
  CPU of the host's sshd process trees (listeners plus every session, agent, rsync or tar they
  run), exact: the difference of utime+stime+cutime+cstime summed over those processes before and
  after (finished children are in their parents' cutime/cstime, as every session is reaped by its
  sshd). Peak RSS by sampling the processes of those trees that were not there before CMD
  started (largest VmHWM; largest sum of VmRSS at one sample, and of Pss from smaps_rollup, where
  a page shared by several processes — libraries, a forked rsync's file list — counts once in
  all): the listener and idle sessions
  left by others (ssh masters persist) are not counted. Other daemons of the host (databases,
  apache) are not counted.
* wire (with --ssh-logs DIR): bytes the ssh clients exchanged with each host, from OpenSSH's own
  count ("Transferred: sent N, received M bytes", LogLevel VERBOSE) in the logs that bench/lib/bin/ssh
  writes to DIR; by peer: target (new, new-slow, 127.0.0.3, port 2302), source (old, old-slow,
  127.0.0.2, port 2301). These are the encrypted SSH bytes over TCP, without TCP/IP headers.
* lo_bytes (with --lo): bytes counted on the loopback interface meanwhile (every crossing of
  every relay counts; a cross-check only).
"""
import argparse
import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

TCK = os.sysconf("SC_CLK_TCK")
PR_SET_CHILD_SUBREAPER = 36


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def stat_of(pid):
    """(ppid, utime+stime+cutime+cstime ticks, comm) or None."""
    raw = read(f"/proc/{pid}/stat")
    if raw is None:
        return None
    s = raw.decode("latin-1")
    r = s.rindex(")")
    comm = s[s.index("(") + 1 : r]
    f = s[r + 2 :].split()
    # fields after comm: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    return int(f[1]), int(f[11]) + int(f[12]) + int(f[13]) + int(f[14]), comm


def pss_of(pid):
    """Proportional set size (kB): each shared page divided among the processes that map it."""
    raw = read(f"/proc/{pid}/smaps_rollup")
    if raw is None:
        return 0
    for line in raw.decode("latin-1").splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def mem_of(pid):
    raw = read(f"/proc/{pid}/status")
    if raw is None:
        return 0, 0
    hwm = rss = 0
    for line in raw.decode("latin-1").splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
        elif line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return hwm, rss


def ns_of(pid):
    try:
        link = os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None
    m = re.match(r"pid:\[(\d+)\]", link)
    return int(m.group(1)) if m else None


def exe_of(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


class Host:
    """The sshd process trees of one PID namespace."""

    def __init__(self, name, inode):
        self.name, self.inode = name, inode
        self.hwm = {}
        self.sum_peak = 0
        self.pss_peak = 0
        self.before = set()  # processes of the tree before CMD: not counted in memory

    def tree(self, allp, nsmap):
        """pid -> (ppid, ticks) for sshd listeners of this namespace and all their descendants."""
        members = {p for p in allp if nsmap.get(p) == self.inode}
        info = {}
        for p in members:
            st = stat_of(p)
            if st:
                info[p] = st
        roots = set()
        for p, (pp, _, comm) in info.items():
            if comm == "sshd" and (pp not in info or info[pp][2] != "sshd"):
                if (exe_of(p) or "").endswith("/sshd"):
                    roots.add(p)
        children = {}
        for p, (pp, _, _) in info.items():
            children.setdefault(pp, []).append(p)
        out, todo = {}, list(roots)
        while todo:
            p = todo.pop()
            out[p] = info[p]
            todo.extend(children.get(p, []))
        return out

    def ticks(self, allp, nsmap):
        t = self.tree(allp, nsmap)
        return sum(v[1] for v in t.values()), len(t)

    def sample(self, allp, nsmap):
        total = pss = 0
        for p in self.tree(allp, nsmap):
            if p in self.before:
                continue
            hwm, rss = mem_of(p)
            if hwm > self.hwm.get(p, 0):
                self.hwm[p] = hwm
            total += rss
            pss += pss_of(p)
        self.sum_peak = max(self.sum_peak, total)
        self.pss_peak = max(self.pss_peak, pss)


class NsCache:
    def __init__(self):
        self.map = {}

    def refresh(self):
        allp = pids()
        alive = set(allp)
        for p in list(self.map):
            if p not in alive:
                del self.map[p]
        for p in allp:
            if p not in self.map:
                self.map[p] = ns_of(p)
        return allp


def descendants(root, allp):
    info = {}
    for p in allp:
        st = stat_of(p)
        if st:
            info[p] = st[0]
    children = {}
    for p, pp in info.items():
        children.setdefault(pp, []).append(p)
    out, todo = [], list(children.get(root, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def lo_bytes():
    raw = read("/proc/net/dev") or b""
    for line in raw.decode().splitlines():
        if line.strip().startswith("lo:"):
            return int(line.split(":", 1)[1].split()[0])
    return None


TRANSFERRED = re.compile(r"Transferred: sent (\d+), received (\d+) bytes")
TARGET = re.compile(r"(^|[\s@])(new|new-slow|new\.example\.test|127\.0\.0\.3)(\s|$|:)|-p 2302\b|Port=2302\b")
SOURCE = re.compile(r"(^|[\s@])(old|old-slow|old\.example\.test|127\.0\.0\.2)(\s|$|:)|-p 2301\b|Port=2301\b")


def ssh_wire(logdir):
    out = {"target_bytes": 0, "source_bytes": 0, "other_bytes": 0, "ssh_processes": 0, "ssh_reported": 0}
    if not logdir or not os.path.isdir(logdir):
        return out
    for name in os.listdir(logdir):
        text = (read(os.path.join(logdir, name)) or b"").decode("latin-1")
        lines = text.splitlines()
        if not lines:
            continue
        args = lines[0][2:] if lines[0].startswith("# ") else ""
        out["ssh_processes"] += 1
        n = 0
        for m in TRANSFERRED.finditer(text):
            n += int(m.group(1)) + int(m.group(2))
            out["ssh_reported"] += 1
        if TARGET.search(args):
            out["target_bytes"] += n
        elif SOURCE.search(args):
            out["source_bytes"] += n
        else:
            out["other_bytes"] += n
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--ns", action="append", default=[])
    ap.add_argument("--ssh-logs")
    ap.add_argument("--lo", action="store_true")
    ap.add_argument("--interval", type=float, default=0.2)
    ap.add_argument("--linger", type=float, default=5.0)
    ap.add_argument("--settle", type=float, default=3.0)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    if not cmd:
        sys.exit("measure.py: no command")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit("measure.py: prctl(PR_SET_CHILD_SUBREAPER) failed")
    hosts = []
    for spec in a.ns:
        name, _, ino = spec.partition("=")
        hosts.append(Host(name, int(ino)))
    cache = NsCache()
    allp = cache.refresh()
    before = {h.name: h.ticks(allp, cache.map)[0] for h in hosts}
    baseline_members = {h.name: h.ticks(allp, cache.map)[1] for h in hosts}
    for h in hosts:
        h.before = set(h.tree(allp, cache.map))
    lo0 = lo_bytes() if a.lo else None
    me = os.getpid()
    op_hwm, op_sum_peak, op_pss_peak = {}, 0, 0
    op_comm = {}
    stop = threading.Event()

    def sampler():
        nonlocal op_sum_peak, op_pss_peak
        while not stop.wait(a.interval):
            allp = cache.refresh()
            total = pss = 0
            for p in descendants(me, allp):
                if cache.map.get(p) not in [h.inode for h in hosts]:
                    hwm, rss = mem_of(p)
                    op_hwm[p] = max(op_hwm.get(p, 0), hwm)
                    if p not in op_comm:
                        st = stat_of(p)
                        op_comm[p] = st[2] if st else "?"
                    total += rss
                    pss += pss_of(p)
            op_sum_peak = max(op_sum_peak, total)
            op_pss_peak = max(op_pss_peak, pss)
            for h in hosts:
                h.sample(allp, cache.map)

    th = threading.Thread(target=sampler, daemon=True)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd)
    th.start()
    rc = proc.wait()
    wall = time.monotonic() - t0
    # detached descendants (ssh ControlMaster): wait for them, then end them
    deadline = time.monotonic() + a.linger
    lingered = []
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            if time.monotonic() > deadline:
                for p in descendants(me, pids()):
                    lingered.append(p)
                    try:
                        os.kill(p, signal.SIGTERM)
                    except OSError:
                        pass
                deadline = time.monotonic() + 60
            time.sleep(0.05)
    # the hosts' sessions end a moment after the client: wait until the sshd trees are back to
    # their size before CMD (or --settle seconds)
    settle_end = time.monotonic() + a.settle
    while time.monotonic() < settle_end:
        allp = cache.refresh()
        if all(h.ticks(allp, cache.map)[1] <= baseline_members[h.name] for h in hosts):
            break
        time.sleep(0.05)
    stop.set()
    th.join()
    allp = cache.refresh()
    for h in hosts:
        h.sample(allp, cache.map)
    ru = __import__("resource").getrusage(__import__("resource").RUSAGE_CHILDREN)
    out = {
        "cmd": cmd,
        "rc": rc,
        "wall_s": round(wall, 3),
        "operator": {
            "user_s": round(ru.ru_utime, 3),
            "sys_s": round(ru.ru_stime, 3),
            "cpu_s": round(ru.ru_utime + ru.ru_stime, 3),
            "rss_peak_kb": ru.ru_maxrss,
            "rss_sum_peak_kb": op_sum_peak,
            "pss_sum_peak_kb": op_pss_peak,
            # VmHWM of each process seen by the sampler (ru_maxrss above has a floor: the
            # child forked from this Python process counts its pages before exec)
            "hwm_sampled_kb": sorted(
                ([op_comm.get(p, "?"), k] for p, k in op_hwm.items()), key=lambda x: -x[1]
            ),
            "lingering_killed": len(lingered),
        },
    }
    for h in hosts:
        after = h.ticks(allp, cache.map)[0]
        out[h.name] = {
            "cpu_s": round((after - before[h.name]) / TCK, 2),
            "rss_peak_kb": max(h.hwm.values(), default=0),
            "rss_sum_peak_kb": h.sum_peak,
            "pss_sum_peak_kb": h.pss_peak,
        }
    if a.ssh_logs:
        out["wire"] = ssh_wire(a.ssh_logs)
    if a.lo:
        lo1 = lo_bytes()
        out["lo_bytes"] = (lo1 - lo0) if lo0 is not None and lo1 is not None else None
    with open(a.out, "w") as f:
        json.dump(out, f)
    sys.exit(0)


if __name__ == "__main__":
    main()
