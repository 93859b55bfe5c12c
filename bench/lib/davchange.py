#!/usr/bin/env python3
"""bench/lib/davchange.py: users change their files over WebDAV, as sync clients would.

    davchange.py --data DIR --users FILE --url http://127.0.0.2 --host cloud.example.test
                 [--fraction 0.005] [--seed S]

DIR is the source's data directory as seen from here, FILE the lab's users.tsv (uid TAB password).
Of the regular files under <uid>/files/ of those users, FRACTION are overwritten (PUT, new content
of about the same size), FRACTION deleted (DELETE: they move to the trash bin) and FRACTION added
beside random ones (PUT); users in parallel, 4 at a time. Going through the server keeps its file cache right (the instance stays
consistent, unlike a change made on the disk). Prints a JSON summary; exit 1 if a request failed.
"""
import argparse
import base64
import concurrent.futures
import http.client
import json
import os
import random
import sys
import time
import urllib.parse


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--users", required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--fraction", type=float, default=0.005)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    creds = {}
    with open(a.users) as f:
        for line in f:
            uid, _, pw = line.rstrip("\n").partition("\t")
            if uid and pw:
                creds[uid] = pw
    files = []
    for uid in sorted(creds):
        base = os.path.join(a.data, uid, "files")
        for dp, dns, fns in os.walk(base):
            dns.sort()
            for fn in sorted(fns):
                p = os.path.join(dp, fn)
                # names near 255 bytes cannot go to the trash bin (".d<timestamp>" is added): left out
                if (os.path.isfile(p) and not os.path.islink(p) and not fn.endswith(".part")
                        and len(fn.encode()) <= 200):
                    files.append((uid, os.path.relpath(p, base), os.path.getsize(p)))
    if not files:
        sys.exit(f"davchange.py: no files under {a.data}/<user>/files for the users in {a.users}")
    k = max(1, round(len(files) * a.fraction))
    picked = rng.sample(files, min(len(files), 3 * k))
    modify, delete, beside = picked[:k], picked[k : 2 * k], picked[2 * k :]
    u = urllib.parse.urlsplit(a.url)
    conns = {}

    def request(uid, method, rel, body=None):
        c = conns.get(uid)
        if c is None:
            c = conns[uid] = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=60)
        auth = base64.b64encode(f"{uid}:{creds[uid]}".encode()).decode()
        path = f"/remote.php/dav/files/{urllib.parse.quote(uid)}/{urllib.parse.quote(rel)}"
        headers = {"Host": a.host, "Authorization": f"Basic {auth}"}
        for attempt in (1, 2):  # once more on a fresh connection if the server closed it
            try:
                c.request(method, path, body=body, headers=headers)
                r = c.getresponse()
                r.read()
                return r.status
            except (http.client.HTTPException, OSError):
                c.close()
                c = conns[uid] = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=60)
        return None

    # the requests, in order per user; users in parallel (4 at a time), each on its own connection
    ops = {}
    for uid, rel, size in modify:
        ops.setdefault(uid, []).append(("PUT", rel, rng.randbytes(max(1, size + rng.randint(-100, 100))), (200, 201, 204)))
    for uid, rel, _ in delete:
        ops.setdefault(uid, []).append(("DELETE", rel, None, (200, 204)))
    for i, (uid, rel, _) in enumerate(beside):
        new = os.path.join(os.path.dirname(rel), f"upload {a.seed}-{i}.txt")
        ops.setdefault(uid, []).append(("PUT", new, rng.randbytes(rng.randint(100, 60000)), (200, 201, 204)))

    def run_user(uid):
        bad = []
        for method, rel, body, good in ops[uid]:
            st = request(uid, method, rel, body)
            if st not in good:
                bad.append((method, uid, rel, st))
        return bad

    failed = []
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as ex:
        for bad in ex.map(run_user, sorted(ops)):
            failed.extend(bad)
    print(json.dumps({"files": len(files), "modified": len(modify), "deleted": len(delete), "added": len(beside),
                      "seconds": round(time.monotonic() - t0, 1), "failed": len(failed),
                      "first_failures": failed[:5]}))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
