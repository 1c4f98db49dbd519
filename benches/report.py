#!/usr/bin/env python3
"""Turns a benches/load.sh result directory into Markdown (stdout) and
DIR/summary.json, and checks the goals of issue 12.

Usage: benches/report.py DIR
"""

import json
import math
import os
import re
import statistics
import sys

GOALS = {
    "warm_ratio": 0.7,          # realistic reviews/s ÷ no-op reviews/s
    "warm_rps": 10_000,         # realistic reviews/s
    "warm_p99_ms": 2.0,         # realistic p99 at 16 connections
    "cold_requests": 6,         # registry requests per cold review
    "cold_median_ms": 50.0,
    "rss_mib_10k": 64.0,        # VmRSS with 10k cached digests
}


def load(path):
    with open(path) as f:
        return json.load(f)


def ms(v):
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", v)
    if not m:
        return float("nan")
    x = float(m.group(1))
    return {"us": x / 1000, "ms": x, "s": x * 1000}[m.group(2)]


def parse_wrk(text):
    r = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    r["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", text)
    r["requests"] = int(m.group(1)) if m else 0
    for p in ("50", "90", "99"):
        m = re.search(rf"^\s+{p}%\s+(\S+)", text, re.M)
        r[f"p{p}"] = ms(m.group(1)) if m else float("nan")
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: (.*)", text)
    r["socket_errors"] = m.group(1).strip() if m else ""
    return r


def parse_metrics(text):
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        series, _, value = line.rpartition(" ")
        try:
            out[series] = float(value)
        except ValueError:
            pass
    return out


def msum(m, name, **labels):
    total = 0.0
    for series, v in m.items():
        n, _, l = series.partition("{")
        if n == name and all(f'{k}="{val}"' in l for k, val in labels.items()):
            total += v
    return total


def ticks(stat):
    rest = stat.rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


def wrk_run(d, name, clk):
    base = os.path.join(d, name)
    if not os.path.exists(base + ".wrk"):
        return None
    with open(base + ".wrk") as f:
        r = parse_wrk(f.read())
    with open(base + ".stat.before") as f:
        t0 = ticks(f.read())
    with open(base + ".stat.after") as f:
        t1 = ticks(f.read())
    with open(base + ".metrics.before") as f:
        m0 = parse_metrics(f.read())
    with open(base + ".metrics.after") as f:
        m1 = parse_metrics(f.read())

    def dm(name, **labels):
        return msum(m1, name, **labels) - msum(m0, name, **labels)

    n = max(r["requests"], 1)
    r["cpu_us_per_review"] = (t1 - t0) / clk * 1e6 / n
    if "noop" not in name:
        allowed = dm("provgate_requests_total", endpoint="validate", result="allowed")
        total = dm("provgate_requests_total", endpoint="validate")
        r["allowed"] = allowed
        r["not_allowed"] = total - allowed
        r["evaluations_per_review"] = dm("provgate_cache_requests_total", cache="verdict", result="miss") / n
        r["verdict_hits_per_review"] = dm("provgate_cache_requests_total", cache="verdict", result="hit") / n
        r["evidence_hits_per_review"] = dm("provgate_cache_requests_total", cache="evidence", result="hit") / n
        r["discoveries"] = dm("provgate_registry_duration_seconds_count")
        r["registry_requests"] = dm("provgate_registry_requests_total")
    return r


def f(x, nd=0):
    if x is None or (isinstance(x, float) and x != x):
        return "n/a"
    return f"{x:,.{nd}f}"


def verdict(ok):
    return "**met**" if ok else "**missed**"


def main():
    d = sys.argv[1]
    machine = load(os.path.join(d, "machine.json"))
    clk = machine.get("clk_tck", 100)
    rounds = sorted(x for x in os.listdir(d) if x.startswith("round"))
    summary = {"machine": machine, "rounds": {}}
    md = []
    md.append(f"Run {machine['date']} at commit `{machine['commit']}`: {machine['cores']} cores, "
              f"{machine['mem_gib']} GiB, {machine['kernel']}, {machine['rustc']}; load average at start "
              f"{machine['loadavg_start']} (shared machine). Rounds: {len(rounds)}.")
    md.append("")

    # Warm.
    warm_rows = []
    for rd in rounds:
        runs = {n: wrk_run(os.path.join(d, rd), n, clk) for n in ("noop", "realistic", "noop-deployment", "identical")}
        runs = {k: v for k, v in runs.items() if v}
        if not runs:
            continue
        summary["rounds"].setdefault(rd, {})["warm"] = runs
        warm_rows.append((rd, runs))
    if warm_rows:
        md.append(f"### Warm admission vs no-op (wrk, {machine['duration']} s per run, "
                  f"{machine['connections']} connections, 2 threads, same machine)")
        md.append("")
        md.append("| round | traffic | reviews/s | vs its no-op | p50 | p99 | provgate CPU per review | "
                  "vs its no-op, by CPU | evaluations / verdict hits per review | not allowed |")
        md.append("|---|---|---|---|---|---|---|---|---|---|")
        for rd, runs in warm_rows:
            for name, label, baseline in (
                ("noop", "no-op, realistic Pod bodies (baseline)", None),
                ("realistic", "**realistic**: ReplicaSet Pod CREATEs, 3 images, slsa-provenance + sbom-required", "noop"),
                ("noop-deployment", "no-op, one Deployment body", None),
                ("identical", "identical 3-container Deployment review repeated", "noop-deployment"),
            ):
                r = runs.get(name)
                if not r:
                    continue
                ratio = r["rps"] / runs[baseline]["rps"] if baseline and runs.get(baseline) else None
                r["ratio"] = ratio
                # CPU time is less disturbed by other tenants than throughput.
                cpu_ratio = (runs[baseline]["cpu_us_per_review"] / r["cpu_us_per_review"]
                             if baseline and runs.get(baseline) and r["cpu_us_per_review"] else None)
                r["cpu_ratio"] = cpu_ratio
                ev = (f"{r['evaluations_per_review']:.2f} / {r['verdict_hits_per_review']:.2f}"
                      if "evaluations_per_review" in r else "")
                na = f(r.get("not_allowed")) if "not_allowed" in r else ""
                if r["non2xx"] or r["socket_errors"]:
                    na += f" (non-2xx {r['non2xx']}; socket {r['socket_errors']})"
                md.append(f"| {rd[5:]} | {label} | {f(r['rps'])} | {f(ratio, 2) if ratio else '1.00'} | "
                          f"{f(r['p50'], 2)} ms | {f(r['p99'], 2)} ms | {f(r['cpu_us_per_review'])} µs | "
                          f"{f(cpu_ratio, 2) if cpu_ratio else '1.00'} | {ev} | {na} |")
        real = [runs["realistic"] for _, runs in warm_rows if "realistic" in runs]
        if real:
            ratios = [r["ratio"] or 0 for r in real]
            rps = [r["rps"] for r in real]
            p99 = [r["p99"] for r in real]
            cpu = [r["cpu_ratio"] or 0 for r in real]
            mean = statistics.mean
            each = lambda xs, nd: ", ".join(f"{x:,.{nd}f}" for x in xs)  # noqa: E731
            md.append("")
            md.append(f"Goal, realistic warm (judged on the mean of the rounds): ≥ {GOALS['warm_ratio']}× no-op — "
                      f"{verdict(mean(ratios) >= GOALS['warm_ratio'])} ({each(ratios, 3)}; by CPU {each(cpu, 3)}); "
                      f"≥ {GOALS['warm_rps']:,} reviews/s — {verdict(mean(rps) >= GOALS['warm_rps'])} ({each(rps, 0)}); "
                      f"p99 ≤ {GOALS['warm_p99_ms']} ms — {verdict(mean(p99) <= GOALS['warm_p99_ms'])} ({each(p99, 2)} ms).")
            summary["goals_warm"] = {"ratio": ratios, "cpu_ratio": cpu, "rps": rps, "p99_ms": p99}
        md.append("")

    # Burst.
    bursts = [(rd, load(os.path.join(d, rd, "burst.json"))) for rd in rounds
              if os.path.exists(os.path.join(d, rd, "burst.json"))]
    if bursts:
        md.append(f"### Burst: {machine['burst']} concurrent reviews of one fresh digest "
                  "(tagged image, provenance + SBOM: two bundles, two contracts)")
        md.append("")
        md.append("| round | discoveries | verifications | evaluations | evidence hits | tag misses | "
                  "registry requests | p50 | p99 | max | allowed |")
        md.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for rd, b in bursts:
            m = b["metrics"]
            kinds = ", ".join(f"{k} {int(v)}" for k, v in sorted(m["registry_by_kind"].items()))
            md.append(f"| {rd[5:]} | {f(m['discoveries'])} | {f(m['verifications'])} | {f(m['evaluations'])} | "
                      f"{f(m['evidence_hits'])} | {f(m['tag_misses'])} | {f(m['registry_requests'])} ({kinds}) | "
                      f"{f(b['latency_ms']['p50'], 1)} ms | {f(b['latency_ms']['p99'], 1)} ms | "
                      f"{f(b['latency_ms']['max'], 1)} ms | {b['allowed']}/{b['reviews']} |")
            summary["rounds"].setdefault(rd, {})["burst"] = b
        ok = all(b["metrics"]["discoveries"] == 1 and b["metrics"]["verifications"] == 2
                 and b["metrics"]["evaluations"] == 2 for _, b in bursts)
        md.append("")
        md.append(f"Goal, burst: one discovery, one verification per bundle (2), one evaluation per contract (2) — "
                  f"{verdict(ok)}.")
        md.append("")

    # Cold.
    colds = [(rd, load(os.path.join(d, rd, "cold.json"))) for rd in rounds
             if os.path.exists(os.path.join(d, rd, "cold.json"))]
    if colds:
        md.append("### Cold: fresh tagged images (provenance + SBOM), one review each, one at a time")
        md.append("")
        md.append("| round | reviews | median | p90 | max | registry requests per review (count × requests) | per kind (first review) |")
        md.append("|---|---|---|---|---|---|---|")
        all_req, all_ms = [], []
        for rd, c in colds:
            rows = c["per_request"]
            reqs = [int(r["registry_requests"]) for r in rows]
            lat = sorted(r["ms"] for r in rows)
            all_req += reqs
            all_ms += lat
            dist = " ".join(f"{reqs.count(v)}×{v}" for v in sorted(set(reqs)))
            kinds = ", ".join(f"{k} {int(v)}" for k, v in sorted(rows[0]["registry_by_kind"].items())) if rows else ""
            md.append(f"| {rd[5:]} | {len(rows)} | {statistics.median(lat):.1f} ms | "
                      f"{lat[max(0, math.ceil(len(lat) * 0.9) - 1)]:.1f} ms | {lat[-1]:.1f} ms | {dist} | {kinds} |")
            summary["rounds"].setdefault(rd, {})["cold"] = c
        med = statistics.median(all_ms)
        md.append("")
        md.append(f"Goal, cold: ≤ {GOALS['cold_requests']} registry requests — {verdict(max(all_req) <= GOALS['cold_requests'])} "
                  f"(max {max(all_req)}); median ≤ {GOALS['cold_median_ms']:.0f} ms — {verdict(med <= GOALS['cold_median_ms'])} "
                  f"(median of all rounds {med:.1f} ms).")
        summary["goals_cold"] = {"max_requests": max(all_req), "median_ms": med}
        md.append("")

    # RSS.
    rss_rows = []
    for rd in rounds:
        p = lambda n: os.path.join(d, rd, f"rss-{n}.json")  # noqa: E731
        if all(os.path.exists(p(n)) for n in ("0", "1k", "10k")):
            rss_rows.append((rd, {n: load(p(n)) for n in ("0", "1k", "10k", "fill-1k", "fill-10k", "recheck")
                                  if os.path.exists(p(n))}))
    if rss_rows:
        sizes = load(os.path.join(d, "rss-sizes.json")) if os.path.exists(os.path.join(d, "rss-sizes.json")) else {}
        n10 = machine["rss_digests"]
        n1 = n10 // 10
        md.append(f"### Memory: VmRSS with {n1:,} and {n10:,} cached digests "
                  f"(one key-signed SLSA provenance each: statement {sizes.get('statement_bytes', '?')} bytes, "
                  f"bundle {sizes.get('bundle_bytes', '?')} bytes)")
        md.append("")
        md.append(f"| round | after warm-up (0 digests) | {n1:,} digests | {n10:,} digests | KiB per digest (0→{n10 // 1000}k) | "
                  f"KiB per digest (1k→{n10 // 1000}k) | cold reviews/s while filling | second pass: evidence hits / discoveries |")
        md.append("|---|---|---|---|---|---|---|---|")
        worst = 0
        for rd, r in rss_rows:
            r0, r1, r10 = r["0"]["rss_kib"], r["1k"]["rss_kib"], r["10k"]["rss_kib"]
            worst = max(worst, r10)
            fill = r.get("fill-10k", {})
            re_ = r.get("recheck", {}).get("metrics", {})
            md.append(f"| {rd[5:]} | {r0 / 1024:.1f} MiB | {r1 / 1024:.1f} MiB | {r10 / 1024:.1f} MiB | "
                      f"{(r10 - r0) / n10:.1f} | {(r10 - r1) / (n10 - n1):.1f} | {f(fill.get('reviews_per_second'))} | "
                      f"{f(re_.get('evidence_hits'))} / {f(re_.get('discoveries'))} |")
            summary["rounds"].setdefault(rd, {})["rss"] = r
        md.append("")
        md.append(f"Goal, memory: ≤ {GOALS['rss_mib_10k']:.0f} MiB RSS with {n10:,} cached digests — "
                  f"{verdict(worst / 1024 <= GOALS['rss_mib_10k'])} (worst round {worst / 1024:.1f} MiB).")
        summary["goals_rss"] = {"worst_mib": worst / 1024}
        md.append("")

    with open(os.path.join(d, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=1, default=str)
    print("\n".join(md))


if __name__ == "__main__":
    main()
