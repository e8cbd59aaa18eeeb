#!/usr/bin/env python3
"""Turns one bench/run.sh result file into a markdown summary and an SVG plot.

usage: report.py RESULTS.json [--md summary.md] [--svg bench.svg]

Standard library only. Columns: IOPS, MB/s (10^6 bytes of sector data per
second), latency percentiles in microseconds, the target's peak resident
memory and CPU time, aoe-xdp/vblade ratios and the fraction of the XDP
link-limit responder's rate for the same operation and depth.
"""
import argparse
import json
import math
from html import escape

TARGETS = ["vblade", "aoe-xdp", "xdp-responder", "xdp-responder-inline",
           "vblade-d-loop", "aoe-xdp-mmap-loop", "aoe-xdp-direct-loop"]
# Which vblade each aoe-xdp row is compared with.
BASELINE = {"aoe-xdp": "vblade", "aoe-xdp-mmap-loop": "vblade-d-loop",
            "aoe-xdp-direct-loop": "vblade-d-loop"}
RESPONDERS = ["xdp-responder", "xdp-responder-inline"]
COLORS = {
    "vblade": "#d62728",
    "aoe-xdp": "#1f77b4",
    "xdp-responder": "#7f7f7f",
    "xdp-responder-inline": "#c7c7c7",
    "vblade-d-loop": "#ff9896",
    "aoe-xdp-mmap-loop": "#aec7e8",
    "aoe-xdp-direct-loop": "#2ca02c",
}
OPS = ["write", "read"]


def base_op(op):
    return "read" if op.startswith("read") else op


def load(path):
    d = json.load(open(path))
    rows = [c for c in d["cases"] if c.get("op") != "verify"]
    verify = [c for c in d["cases"] if c.get("op") == "verify"]
    return d, rows, verify


def index(rows):
    by = {}
    for r in rows:
        if r.get("bench"):
            by[(r["target"], base_op(r["op"]), r["depth"])] = r
    return by


def fmt(v, digits=0):
    if v is None:
        return "-"
    if isinstance(v, float) and math.isnan(v):
        return "-"
    return f"{v:,.{digits}f}"


def markdown(d, rows, verify):
    by = index(rows)
    depths = sorted({r["depth"] for r in rows})
    out = []
    out.append(f"# aoe-bench results: {d['name']}\n")
    out.append(
        f"{d['date_utc']}, kernel {d['kernel']}, {d['cpus']} CPUs, {d['bench_secs']:g} s per case. "
        "Each target runs pinned to core 0 in one network namespace, aoe-bench pinned to core 1 in "
        "another, over a fresh namespace pair and veth per target (MTU 1500, so 2 sectors = 1 KiB per request), "
        "random request-aligned LBAs over a 256 MiB file in /dev/shm, one aoe-bench thread "
        "(AF_PACKET, batched sendmmsg/recvmmsg"
        + (", busy-polling" if any((r.get("bench") or {}).get("config", {}).get("busy_poll") for r in rows) else "")
        + "). Depth is the number of requests in flight "
        f"(capped by the target's advertised buffer count; vblade runs with `-b {d.get('vblade_bufcnt', 64)}`).\n"
    )
    if "loadavg_before" in d:
        out.append(
            f"Commit {d.get('commit', '?')}; load average (1/5/15 min) before {d['loadavg_before']}, "
            f"after {d['loadavg_after']}: anything else running on these 2 cores shows up as noise, "
            "mostly in the p99/p99.9 columns.\n"
        )
    if d.get("chrt"):
        out.append(f"Targets and aoe-bench ran real-time: `{d['chrt']}`.\n")
    if d.get("skipped"):
        out.append(f"**Skipped:** {', '.join(d['skipped'])}\n")
    out.append(
        "| op | depth | target | IOPS | MB/s | p50 µs | p90 µs | p99 µs | p99.9 µs | retrans | errors "
        "| target RSS MiB (anon) | target CPU % | CPU µs/IO | aoe-xdp / vblade IOPS | aoe-xdp / vblade p50 | of XDP limit |"
    )
    out.append("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for op in OPS:
        for depth in depths:
            limits = [by[(t, op, depth)] for t in RESPONDERS if (t, op, depth) in by]
            limit = max(limits, key=lambda r: r["bench"]["iops"]) if limits else None
            for t in TARGETS:
                vb = by.get((BASELINE.get(t, ""), op, depth))
                r = by.get((t, op, depth))
                if not r:
                    continue
                b = r["bench"]
                lat = b["latency_us"]
                eff = b["config"]["depth"]
                dep = str(depth) if eff == depth else f"{depth} (eff. {eff})"
                rss = r.get("rss_kb")
                anon = r.get("rss_anon_kb")
                rss_text = fmt(rss / 1024 if rss else None, 1)
                if anon:
                    rss_text += " (%.1f)" % (anon / 1024)
                cpu = r.get("cpu_s")
                cpu_pct = 100.0 * cpu / b["elapsed_s"] if cpu is not None and b["elapsed_s"] else None
                ios = b["iops"] * b["elapsed_s"]
                cpu_per_io = 1e6 * cpu / ios if cpu is not None and ios else None
                ratio = ratio_p50 = ""
                if vb:
                    ratio = f"{b['iops'] / vb['bench']['iops']:.2f}x" if vb["bench"]["iops"] else "-"
                    vp = vb["bench"]["latency_us"]["p50"]
                    ratio_p50 = f"{lat['p50'] / vp:.2f}x" if vp else "-"
                frac = ""
                if limit and t not in RESPONDERS and limit["bench"]["iops"]:
                    frac = f"{100.0 * b['iops'] / limit['bench']['iops']:.0f}%"
                    if limit["op"] != r["op"]:
                        frac += " †"
                op_label = r["op"]
                out.append(
                    f"| {op_label} | {dep} | {t} | {fmt(b['iops'])} | {fmt(b['mb_per_s'], 1)} | "
                    f"{fmt(lat['p50'], 1)} | {fmt(lat['p90'], 1)} | {fmt(lat['p99'], 1)} | "
                    f"{fmt(lat['p99_9'], 1)} | {b['retransmits']} | {b['errors_total']} | "
                    f"{rss_text} | {fmt(cpu_pct)} | {fmt(cpu_per_io, 1)} | {ratio} | {ratio_p50} | {frac} |"
                )
    failed = [r for r in rows if not r.get("bench")]
    if failed:
        out.append("")
        for r in failed:
            out.append(f"- {r['target']} {r['op']} depth {r['depth']}: aoe-bench failed (exit {r['exit']})")
    out.append("")
    out.append(
        "† Fraction of the responder's *padded* read rate: the XDP responder cannot turn a 60-byte "
        "read request into a 1060-byte reply on veth (see below), so its read rows come from read "
        "requests padded to the reply size, which carry 1 KiB per frame in both directions."
    )
    out.append("")
    if verify:
        out.append("## --verify (50% reads, depth 16, first 64 MiB)\n")
        out.append("| target | result | ops | sectors checked | against a known generation | failures |")
        out.append("|---|---|---:|---:|---:|---:|")
        for v in verify:
            b = v.get("bench")
            if not b:
                out.append(f"| {v['target']} | FAILED (exit {v['exit']}, no output) | | | | |")
                continue
            vv = b.get("verify") or {}
            res = "pass" if v["exit"] == 0 else f"FAIL (exit {v['exit']}, {b['errors_total']} errors)"
            out.append(
                f"| {v['target']} | {res} | {fmt(b['ops'])} | {fmt(vv.get('sectors_checked'))} | "
                f"{fmt(vv.get('sectors_with_expectation'))} | {vv.get('failures', '-')} |"
            )
        out.append("")
    out.append("## Notes\n")
    out.append(
        "- **The XDP responder** (`bench/xdp-responder`) answers in the veth driver with XDP_TX and "
        "no storage: what the veth link and this kernel's packet path allow one aoe-bench thread, "
        "not a property of any target. Its writes are real AoE write exchanges (1060-byte "
        "request, 60-byte reply). `xdp-responder` runs it in the target veth's threaded NAPI "
        "pinned to core 0, where the targets run; `xdp-responder-inline` answers inside the "
        "softirq of aoe-bench's own send on core 1 (no cross-core wake-up, so the best depth-1 "
        "latency, but one core does everything). \"Of XDP limit\" is against the faster of the "
        "two for the same operation and depth. It is a reference point, not a strict ceiling: "
        "the threaded NAPI sleeps between batches and pays a cross-core wake-up for each (this "
        "kernel has no threaded NAPI busy-polling: `threaded=2` is refused), so at depth 1 and "
        "16 a busy-polling target such as aoe-xdp can beat it (values over 100%); at depth 64 "
        "batches are large and it shows the most the 2-core veth setup carried."
    )
    out.append(
        "- **Reads cannot be answered by it as is:** a read reply is 36 + 1024 bytes, the request "
        "60. `bpf_xdp_adjust_tail` can only grow a frame into the tailroom its buffer has, and veth "
        "copies a small skb into a page-pool fragment sized to the packet (headroom + ~64 bytes + "
        "skb_shared_info), so growing by 1000 bytes fails (the program counts it as `grow_failed` "
        "and drops). IDENTIFY (548 bytes) has the same problem; aoe-bench therefore retries "
        "IDENTIFY zero-padded to 548 bytes, as aoe-sancheck does, and `--pad-reads` pads read "
        "requests the same way, so the responder only rewrites and trims."
    )
    out.append(
        "- XDP_TX from the target's veth is dropped unless the initiator's veth runs NAPI: run.sh "
        "attaches a trivial XDP_PASS program there (turning GRO on did not help on this kernel)."
    )
    out.append(
        "- aoe-bench's own cost: with the inline responder all work (aoe-bench's sends, the "
        "responder's XDP and the reply's receive) runs on aoe-bench's core and `perf` shows ~97% "
        "of it in the kernel (AF_PACKET send/receive, veth, skb copies); user space is ~1-3%. "
        "One aoe-bench thread is thus limited by the kernel's per-frame AF_PACKET+veth cost, "
        "not by its own work; `--threads 2` spreads that over both cores."
    )
    out.append(
        "- With real-time scheduling (BENCH_RT=1), a thread that never sleeps is throttled for "
        "50 ms each second (sched_rt_runtime_us); that shows as ~50 ms maxima."
    )
    out.append(
        "- Target RSS is the peak VmRSS sampled twice a second; it counts pages of the exported "
        "file that the target has mapped (a target that mmaps the 256 MiB file shows up to "
        "256 MiB more than one that uses pread/pwrite). Target CPU % is its user+system time over "
        "the case's duration (softirq work done on its behalf by other contexts is not included)."
    )
    return "\n".join(out) + "\n"


def svg(d, rows):
    by = index(rows)
    depths = sorted({r["depth"] for r in rows})
    groups = [(op, dp) for op in OPS for dp in depths if any((t, op, dp) in by for t in TARGETS)]
    targets = [t for t in TARGETS if any((t, op, dp) in by for op, dp in groups)]
    W, H = 1000, 760
    left, right = 80, 20
    pw = W - left - right
    p1_top, p1_h = 84, 250
    p2_top, p2_h = 440, 260
    s = []
    s.append(f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
             f'font-family="sans-serif" font-size="12">')
    s.append(f'<rect width="{W}" height="{H}" fill="white"/>')
    s.append(f'<text x="{W / 2}" y="24" text-anchor="middle" font-size="16">'
             f'{escape(d["name"])}: random 1 KiB requests over veth ({d["bench_secs"]:g} s per case)</text>')
    # legend
    # Width by label length, wrapping to a second row when the first is full.
    lx, ly = left, 34
    for t in targets + [None]:
        label = t or "responder reads: padded requests"
        w = 24 + 7 * len(label)
        if lx + w > W - right:
            lx, ly = left, ly + 18
        if t:
            s.append(f'<rect x="{lx}" y="{ly}" width="12" height="12" fill="{COLORS[t]}"/>')
            s.append(f'<text x="{lx + 16}" y="{ly + 11}">{escape(t)}</text>')
        else:
            s.append(f'<text x="{lx}" y="{ly + 11}" fill="#555">{label}</text>')
        lx += w
    if not groups:
        s.append("</svg>")
        return "\n".join(s)
    gw = pw / len(groups)
    bw = gw * 0.8 / max(1, len(targets))

    def bars():
        """(target, op, depth, left edge, case) of every bar, in drawing order."""
        for gi, (op, dp) in enumerate(groups):
            for ti, t in enumerate(targets):
                if (t, op, dp) in by:
                    yield t, op, dp, left + gi * gw + gw * 0.1 + ti * bw, by[(t, op, dp)]

    def group_labels(y):
        for gi, (op, dp) in enumerate(groups):
            s.append(f'<text x="{left + gi * gw + gw / 2:.1f}" y="{y}" text-anchor="middle">{op} d{dp}</text>')

    # Panel 1: IOPS, linear.
    maxi = nice(max(r["bench"]["iops"] for *_, r in bars()))
    s.append(f'<text x="{left}" y="{p1_top - 4}" font-size="14">IOPS</text>')
    for i in range(6):
        v = maxi * i / 5
        y = p1_top + p1_h - p1_h * i / 5
        s.append(f'<line x1="{left}" x2="{W - right}" y1="{y}" y2="{y}" stroke="#ddd"/>')
        s.append(f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">{si(v)}</text>')
    for t, op, dp, x, r in bars():
        v = r["bench"]["iops"]
        h = p1_h * v / maxi
        s.append(f'<rect x="{x:.1f}" y="{p1_top + p1_h - h:.1f}" width="{bw - 2:.1f}" height="{h:.1f}" '
                 f'fill="{COLORS[t]}"><title>{escape(t)} {op} depth {dp}: {v:,.0f} IOPS</title></rect>')
        s.append(f'<text x="{x + bw / 2 - 1:.1f}" y="{p1_top + p1_h - h - 3:.1f}" text-anchor="middle" '
                 f'font-size="9">{si(v)}</text>')
    group_labels(p1_top + p1_h + 16)

    # Panel 2: latency percentiles, log scale: bar p50..p99, tick p99.9.
    lats = [r["bench"]["latency_us"] for *_, r in bars()]
    lo = min(max(0.1, l["p50"]) for l in lats)
    hi = max(max(l["p99_9"], l["p99"]) for l in lats)
    lo = 10 ** math.floor(math.log10(lo))
    hi = 10 ** math.ceil(math.log10(max(hi, lo * 10)))

    def ly(v):
        v = min(max(v, lo), hi)
        return p2_top + p2_h - p2_h * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    s.append(f'<text x="{left}" y="{p2_top - 4}" font-size="14">latency µs (log): '
             f'dot p50, bar p50–p99, dash p99.9</text>')
    dec = lo
    while dec <= hi * 1.0001:
        y = ly(dec)
        s.append(f'<line x1="{left}" x2="{W - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        s.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{si(dec)}</text>')
        dec *= 10
    for t, op, dp, x, r in bars():
        l = r["bench"]["latency_us"]
        x += (bw - 2) / 2
        s.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{ly(l["p50"]):.1f}" y2="{ly(l["p99"]):.1f}" '
                 f'stroke="{COLORS[t]}" stroke-width="{max(2, bw * 0.35):.1f}" opacity="0.6"/>')
        s.append(f'<circle cx="{x:.1f}" cy="{ly(l["p50"]):.1f}" r="4" fill="{COLORS[t]}">'
                 f'<title>{escape(t)} {op} depth {dp}: p50 {l["p50"]:.1f} p99 {l["p99"]:.1f} '
                 f'p99.9 {l["p99_9"]:.1f} µs</title></circle>')
        s.append(f'<line x1="{x - bw * 0.3:.1f}" x2="{x + bw * 0.3:.1f}" y1="{ly(l["p99_9"]):.1f}" '
                 f'y2="{ly(l["p99_9"]):.1f}" stroke="{COLORS[t]}" stroke-width="2"/>')
    group_labels(p2_top + p2_h + 16)
    s.append("</svg>")
    return "\n".join(s) + "\n"


def nice(v):
    if v <= 0:
        return 1
    e = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if m * e >= v:
            return m * e
    return 10 * e


def si(v):
    if v >= 1e6:
        return f"{v / 1e6:.3g}M"
    if v >= 1e3:
        return f"{v / 1e3:.3g}k"
    return f"{v:.3g}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("--md")
    ap.add_argument("--svg")
    a = ap.parse_args()
    d, rows, verify = load(a.results)
    md = markdown(d, rows, verify)
    if a.md:
        open(a.md, "w").write(md)
    else:
        print(md)
    if a.svg:
        open(a.svg, "w").write(svg(d, rows))


if __name__ == "__main__":
    main()
