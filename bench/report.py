#!/usr/bin/env python3
"""Summarise a bench/compare.sh run as Markdown.

Usage: report.py WORKDIR < machine-description-lines

WORKDIR holds json/<server>-<group>-<round>.json (`berth bench --json`
output), json/limits-<round>.json, and the text files starts, peaks and
peaks32 written by compare.sh. Each workload's ratio is the median of the
per-round ratios: the two servers ran back to back in every round, so a
ratio compares two measurements taken under the same machine load.
"""

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

SERVERS = ("berth", "dist")
GROUPS = {
    "c32": "32",
    "pull32": "32",
    "small": "4",
    "mixed": "8",
    "mid": "1",
    "big": "1",
}
ORDER = ["c32", "pull32", "big", "mid", "small", "mixed"]


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def blob_row(label):
    return label.split(" ")[0] in ("push-monolithic", "push-chunked", "pull", "mixed")


def fmt(v, unit=""):
    if v is None:
        return "-"
    if v >= 1000:
        s = f"{v:,.0f}"
    elif v >= 100:
        s = f"{v:.0f}"
    elif v >= 10:
        s = f"{v:.1f}"
    else:
        s = f"{v:.2f}"
    return s + unit


def fmt_ratio(v):
    return "-" if v is None else f"{v:.2f}x" if v < 10 else f"{v:.1f}x"


def load(work):
    # rows[(group, label)][server] -> list of per-round dicts (by round)
    rows = defaultdict(lambda: defaultdict(dict))
    order = []
    for f in sorted((work / "json").glob("*.json")):
        parts = f.stem.split("-")
        if parts[0] == "limits":
            continue
        server, group, rnd = parts[0], parts[1], int(parts[2])
        if group.startswith("big"):
            group = "big"
        try:
            report = json.loads(f.read_text())
        except ValueError:
            continue
        for w in report["workloads"]:
            key = (group, w["label"])
            if key not in order:
                order.append(key)
            rows[key][server][rnd] = w
    first = {k: i for i, k in enumerate(order)}
    order.sort(key=lambda k: (ORDER.index(k[0]) if k[0] in ORDER else 99, first[k]))
    return rows, order


def limits(work):
    sha, mem = [], []
    for f in (work / "json").glob("limits-*.json"):
        try:
            lim = json.loads(f.read_text()).get("limits") or {}
        except ValueError:
            continue
        sha.append(lim.get("sha256_mb_s"))
        mem.append(lim.get("memcpy_mb_s"))
    return median(sha), median(mem)


def table_file(work, name):
    """{server: [values...]} from lines "server round v1 [v2]"."""
    out = defaultdict(list)
    p = work / name
    if p.exists():
        for line in p.read_text().split("\n"):
            f = line.split()
            if len(f) >= 3:
                out[f[0]].append([float(x) for x in f[2:]])
    return out


def main():
    work = Path(sys.argv[1])
    machine = sys.stdin.read().rstrip()
    rows, order = load(work)
    sha, mem = limits(work)
    rounds = max((len(rows[k]["berth"]) for k in order), default=0)

    print("# berth vs CNCF distribution, side by side\n")
    print("Measured by `bench/compare.sh`: both servers on this machine, the same")
    print("`berth bench` workloads against each, one after the other in every")
    print("round (alternating which goes first), fresh servers and data each round.")
    print("Values are medians over rounds; **ratio** is the median of the per-round")
    print("ratios berth/distribution (throughput: ops/s, or MB/s for blob")
    print("workloads); **CPU/op** is the server process's CPU time per operation")
    print("(from /proc), the number that moves least on a busy machine, and")
    print("**CPU ratio** is distribution's over berth's.\n")
    print("## Machine\n")
    print(machine)
    print(f"- machine limits (one core, measured by `berth bench`): sha256 "
          f"{fmt(sha)} MB/s, memcpy {fmt(mem)} MB/s")
    print(f"- rounds: {rounds} (1 GiB workloads: fewer, see n)\n")

    print("## Results\n")
    print("| workload | conc | n | berth | distribution | ratio | berth p50 / p99 ms "
          "| dist p50 / p99 ms | berth CPU/op | dist CPU/op | CPU ratio | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    summary = {}
    for key in order:
        group, label = key
        per = rows[key]
        blob = blob_row(label)
        metric = "mb_per_s" if blob else "ops_per_s"
        unit = " MB/s" if blob else " ops/s"
        common = sorted(set(per["berth"]) & set(per["dist"]))
        ratios = [
            per["berth"][r][metric] / per["dist"][r][metric]
            for r in common
            if per["dist"][r][metric] > 0
        ]
        cpu_ratios = [
            per["dist"][r]["server"]["cpu_us_per_op"] / per["berth"][r]["server"]["cpu_us_per_op"]
            for r in common
            if per["berth"][r].get("server") and per["dist"][r].get("server")
            and per["berth"][r]["server"]["cpu_us_per_op"] > 0
        ]
        m = {}
        for s in SERVERS:
            ws = list(per[s].values())
            m[s] = {
                "v": median([w[metric] for w in ws]),
                "p50": median([w["latency_ms"]["p50"] for w in ws]),
                "p99": median([w["latency_ms"]["p99"] for w in ws]),
                "cpu": median([(w.get("server") or {}).get("cpu_us_per_op") for w in ws]),
                "errors": sum(w["errors"] for w in ws),
            }
        ratio = median(ratios)
        summary[key] = (m, ratio)

        def cpu(v):
            if v is None:
                return "-"
            return fmt(v / 1000, " ms") if v >= 10000 else fmt(v, " µs")

        print(
            f"| {label} | {GROUPS.get(group, '?')} | {len(common)} "
            f"| {fmt(m['berth']['v'], unit)} | {fmt(m['dist']['v'], unit)} | **{fmt_ratio(ratio)}** "
            f"| {fmt(m['berth']['p50'])} / {fmt(m['berth']['p99'])} "
            f"| {fmt(m['dist']['p50'])} / {fmt(m['dist']['p99'])} "
            f"| {cpu(m['berth']['cpu'])} | {cpu(m['dist']['cpu'])} | {fmt_ratio(median(cpu_ratios))} "
            f"| {m['berth']['errors']} / {m['dist']['errors']} |"
        )

    starts = table_file(work, "starts")
    peaks32 = table_file(work, "peaks32")

    def mib(server, table, col):
        v = median([row[col] for row in table.get(server, [])])
        return None if v is None else v / 1024

    # A round runs several server instances: its peak is the largest.
    by_round = defaultdict(lambda: defaultdict(float))
    p = work / "peaks"
    if p.exists():
        for line in p.read_text().split("\n"):
            f = line.split()
            if len(f) == 3:
                by_round[f[0]][f[1]] = max(by_round[f[0]][f[1]], float(f[2]))
    peaks = {s: [[v] for v in rounds.values()] for s, rounds in by_round.items()}

    print("\n## Start-up and memory\n")
    print("| | berth | distribution | ratio |")
    print("|---|---:|---:|---:|")
    s_b = median([r[0] for r in starts.get("berth", [])])
    s_d = median([r[0] for r in starts.get("dist", [])])
    print(f"| start to first answered request, empty store | {fmt(s_b, ' ms')} | {fmt(s_d, ' ms')} "
          f"| {fmt_ratio(s_b / s_d) if s_b and s_d else '-'} |")
    lines = [
        ("idle RSS 1 s after start", starts, 1),
        ("peak RSS under the 32-connection load (VmHWM after it)", peaks32, 0),
        ("peak RSS over a whole round (largest instance; 1 GiB pushes included)", peaks, 0),
    ]
    for what, table, col in lines:
        b, d = mib("berth", table, col), mib("dist", table, col)
        print(f"| {what} | {fmt(b, ' MiB')} | {fmt(d, ' MiB')} "
              f"| {fmt_ratio(b / d) if b and d else '-'} |")

    # ---- targets -------------------------------------------------------
    def find(group, label):
        return summary.get((group, label), (None, None))

    def ratio_target(group, label, need):
        _, r = find(group, label)
        return r, (r is not None and r >= need)

    targets = []
    for what, group, label, need in [
        ("manifest GET by tag, 32 connections", "c32", "manifest-get-tag", 20),
        ("blob HEAD, 32 connections", "c32", "blob-head", 20),
        ("tags list (1,000 tags), 32 connections", "c32", "tags-list", 10),
        ("push of a 1 GiB layer, one stream", "big", "push-monolithic 1GiB", 2),
        ("pull of a 1 GiB layer, one stream", "big", "pull 1GiB", 1.5),
        ("32 concurrent pulls of 100 MiB layers (aggregate MB/s)", "pull32", "pull 100MiB", 1.5),
    ]:
        r, ok = ratio_target(group, label, need)
        targets.append((what, f">= {need}x distribution", fmt_ratio(r), ok if r is not None else None))
    m, _ = find("big", "push-monolithic 1GiB")
    if m and sha:
        share = m["berth"]["v"] / sha
        targets.append(("push of a 1 GiB layer vs this machine's sha256 speed",
                        ">= 70%", f"{share * 100:.0f}% ({fmt(m['berth']['v'])} of {fmt(sha)} MB/s)",
                        share >= 0.7))
    floor = table_file(work, "floor").get("floor")
    if m and floor:
        ceiling = median([row[1] for row in floor])
        targets.append(("(for reference) push of a 1 GiB layer vs this machine's ceiling",
                        "-", f"{m['berth']['v'] / ceiling * 100:.0f}% ({fmt(m['berth']['v'])} of "
                        f"{fmt(ceiling)} MB/s)", None))
    b, d = mib("berth", peaks32, 0), mib("dist", peaks32, 0)
    if b and d:
        targets.append(("peak RSS under the 32-connection load", "<= 50% of distribution's",
                        f"{b / d * 100:.0f}% ({fmt(b)} vs {fmt(d)} MiB)", b <= d / 2))
    b = mib("berth", starts, 1)
    if b:
        targets.append(("idle RSS after start", "< 20 MiB", fmt(b, " MiB"), b < 20))
    if floor:
        work_b = median([row[0] for row in floor])
        ceiling = median([row[1] for row in floor])
        print("\n### The floor under a push\n")
        print("`examples/ingest_floor.rs`, run in each 1 GiB round, measures the CPU work no")
        print("push can avoid here, each part in a tight loop with reused buffers: loopback")
        print("TCP (both ends), SHA-256, and the page-cache write. Median sum: "
              f"**{work_b:.2f} ns per byte**, so with every core busy no push, client")
        print(f"included, can beat **{fmt(ceiling)} MB/s** on this machine.\n")
        print("| 1 GiB push, one stream | MB/s | of the ceiling | server + client CPU per byte | of the floor's work |")
        print("|---|---:|---:|---:|---:|")
        for label in ("push-monolithic 1GiB", "push-chunked 1GiB"):
            per = rows.get(("big", label), {})
            for s_ in SERVERS:
                ws = list(per.get(s_, {}).values())
                if not ws:
                    continue
                mbs = median([w["mb_per_s"] for w in ws])
                cost = median([
                    ((w.get("server") or {}).get("cpu_us_per_op", 0)
                     + (w.get("client") or {}).get("cpu_us_per_op", 0)) * 1e3 / w["blob_size"]
                    for w in ws
                ])
                name = "berth" if s_ == "berth" else "distribution"
                print(f"| {label}, {name} | {fmt(mbs)} | {mbs / ceiling * 100:.0f}% "
                      f"| {cost:.2f} ns | {cost / work_b:.2f}x |")
    print("\n## Targets\n")
    print("| target | needs | measured | met |")
    print("|---|---|---:|:---:|")
    for what, need, got, ok in targets:
        mark = "-" if ok is None else ("yes" if ok else "**no**")
        print(f"| {what} | {need} | {got} | {mark} |")
    print("\nStart-up with 100k manifests in 10k repositories is measured by")
    print("`examples/startup_time.rs`; bench/RESULTS.md has its figure.")


if __name__ == "__main__":
    main()
