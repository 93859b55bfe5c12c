#!/usr/bin/env python3
"""bench/lib/report.py: medians and ratios of bench/run's records; prints the table, writes JSON.

    report.py RECORDS.jsonl [--json OUT] [--meta JSON]

Per data set x scenario x link: the median wall time of each tool, ocmigrate / rsync and (S1)
ocmigrate / tar for both placements of ocmigrate (ocm: on the operator, relaying; ocmt: on the
target), and the issue's target for that cell (✓ met, ✗ missed). Then the resources per tool (medians):
CPU seconds on each side, peak RSS (largest process on any side, and the largest sum of one side's
processes), bytes exchanged with the target host.
"""
import argparse
import json
import statistics
import sys

# issue #4's targets, ocmigrate / rsync
TARGETS = {
    ("D1", "S1", "shaped"): 0.5,
    ("D1", "S1", "plain"): 0.8,
    ("D2", "S1", "shaped"): 1.0,
    ("D2", "S1", "plain"): 1.0,
}
SCEN_TARGET = {"S2": 0.5, "S3": 0.5}


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def get(r, *path):
    for p in path:
        if not isinstance(r, dict) or p not in r:
            return None
        r = r[p]
    return r


def summarize(records):
    groups = {}
    for r in records:
        groups.setdefault((r["set"], r["scenario"], r["link"], r["tool"]), []).append(r)
    cells = {}
    for (s, sc, l, t), rs in sorted(groups.items()):
        ok = [r for r in rs if r["rc"] == 0]
        cpu = {side: med([get(r, side, "cpu_s") for r in ok]) for side in ("operator", "old", "new")}
        cells.setdefault((s, sc, l), {})[t] = {
            "runs": len(rs),
            "failed": len(rs) - len(ok),
            "not_exact": sum(1 for r in rs if r.get("exact") is False),
            "wall_s": med([r["wall_s"] for r in ok]),
            "wall_all_s": [r["wall_s"] for r in rs],
            "cpu_s": cpu,
            "cpu_total_s": med([sum((get(r, side, "cpu_s") or 0) for side in ("operator", "old", "new")) for r in ok]),
            "rss_peak_kb": med([max(get(r, side, "rss_peak_kb") or 0 for side in ("operator", "old", "new")) for r in ok]),
            "rss_side_sum_peak_kb": med(
                [max(get(r, side, "rss_sum_peak_kb") or 0 for side in ("operator", "old", "new")) for r in ok]),
            "pss_side_sum_peak_kb": med(
                [max(get(r, side, "pss_sum_peak_kb") or 0 for side in ("operator", "old", "new")) for r in ok]),
            "target_bytes": med([get(r, "wire", "target_bytes") for r in ok]),
            # the bytes over the old-new link: ocmt (run on new) talks to the source, all others
            # to the target
            "link_bytes": med([get(r, "wire", "source_bytes" if t == "ocmt" else "target_bytes") for r in ok]),
            "source_bytes": med([get(r, "wire", "source_bytes") for r in ok]),
        }
    return cells


def ratio(a, b):
    if a is None or b in (None, 0):
        return None
    return a / b


def target_of(s, sc, l):
    return TARGETS.get((s, sc, l), SCEN_TARGET.get(sc))


def fmt(x, nd=2, suffix=""):
    return "-" if x is None else f"{x:.{nd}f}{suffix}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("records")
    ap.add_argument("--json")
    ap.add_argument("--meta", default="{}")
    a = ap.parse_args()
    with open(a.records) as f:
        records = [json.loads(line) for line in f if line.strip()]
    cells = summarize(records)
    rows = []
    print()
    print("| set | scen | link | ocm s | ocmt s | rsync s | tar s | ocm/rsync | ocmt/rsync | target | ocm/tar | ocmt/tar | CPU ocm/rsync | RSS ocm/rsync | PSS ocm/rsync | bytes ocm/rsync |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (s, sc, l), tools in sorted(cells.items()):
        o, ot, r, t = tools.get("ocm"), tools.get("ocmt"), tools.get("rsync"), tools.get("tar")
        w = lambda x: x and x["wall_s"]
        row = {
            "set": s, "scenario": sc, "link": l, "tools": tools,
            "ocm_over_rsync": ratio(w(o), w(r)),
            "ocmt_over_rsync": ratio(w(ot), w(r)),
            "ocm_over_tar": ratio(w(o), w(t)) if sc == "S1" else None,
            "ocmt_over_tar": ratio(w(ot), w(t)) if sc == "S1" else None,
            "target": target_of(s, sc, l),
            "cpu_ocm_over_rsync": ratio(o and o["cpu_total_s"], r and r["cpu_total_s"]),
            "rss_ocm_over_rsync": ratio(o and o["rss_side_sum_peak_kb"], r and r["rss_side_sum_peak_kb"]),
            "pss_ocm_over_rsync": ratio(o and o.get("pss_side_sum_peak_kb"), r and r.get("pss_side_sum_peak_kb")),
            "bytes_ocm_over_rsync": ratio(o and o["link_bytes"], r and r["link_bytes"]),
        }

        def met(x):
            if row["target"] is None or x is None:
                return ""
            return " ✓" if x <= row["target"] else " ✗"

        rows.append(row)
        bad = lambda x: "" if not x else (" (!)" if x["failed"] or x["not_exact"] else "")
        print(f"| {s} | {sc} | {l} | {fmt(w(o))}{bad(o)} | {fmt(w(ot))}{bad(ot)} | {fmt(w(r))}{bad(r)} | "
              f"{fmt(w(t))}{bad(t)} | {fmt(row['ocm_over_rsync'])}{met(row['ocm_over_rsync'])} | "
              f"{fmt(row['ocmt_over_rsync'])}{met(row['ocmt_over_rsync'])} | "
              f"{fmt(row['target'], 1) if row['target'] else '-'} | {fmt(row['ocm_over_tar'])} | "
              f"{fmt(row['ocmt_over_tar'])} | {fmt(row['cpu_ocm_over_rsync'])} | {fmt(row['rss_ocm_over_rsync'])} | "
              f"{fmt(row['pss_ocm_over_rsync'])} | "
              f"{fmt(row['bytes_ocm_over_rsync'])} |")
    print()
    print("Resources (medians): CPU seconds operator/old/new; peak RSS MiB: largest process, largest one-side sum; PSS side: the same sum of Pss (shared pages counted once); MB over the old-new link (SSH bytes)")
    print()
    print("| set | scen | link | tool | runs | wall s | CPU op | CPU old | CPU new | RSS proc | RSS side | PSS side | MB on link |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (s, sc, l), tools in sorted(cells.items()):
        for t in ("ocm", "ocmt", "rsync", "tar"):
            x = tools.get(t)
            if not x:
                continue
            mib = lambda kb: None if kb is None else kb / 1024
            flag = f" ({x['failed']} failed)" if x["failed"] else ""
            flag += f" ({x['not_exact']} not exact)" if x["not_exact"] else ""
            print(f"| {s} | {sc} | {l} | {t} | {x['runs']}{flag} | {fmt(x['wall_s'])} | {fmt(x['cpu_s']['operator'], 1)} | "
                  f"{fmt(x['cpu_s']['old'], 1)} | {fmt(x['cpu_s']['new'], 1)} | {fmt(mib(x['rss_peak_kb']), 0)} | "
                  f"{fmt(mib(x['rss_side_sum_peak_kb']), 0)} | {fmt(mib(x.get('pss_side_sum_peak_kb')) or None, 0)} | "
                  f"{fmt(None if x['link_bytes'] is None else x['link_bytes'] / 1e6, 1)} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"meta": json.loads(a.meta), "cells": rows, "records": records}, f, indent=1)


if __name__ == "__main__":
    main()
