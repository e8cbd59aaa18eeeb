#!/usr/bin/env python3
"""Turns one bench/run.sh result file into a markdown summary and an SVG plot.

usage: report.py RESULTS.json [--md summary.md] [--svg bench.svg]
                 [--before EARLIER.json] [--text]

Standard library only. First the goals, then aoe-xdp against each vblade
case by case (durable writes first): IOPS, p50/p99 latency in microseconds,
the target's CPU time per request and the aoe-xdp/vblade ratios, with those
ratios of an earlier run beside them (--before, else the run's own "before"
entry); then every case with MB/s, more percentiles, the target's peak
resident memory and the fraction of the XDP link-limit responder's rate.
--text prints the goals and the comparison to stdout.
"""
import argparse
import json
import math
import os
from html import escape

# name: (medium, colour), in the order of the tables and the plot. The last
# two are targets of runs before durable exports.
TARGETS = {
    "aoe-xdp": ("file", "#1f77b4"),
    "aoe-xdp-direct": ("file", "#17becf"),
    "vblade-s": ("file", "#d62728"),
    "vblade-d-s": ("file", "#ff7f0e"),
    "aoe-xdp-loop": ("loop", "#2ca02c"),
    "vblade-s-loop": ("loop", "#8c564b"),
    "vblade-d-s-loop": ("loop", "#e377c2"),
    "aoe-xdp-writeback": ("file", "#aec7e8"),
    "vblade": ("file", "#ff9896"),
    "aoe-xdp-writeback-loop": ("loop", "#98df8a"),
    "vblade-d-loop": ("loop", "#c49c94"),
    "xdp-responder": (None, "#7f7f7f"),
    "xdp-responder-inline": (None, "#c7c7c7"),
    "aoe-xdp-mmap-loop": ("loop", "#dbdb8d"),
    "aoe-xdp-direct-loop": ("loop", "#bcbd22"),
}
RESPONDERS = ["xdp-responder", "xdp-responder-inline"]
SECTIONS = ["durable write", "write, not durable", "read"]
# (section, aoe-xdp target, vblade target), durable first.
PAIRS = [
    ("durable write", "aoe-xdp", "vblade-s"),
    ("durable write", "aoe-xdp", "vblade-d-s"),
    ("durable write", "aoe-xdp-direct", "vblade-d-s"),
    ("durable write", "aoe-xdp-loop", "vblade-s-loop"),
    ("durable write", "aoe-xdp-loop", "vblade-d-s-loop"),
    ("write, not durable", "aoe-xdp-writeback", "vblade"),
    ("write, not durable", "aoe-xdp-writeback-loop", "vblade-d-loop"),
    ("read", "aoe-xdp", "vblade"),
    ("read", "aoe-xdp-loop", "vblade-d-loop"),
]
# What an aoe-xdp target was called in runs before durable exports (no
# "format" in their JSON), where every export acknowledged from the cache.
OLD_NAMES = {
    ("aoe-xdp-writeback", "write"): "aoe-xdp",
    ("aoe-xdp-writeback-loop", "write"): "aoe-xdp-direct-loop",
    ("aoe-xdp", "read"): "aoe-xdp",
    ("aoe-xdp-loop", "read"): "aoe-xdp-direct-loop",
}
GOAL_IOPS = 5.0  # durable writes at depth 16: at least this times vblade -s


def by_medium(targets):
    """targets, those on the file first, then on the loop device, then the rest."""
    rank = {"file": 0, "loop": 1}
    return sorted(targets, key=lambda t: rank.get(TARGETS[t][0], 2))


def base_op(op):
    return "read" if op.startswith("read") else op


def section(r):
    if base_op(r["op"]) == "read":
        return "read"
    return "durable write" if r.get("durable") else "write, not durable"


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


def cpu_per_io(r):
    b = r["bench"]
    cpu = r.get("cpu_s")
    ios = b["iops"] * b["elapsed_s"]
    return 1e6 * cpu / ios if cpu is not None and ios else None


def ratio(a, b):
    return a / b if a is not None and b else None


def fx(v):
    return "-" if v is None else f"{v:.2f}x"


def comparisons(by, depths, before_by, old_before):
    """One dict per aoe-xdp/vblade pair and depth that both ran, in table order."""
    out = []
    for sec in SECTIONS:
        for medium in ("file", "loop"):
            for depth in depths:
                for s, t, v in PAIRS:
                    if s != sec or TARGETS[t][0] != medium:
                        continue
                    op = "read" if sec == "read" else "write"
                    r, vb = by.get((t, op, depth)), by.get((v, op, depth))
                    if not r or not vb:
                        continue
                    c = {"section": sec, "medium": medium, "depth": depth, "target": t,
                         "vblade": v, "r": r, "vb": vb,
                         "iops_x": ratio(r["bench"]["iops"], vb["bench"]["iops"]),
                         "p50_x": ratio(r["bench"]["latency_us"]["p50"], vb["bench"]["latency_us"]["p50"])}
                    if before_by is not None:
                        bt = OLD_NAMES.get((t, op), None if sec == "durable write" else t) if old_before else t
                        br, bv = before_by.get((bt, op, depth)), before_by.get((v, op, depth))
                        if br:
                            c["before"] = (br["bench"]["iops"],
                                           ratio(br["bench"]["iops"], bv["bench"]["iops"]) if bv else None)
                    c["goal"], c["met"] = goal(c)
                    out.append(c)
    return out


def goal(c):
    """(what the pair is judged by, met?) or (None, None)."""
    durable = c["section"] == "durable write"
    if durable and c["vblade"].startswith("vblade-s") and c["depth"] == 16:
        return f"IOPS ≥ {GOAL_IOPS:g}x", c["iops_x"] is not None and c["iops_x"] >= GOAL_IOPS
    if durable and c["vblade"].startswith("vblade-d-s") and c["depth"] == 1:
        return "p50 ≤ vblade's", c["p50_x"] is not None and c["p50_x"] <= 1.0
    if c["section"] == "read" and c.get("before") and c["before"][1] is not None:
        return (f"IOPS ratio ≥ before's ({c['before'][1]:.2f}x)",
                c["iops_x"] is not None and c["iops_x"] >= c["before"][1])
    return None, None


def goals_text(cmp):
    out = []
    for c in cmp:
        if c["goal"] is None:
            continue
        r, vb = c["r"]["bench"], c["vb"]["bench"]
        what = f"{c['section']}, {c['medium']}, depth {c['depth']}: {c['target']} "
        if c["goal"].startswith("p50"):
            what += (f"p50 {r['latency_us']['p50']:.1f} µs, {c['vblade']} {vb['latency_us']['p50']:.1f} µs "
                     f"({fx(c['p50_x'])})")
        else:
            what += f"{r['iops']:,.0f} IOPS, {c['vblade']} {vb['iops']:,.0f} ({fx(c['iops_x'])})"
        out.append(f"- {'met' if c['met'] else '**missed**'}: {what}; goal {c['goal']}")
    return out


def comparison_table(cmp, before_name):
    out = []
    head = ("| case | medium | depth | aoe-xdp target | IOPS | p50 µs | p99 µs | CPU µs/IO "
            "| against | IOPS | p50 µs | p99 µs | CPU µs/IO | aoe-xdp / vblade IOPS | aoe-xdp / vblade p50 | goal |")
    rule = "|---|---|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|"
    if before_name:
        head += f" before ({before_name}): aoe-xdp IOPS (/ vblade) |"
        rule += "---:|"
    out += [head, rule]
    for c in cmp:
        r, vb = c["r"], c["vb"]
        cells = [c["section"], c["medium"], str(c["depth"]), c["target"]]
        for x in (r, vb):
            if x is vb:
                cells.append(c["vblade"])
            b = x["bench"]
            cells += [fmt(b["iops"]), fmt(b["latency_us"]["p50"], 1), fmt(b["latency_us"]["p99"], 1),
                      fmt(cpu_per_io(x), 1)]
        g = ""
        if c["goal"]:
            g = f"{c['goal']}: {'met' if c['met'] else '**missed**'}"
        cells += [fx(c["iops_x"]), fx(c["p50_x"]), g]
        if before_name:
            b = c.get("before")
            cells.append(f"{fmt(b[0])} ({fx(b[1])})" if b else "")
        out.append("| " + " | ".join(cells) + " |")
    return out


def markdown(d, rows, verify, before):
    by = index(rows)
    depths = sorted({r["depth"] for r in rows})
    before_name, before_by, old_before = None, None, False
    if before:
        bd, brows, _ = before
        before_name, before_by, old_before = bd["name"], index(brows), "format" not in bd
    cmp = comparisons(by, depths, before_by, old_before)
    disk = d.get("disk")
    out = []
    out.append(f"# aoe-bench results: {d['name']}\n")
    if disk:
        where = (f"a {disk['mb']} MiB file on {disk['fstype']} ({disk['source']}), written in full with "
                 "zeros and synced before the first target (not sparse: no target allocates blocks), "
                 "then read back into the page cache before every target, so each starts from the same "
                 "state; `sync` before every case. \"loop\" rows serve the same file through a loop device "
                 "(losetup's default: buffered, a flush of the device fsyncs the file), read into the "
                 "page cache as well")
    else:
        where = "a 256 MiB file in /dev/shm"
    out.append(
        f"{d['date_utc']}, kernel {d['kernel']}, {d['cpus']} CPUs, {d['bench_secs']:g} s per case. "
        "Each target runs pinned to core 0 in one network namespace, aoe-bench pinned to core 1 in "
        "another, over a fresh namespace pair and veth per target (MTU 1500, so 2 sectors = 1 KiB per "
        f"request), random request-aligned LBAs over {where}; one aoe-bench thread "
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
    goals = goals_text(cmp)
    if goals:
        out.append("## Goals\n")
        out += goals
        out.append("")
    if cmp:
        out.append("## aoe-xdp against vblade\n")
        out.append(
            "Durable: acknowledged once on stable storage (aoe-xdp's default: writes in flight share one "
            "fdatasync; `vblade -s` opens with O_SYNC, `-d -s` with O_DIRECT|O_SYNC: one synchronous "
            "write per request). Not durable: acknowledged from the page cache (aoe-xdp `writeback`, "
            "plain vblade) or, on the loop device, once the O_DIRECT write is done (aoe-xdp "
            "`writeback` on a block device, `vblade -d`). CPU µs/IO: the target's own CPU time (all "
            "its threads) per request.\n"
        )
        if before_name:
            out.append(
                f"Before: the same aoe-xdp/vblade pair in {before_name}"
                + (" (a run before durable exports: its aoe-xdp acknowledged writes from the page cache "
                   "(mmap) or after the O_DIRECT write, so it is shown beside the not-durable rows, and "
                   "its file was in /dev/shm)" if old_before else "")
                + ". Runs on a shared machine differ by several percent; the ratios are steadier than "
                "the IOPS.\n"
            )
        out += comparison_table(cmp, before_name)
        out.append("")
    cmds = {}
    for r in rows:
        if r.get("cmd"):
            cmds.setdefault(r["target"], (r["cmd"], r.get("durable")))
    if cmds:
        out.append("## Targets\n")
        for t in [t for t in TARGETS if t in cmds]:
            cmd, dur = cmds[t]
            kind = {True: "durable", False: "not durable", None: "no storage"}[dur]
            out.append(f"- `{t}`: `{cmd}` ({kind})")
        out.append("")
    out.append("## All cases\n")
    out.append(
        "| kind | op | medium | depth | target | IOPS | MB/s | p50 µs | p90 µs | p99 µs | p99.9 µs | retrans "
        "| errors | target RSS MiB (anon) | target CPU % | CPU µs/IO | of XDP limit |"
    )
    out.append("|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for sec in SECTIONS:
        for depth in depths:
            op = "read" if sec == "read" else "write"
            limits = [by[(t, op, depth)] for t in RESPONDERS if (t, op, depth) in by]
            limit = max(limits, key=lambda r: r["bench"]["iops"]) if limits else None
            for t in by_medium(TARGETS):
                r = by.get((t, op, depth))
                if not r or section(r) != sec:
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
                frac = ""
                # The link's limit says nothing about a durable write.
                if limit and t not in RESPONDERS and limit["bench"]["iops"] and sec != "durable write":
                    frac = f"{100.0 * b['iops'] / limit['bench']['iops']:.0f}%"
                    if limit["op"] != r["op"]:
                        frac += " †"
                kind = {"durable write": "durable", "write, not durable": "not durable"}.get(sec, "")
                if t in RESPONDERS:
                    kind = "no storage"
                out.append(
                    f"| {kind} | {r['op']} | {TARGETS[t][0] or '-'} | {dep} | {t} | {fmt(b['iops'])} | "
                    f"{fmt(b['mb_per_s'], 1)} | "
                    f"{fmt(lat['p50'], 1)} | {fmt(lat['p90'], 1)} | {fmt(lat['p99'], 1)} | "
                    f"{fmt(lat['p99_9'], 1)} | {b['retransmits']} | {b['errors_total']} | "
                    f"{rss_text} | {fmt(cpu_pct)} | {fmt(cpu_per_io(r), 1)} | {frac} |"
                )
    failed = [r for r in rows if not r.get("bench")]
    if failed:
        out.append("")
        for r in failed:
            out.append(f"- {r['target']} {r['op']} depth {r['depth']}: aoe-bench failed (exit {r['exit']})")
    out.append("")
    if any(r["op"] != base_op(r["op"]) for r in rows):
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
        order = list(TARGETS)
        for v in sorted(verify, key=lambda v: order.index(v["target"]) if v["target"] in order else len(order)):
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
        "- **CPU time** counts the target process (all its threads, io_uring workers included), "
        "not kernel threads working for it: the loop device's worker, the filesystem's journal, "
        "writeback. Those run for every target alike but are missing from every row, so durable "
        "and loop rows understate the real cost. Target CPU % is its user+system time over the "
        "case's duration (softirq work done on its behalf by other contexts is not included). "
        "aoe-xdp's worker spins for up to 200 µs for the next frame before it sleeps (30 µs "
        "while storage I/O is in flight), so where requests wait for the disk (durable writes, "
        "low IOPS) its CPU per request includes some spinning; vblade sleeps in the system call "
        "instead."
    )
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
        "kernel has no threaded NAPI busy-polling: `threaded=2` is refused), so a busy-polling "
        "target such as aoe-xdp can beat it (values over 100%)."
    )
    out.append(
        "- **Reads cannot be answered by it as is:** a read reply is 36 + 1024 bytes, the request "
        "60. `bpf_xdp_adjust_tail` can only grow a frame into the tailroom its buffer has, and veth "
        "copies a small skb into a page-pool fragment sized to the packet (headroom + ~64 bytes + "
        "skb_shared_info), so growing by 1000 bytes fails (the program counts it as `grow_failed` "
        "and drops). IDENTIFY (548 bytes) has the same problem; aoe-bench therefore retries "
        "IDENTIFY zero-padded to 548 bytes, as aoe-sancheck does, and `--pad-reads` "
        "(BENCH_RESPONDER_READS=1) pads read requests the same way, so the responder only rewrites "
        "and trims."
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
        "file that the target has mapped (none for aoe-xdp's buffered and direct backends or "
        "vblade, which read and write through system calls)."
    )
    return "\n".join(out) + "\n", cmp, goals, before_name


def svg(d, rows):
    by = index(rows)
    depths = sorted({r["depth"] for r in rows})
    # One group per kind and depth: its bars are the targets that ran it.
    groups = []
    for sec in SECTIONS:
        for dp in depths:
            op = "read" if sec == "read" else "write"
            ts = [t for t in by_medium(TARGETS) if (t, op, dp) in by and section(by[(t, op, dp)]) == sec]
            if ts:
                groups.append((sec, op, dp, ts))
    targets = [t for t in TARGETS if any(t in g[3] for g in groups)]
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
    # Legend, by label length, wrapping to a second row when the first is full.
    lx, ly = left, 34
    for t in targets:
        w = 24 + 7 * len(t)
        if lx + w > W - right:
            lx, ly = left, ly + 18
        s.append(f'<rect x="{lx}" y="{ly}" width="12" height="12" fill="{TARGETS[t][1]}"/>')
        s.append(f'<text x="{lx + 16}" y="{ly + 11}">{escape(t)}</text>')
        lx += w
    if not groups:
        s.append("</svg>")
        return "\n".join(s)
    gw = pw / len(groups)
    bw = gw * 0.8 / max(len(g[3]) for g in groups)

    def bars():
        """(target, op, depth, left edge, case) of every bar, in drawing order."""
        for gi, (_, op, dp, ts) in enumerate(groups):
            x0 = left + gi * gw + (gw - bw * len(ts)) / 2
            for ti, t in enumerate(ts):
                yield t, op, dp, x0 + ti * bw, by[(t, op, dp)]

    def group_labels(y):
        for gi, (sec, _, dp, _) in enumerate(groups):
            x = left + gi * gw + gw / 2
            s.append(f'<text x="{x:.1f}" y="{y}" text-anchor="middle">{escape(sec)}</text>')
            s.append(f'<text x="{x:.1f}" y="{y + 14}" text-anchor="middle">depth {dp}</text>')

    def log_axis(top, height, lo, hi):
        """y of a value on a log axis from lo to hi, and its decade lines."""
        def y(v):
            v = min(max(v, lo), hi)
            return top + height - height * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
        dec = lo
        while dec <= hi * 1.0001:
            s.append(f'<line x1="{left}" x2="{W - right}" y1="{y(dec):.1f}" y2="{y(dec):.1f}" stroke="#ddd"/>')
            s.append(f'<text x="{left - 6}" y="{y(dec) + 4:.1f}" text-anchor="end">{si(dec)}</text>')
            dec *= 10
        return y

    def decades(values):
        lo = 10 ** math.floor(math.log10(max(0.1, min(values))))
        hi = 10 ** math.ceil(math.log10(max(max(values), lo * 10)))
        return lo, hi

    # Panel 1: IOPS, log scale (durable and cached writes differ by orders of magnitude).
    iops = [max(1.0, r["bench"]["iops"]) for *_, r in bars()]
    s.append(f'<text x="{left}" y="{p1_top - 4}" font-size="14">IOPS (log)</text>')
    y1 = log_axis(p1_top, p1_h, *decades(iops))
    for t, op, dp, x, r in bars():
        v = r["bench"]["iops"]
        top = y1(max(1.0, v))
        s.append(f'<rect x="{x:.1f}" y="{top:.1f}" width="{bw - 2:.1f}" height="{p1_top + p1_h - top:.1f}" '
                 f'fill="{TARGETS[t][1]}"><title>{escape(t)} {op} depth {dp}: {v:,.0f} IOPS</title></rect>')
        s.append(f'<text x="{x + bw / 2 - 1:.1f}" y="{top - 3:.1f}" text-anchor="middle" '
                 f'font-size="9">{si(v)}</text>')
    group_labels(p1_top + p1_h + 16)

    # Panel 2: latency percentiles, log scale: bar p50..p99, tick p99.9.
    lats = [r["bench"]["latency_us"] for *_, r in bars()]
    s.append(f'<text x="{left}" y="{p2_top - 4}" font-size="14">latency µs (log): '
             f'dot p50, bar p50–p99, dash p99.9</text>')
    y2 = log_axis(p2_top, p2_h, *decades([l["p50"] for l in lats] + [max(l["p99_9"], l["p99"]) for l in lats]))
    for t, op, dp, x, r in bars():
        l = r["bench"]["latency_us"]
        c = TARGETS[t][1]
        x += (bw - 2) / 2
        s.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y2(l["p50"]):.1f}" y2="{y2(l["p99"]):.1f}" '
                 f'stroke="{c}" stroke-width="{max(2, bw * 0.35):.1f}" opacity="0.6"/>')
        s.append(f'<circle cx="{x:.1f}" cy="{y2(l["p50"]):.1f}" r="4" fill="{c}">'
                 f'<title>{escape(t)} {op} depth {dp}: p50 {l["p50"]:.1f} p99 {l["p99"]:.1f} '
                 f'p99.9 {l["p99_9"]:.1f} µs</title></circle>')
        s.append(f'<line x1="{x - bw * 0.3:.1f}" x2="{x + bw * 0.3:.1f}" y1="{y2(l["p99_9"]):.1f}" '
                 f'y2="{y2(l["p99_9"]):.1f}" stroke="{c}" stroke-width="2"/>')
    group_labels(p2_top + p2_h + 16)
    s.append("</svg>")
    return "\n".join(s) + "\n"


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
    ap.add_argument("--before", help="an earlier run's JSON (default: the run's own \"before\" entry)")
    ap.add_argument("--text", action="store_true", help="print the goals and the comparison to stdout")
    a = ap.parse_args()
    d, rows, verify = load(a.results)
    before_path = a.before if a.before is not None else d.get("before")
    before = None
    if before_path:
        if not os.path.isabs(before_path) and not os.path.exists(before_path):
            before_path = os.path.join(os.path.dirname(a.results), os.path.basename(before_path))
        if os.path.exists(before_path):
            before = load(before_path)
    md, cmp, goals, before_name = markdown(d, rows, verify, before)
    if a.md:
        open(a.md, "w").write(md)
    elif not a.text:
        print(md)
    if a.text:
        print("\n".join(["Goals:"] + (goals or ["(none of their cases ran)"]) + [""]
                        + comparison_table(cmp, before_name)))
    if a.svg:
        open(a.svg, "w").write(svg(d, rows))


if __name__ == "__main__":
    main()
