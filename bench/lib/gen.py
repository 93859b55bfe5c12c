#!/usr/bin/env python3
"""bench/lib/gen.py: the benchmark's data sets and the final-delta change, deterministic for a seed.

    gen.py make d1|d2 DIR [--files N] [--big-size BYTES] [--seed S]
    gen.py mutate DIR UNDO [--fraction F] [--seed S]   # S3's change, recorded in UNDO (a folder)
    gen.py undo DIR UNDO                                # put DIR back exactly as before mutate

A data set is an ownCloud data directory (`.ocdata`, `index.html`, `<user>/files/...`), so it can
stand in for an instance's `datadirectory`:

* d1: many small files. N entries in total: ~89 % user files under `<user>/files/` (20 users,
  nested folders 1-6 deep, ~25 files a folder, names with spaces and a few non-ASCII letters),
  ~6 % `files_versions/<path>.v<epoch>`, ~2 % `files_trashbin/files/<name>.d<epoch>`, ~3 % preview
  thumbnails under `appdata_<id>/preview/`, plus `owncloud.log`. Sizes log-normal, median 8 KiB
  (sigma 1.0, so mean ~13 KiB, ~1.3 GB for 100,000), capped at 64 MiB. Content: ~2/3 of the
  files are incompressible (photos, office documents, archives are already compressed), ~1/3 text
  (random words from a 2,000-word vocabulary: zstd gets ~3x). mtimes spread over three years with
  nanoseconds; files 0644, folders 0755, all owned by www-data (uid/gid 33) when run as root.
* d2: four incompressible files of --big-size bytes (default 512 MiB) under `bigdata/files/Videos`.

`mutate` makes S3's change: of the regular files under `*/files/`, F (default 0.5 %) are rewritten
(same size, new content, mtime + 1 day), F are deleted, F new files are added beside random ones,
and one folder (the smallest one with at least 5 files, chosen by the seed) is renamed. Every
original is moved, never copied or changed in place, into UNDO, so `undo` restores the tree
exactly (inodes, mtimes), instantly and without keeping a second copy of the set.
"""
import argparse
import json
import math
import os
import random
import sys

UID = GID = 33  # www-data on Debian
T_END = 1_764_000_000  # Nov 2025
T_SPAN = 3 * 365 * 86400

WORDS = None


def vocabulary(rng):
    global WORDS
    if WORDS is None:
        letters = "abcdefghijklmnopqrstuvwxyz"
        WORDS = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 10))) for _ in range(2000)]
    return WORDS


def text_corpus(rng, size=4 << 20):
    words = vocabulary(rng)
    out, n = [], 0
    while n < size:
        line = " ".join(rng.choice(words) for _ in range(rng.randint(4, 14))) + ".\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


class Content:
    def __init__(self, rng):
        self.rng = rng
        self.corpus = text_corpus(rng)

    def make(self, size, text):
        if not text:
            return b"".join(self.rng.randbytes(min(64 << 20, size - o)) for o in range(0, size, 64 << 20))
        c = self.corpus
        parts, n = [], 0
        while n < size:
            off = self.rng.randrange(0, len(c) - 4096)
            take = min(size - n, self.rng.randint(512, 65536), len(c) - off)
            parts.append(c[off : off + take])
            n += take
        return b"".join(parts)


def lognormal_size(rng, median=8192, sigma=1.0, cap=64 << 20):
    return max(0, min(cap, int(median * math.exp(rng.gauss(0, sigma)))))


def rand_ns(rng):
    return (T_END - rng.randrange(T_SPAN)) * 1_000_000_000 + rng.randrange(1_000_000_000)


def own(path, as_root):
    if as_root:
        os.lchown(path, UID, GID)


def write_file(path, data, mtime_ns, as_root, mode=0o644):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    own(path, as_root)
    os.utime(path, ns=(mtime_ns, mtime_ns))


FOLDER_WORDS = [
    "Documents", "Photos", "Projects", "Invoices", "Music", "Notes", "Shared", "Archive", "Reports",
    "Drafts", "Scans", "Travel", "Family", "Work", "Clients", "Budget", "Meeting notes", "Übersicht",
    "Études", "src", "assets", "old", "2019", "2020", "2021", "2022", "2023", "2024", "Q1", "Q2",
]
EXT_BIN = [".jpg", ".png", ".pdf", ".docx", ".xlsx", ".odt", ".zip", ".mp3", ".heic"]
EXT_TXT = [".txt", ".md", ".csv", ".log", ".json", ".html", ".xml", ".tex"]


def make_common(root, as_root):
    os.makedirs(root, exist_ok=True)
    for name, data in ((".ocdata", b""), ("index.html", b""), (".htaccess", b"deny from all\n")):
        write_file(os.path.join(root, name), data, T_END * 1_000_000_000, as_root)


def make_d1(root, n, seed, as_root):
    rng = random.Random(seed)
    content = Content(rng)
    make_common(root, as_root)
    users = [f"user{i:02d}" for i in range(1, 21)]
    n_user = int(n * 0.89)
    n_versions = int(n * 0.06)
    n_trash = int(n * 0.02)
    n_preview = max(1, n - n_user - n_versions - n_trash - 1)
    # folders: each user a tree; a new folder hangs under a random existing one (depth <= 6)
    n_folders = max(len(users), n_user // 25)
    folders = []  # (user, relpath)
    for u in users:
        folders.append((u, ""))
    per_user = {u: [""] for u in users}
    while len(folders) < n_folders:
        u = rng.choice(users)
        parent = rng.choice(per_user[u])
        if parent.count("/") >= 5:
            continue
        name = rng.choice(FOLDER_WORDS)
        if rng.random() < 0.5:
            name += f" {rng.randint(1, 99)}"
        rel = f"{parent}/{name}" if parent else name
        if rel in per_user[u]:
            continue
        per_user[u].append(rel)
        folders.append((u, rel))
    dirs_made = []

    def mkdir(path):
        if not os.path.isdir(path):
            os.makedirs(path, exist_ok=True)
        dirs_made.append(path)

    files = []  # (user, relpath, size) of user files, for versions and trash
    for i in range(n_user):
        u, rel = rng.choice(folders)
        text = rng.random() < 0.33
        ext = rng.choice(EXT_TXT if text else EXT_BIN)
        name = f"{rng.choice(vocabulary(rng))}_{i}{ext}"
        if rng.random() < 0.1:
            name = name.replace("_", " ")
        d = os.path.join(root, u, "files", rel)
        mkdir(d)
        size = lognormal_size(rng)
        write_file(os.path.join(d, name), content.make(size, text), rand_ns(rng), as_root)
        files.append((u, os.path.join(rel, name) if rel else name, size, text))
    for _ in range(n_versions):
        u, rel, size, text = rng.choice(files)
        d = os.path.join(root, u, "files_versions", os.path.dirname(rel))
        mkdir(d)
        t = rand_ns(rng)
        p = os.path.join(d, f"{os.path.basename(rel)}.v{t // 1_000_000_000}")
        if os.path.exists(p):
            continue
        write_file(p, content.make(max(0, size + rng.randint(-200, 200)), text), t, as_root)
    for _ in range(n_trash):
        u, rel, size, text = rng.choice(files)
        d = os.path.join(root, u, "files_trashbin", "files")
        mkdir(d)
        t = rand_ns(rng)
        p = os.path.join(d, f"{os.path.basename(rel)}.d{t // 1_000_000_000}")
        if os.path.exists(p):
            continue
        write_file(p, content.make(size, text), t, as_root)
    appdata = os.path.join(root, "appdata_oc8x2kq3bz4w")
    for i in range(n_preview):
        d = os.path.join(appdata, "preview", str(1000 + i // 3))
        mkdir(d)
        sz = rng.choice((32, 64, 256, 1024))
        write_file(os.path.join(d, f"{sz}-{sz}-max.png"), content.make(rng.randint(1500, 40000), False),
                   rand_ns(rng), as_root)
    write_file(os.path.join(root, "owncloud.log"), content.make(5 << 20, True), T_END * 10**9, as_root, 0o640)
    finish_dirs(root, rng, as_root)


def finish_dirs(root, rng, as_root):
    """Folders: mode 0755, owner, an mtime (deepest first, so setting it sticks)."""
    all_dirs = [dp for dp, _, _ in os.walk(root)]
    for d in sorted(all_dirs, key=lambda p: -p.count("/")):
        os.chmod(d, 0o755 if d != root else 0o770)
        own(d, as_root)
        t = rand_ns(rng)
        os.utime(d, ns=(t, t))


def make_d2(root, big_size, seed, as_root):
    rng = random.Random(seed)
    make_common(root, as_root)
    d = os.path.join(root, "bigdata", "files", "Videos")
    os.makedirs(d, exist_ok=True)
    for i in range(1, 5):
        p = os.path.join(d, f"holiday-{2020 + i}.mkv")
        with open(p, "wb") as f:
            left = big_size
            while left > 0:
                chunk = min(left, 64 << 20)
                f.write(rng.randbytes(chunk))
                left -= chunk
        os.chmod(p, 0o644)
        own(p, as_root)
        t = rand_ns(rng)
        os.utime(p, ns=(t, t))
    finish_dirs(root, rng, as_root)


# --- S3: the final delta ---------------------------------------------------------------------


def user_files(root):
    """Regular files under <user>/files/, sorted (so the choice depends on the seed only)."""
    out = []
    for entry in sorted(os.listdir(root)):
        base = os.path.join(root, entry, "files")
        if not os.path.isdir(base) or os.path.islink(base):
            continue
        for dp, dns, fns in os.walk(base):
            dns.sort()
            for f in sorted(fns):
                p = os.path.join(dp, f)
                if os.path.isfile(p) and not os.path.islink(p):
                    out.append(p)
    return out


def mutate(root, undo, fraction, seed, as_root):
    if os.path.exists(undo):
        sys.exit(f"gen.py: {undo} exists: a previous change was not undone (run: gen.py undo {root} {undo})")
    rng = random.Random(seed)
    content = Content(rng)
    files = user_files(root)
    if not files:
        sys.exit(f"gen.py: no files under {root}/*/files")
    k = max(1, round(len(files) * fraction))
    picked = rng.sample(files, min(len(files), 3 * k))
    modify, delete, beside = picked[:k], picked[k : 2 * k], picked[2 * k :]
    os.makedirs(os.path.join(undo, "orig"))
    log = {"root": root, "moved": [], "added": [], "renamed": None}
    # folder mtimes change with every entry made or removed: recorded here, put back by undo
    dir_times = {}
    for p in picked:
        d = os.path.dirname(p)
        dir_times[d] = os.stat(d).st_mtime_ns
    n = 0

    def keep(p):
        nonlocal n
        dst = os.path.join(undo, "orig", str(n))
        n += 1
        os.rename(p, dst)
        log["moved"].append([p, dst])

    for p in modify:
        st = os.stat(p)
        keep(p)
        text = p.endswith(tuple(EXT_TXT))
        write_file(p, content.make(st.st_size, text), st.st_mtime_ns + 86400 * 10**9, as_root, st.st_mode & 0o7777)
        log["added"].append(p)
    for p in delete:
        keep(p)
    for i, p in enumerate(beside):
        q = os.path.join(os.path.dirname(p), f"new upload {seed}-{i}.txt" if i % 3 else f"IMG_{seed}_{i}.jpg")
        write_file(q, content.make(lognormal_size(rng), i % 3 != 0), T_END * 10**9 + rng.randrange(10**15), as_root)
        log["added"].append(q)
    # the folder rename: a folder with >= 5 files directly inside, not touched above
    touched = {os.path.dirname(p) for p in picked}
    cands = {}
    for p in files:
        d = os.path.dirname(p)
        if not d.endswith("/files"):
            cands[d] = cands.get(d, 0) + 1
    cands = sorted(d for d, c in cands.items() if c >= 5 and d not in touched
                   and not any(t.startswith(d + "/") for t in touched))
    if cands:
        d = rng.choice(cands)
        dir_times[os.path.dirname(d)] = os.stat(os.path.dirname(d)).st_mtime_ns
        to = d + " (renamed)"
        os.rename(d, to)
        log["renamed"] = [d, to]
    with open(os.path.join(undo, "log.json"), "w") as f:
        json.dump(log, f)
    with open(os.path.join(undo, "dirs.json"), "w") as f:
        json.dump(dir_times, f)
    print(json.dumps({"files": len(files), "modified": len(modify), "deleted": len(delete),
                      "added": len(beside), "renamed": log["renamed"][0] if log["renamed"] else None}))


def undo_changes(root, undo):
    path = os.path.join(undo, "log.json")
    if not os.path.exists(path):
        sys.exit(f"gen.py: {path} missing: nothing to undo, or the change was not recorded")
    with open(path) as f:
        log = json.load(f)
    if log["root"] != root:
        sys.exit(f"gen.py: {undo} belongs to {log['root']}, not {root}")
    if log["renamed"]:
        os.rename(log["renamed"][1], log["renamed"][0])
    for p in log["added"]:
        os.unlink(p)
    for p, dst in reversed(log["moved"]):
        os.rename(dst, p)
    with open(os.path.join(undo, "dirs.json")) as f:
        for d, t in json.load(f).items():
            os.utime(d, ns=(t, t))
    os.unlink(path)
    os.unlink(os.path.join(undo, "dirs.json"))
    os.rmdir(os.path.join(undo, "orig"))
    os.rmdir(undo)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("set", choices=["d1", "d2"])
    m.add_argument("dir")
    m.add_argument("--files", type=int, default=100_000)
    m.add_argument("--big-size", type=int, default=512 << 20)
    m.add_argument("--seed", type=int, default=1)
    u = sub.add_parser("mutate")
    u.add_argument("dir")
    u.add_argument("undo")
    u.add_argument("--fraction", type=float, default=0.005)
    u.add_argument("--seed", type=int, default=1)
    r = sub.add_parser("undo")
    r.add_argument("dir")
    r.add_argument("undo")
    a = ap.parse_args()
    as_root = os.geteuid() == 0
    root = os.path.abspath(a.dir)
    if a.cmd == "make":
        if os.path.exists(root):
            sys.exit(f"gen.py: {root} exists; remove it first")
        if a.set == "d1":
            make_d1(root, a.files, a.seed, as_root)
        else:
            make_d2(root, a.big_size, a.seed, as_root)
    elif a.cmd == "mutate":
        mutate(root, os.path.abspath(a.undo), a.fraction, a.seed, as_root)
    else:
        undo_changes(root, os.path.abspath(a.undo))


if __name__ == "__main__":
    main()
