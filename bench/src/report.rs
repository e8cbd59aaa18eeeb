//! What a run prints: the progress line, the workers' reports merged into
//! one JSON object or a table, and the target for --discover-only.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cli::Cli;
use crate::discovery::Target;
use crate::frames;
use crate::plan::{Plan, Running, SECTORS_PER_MIB};
use crate::worker::{self, Errors, Report};

/// Prints a progress line once a second (unless `quiet`) until every
/// worker is done.
pub fn watch(running: &Running, quiet: bool) {
    let tty = std::io::stderr().is_terminal();
    let sum = |f: fn(&worker::Live) -> &AtomicU64| -> u64 {
        running
            .lives
            .iter()
            .map(|l| f(l).load(Ordering::Relaxed))
            .sum()
    };
    let (mut last_t, mut last_ops, mut last_bytes) = (running.start, 0, 0);
    let mut next_tick = running.start + Duration::from_secs(1);
    while !running.done() {
        std::thread::sleep(Duration::from_millis(20));
        let now = Instant::now();
        if quiet || now < next_tick {
            continue;
        }
        next_tick += Duration::from_secs(1);
        let (ops, bytes) = (sum(|l| &l.ops), sum(|l| &l.bytes));
        let dt = now.duration_since(last_t).as_secs_f64();
        let line = format!(
            "[{:5.1}s] {:>10.0} IOPS {:>8.1} MB/s  ops {}  retransmits {}  errors {}",
            (now - running.start).as_secs_f64(),
            (ops - last_ops) as f64 / dt,
            (bytes - last_bytes) as f64 / dt / 1e6,
            ops,
            sum(|l| &l.retransmits),
            sum(|l| &l.errors),
        );
        if tty {
            eprint!("\r{line}\x1b[K");
        } else {
            eprintln!("{line}");
        }
        (last_t, last_ops, last_bytes) = (now, ops, bytes);
    }
    if tty && !quiet && running.start.elapsed() >= Duration::from_secs(1) {
        eprintln!();
    }
}

#[derive(Serialize, Default)]
struct Percentiles {
    count: u64,
    min: f64,
    mean: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    p99_9: f64,
    max: f64,
}

impl Percentiles {
    /// Microseconds from a histogram of nanoseconds (all zero if empty).
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        let at = |q: f64| us(h.value_at_quantile(q));
        Self {
            count: h.len(),
            min: us(h.min()),
            mean: h.mean() / 1000.0,
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p99_9: at(0.999),
            max: us(h.max()),
        }
    }
}

#[derive(Serialize)]
struct ConfigOut {
    iface: String,
    mtu: usize,
    depth_requested: usize,
    depth: usize,
    threads: usize,
    sectors_per_request: u8,
    read_pct: u8,
    random: bool,
    duration_s: f64,
    verify: bool,
    verify_only: bool,
    pad_reads: bool,
    busy_poll: bool,
    region_sectors: u64,
    timeout_ms: u64,
    max_retries: u32,
    /// Frames per sendmmsg/recvmmsg call.
    batch: usize,
}

#[derive(Serialize)]
pub struct VerifyOut {
    pub sectors_checked: u64,
    pub sectors_with_expectation: u64,
    failures: u64,
    first_failures: Vec<String>,
}

/// The result of a run; `--json` prints it as is.
#[derive(Serialize)]
pub struct Output<'a> {
    tool: &'static str,
    target: &'a Target,
    config: ConfigOut,
    elapsed_s: f64,
    ops: u64,
    reads: u64,
    writes: u64,
    iops: f64,
    read_iops: f64,
    write_iops: f64,
    /// 10^6 bytes per second of sector data.
    mb_per_s: f64,
    latency_us: Percentiles,
    read_latency_us: Percentiles,
    write_latency_us: Percentiles,
    retransmits: u64,
    stale_replies: u64,
    pub errors_total: u64,
    errors: Errors,
    pub verify: Option<VerifyOut>,
    /// The workers' first failure messages, for stderr.
    #[serde(skip)]
    failures: Vec<String>,
}

impl<'a> Output<'a> {
    /// Merges the workers' reports of a run that started at `start`.
    pub fn new(
        cli: &Cli,
        mtu: usize,
        plan: &Plan,
        target: &'a Target,
        start: Instant,
        reports: &[Report],
    ) -> Self {
        let end = reports.iter().map(|r| r.end).max().unwrap_or(start);
        let elapsed = end.duration_since(start).as_secs_f64();
        let per_s = |n: u64| {
            if elapsed > 0.0 {
                n as f64 / elapsed
            } else {
                0.0
            }
        };
        let mut read_h = worker::new_histogram();
        let mut write_h = worker::new_histogram();
        let mut errors = Errors::default();
        let (mut reads, mut writes, mut bytes, mut retransmits, mut stale) = (0, 0, 0, 0, 0);
        let (mut checked, mut with_expectation) = (0, 0);
        let mut failures = Vec::new();
        for r in reports {
            read_h.add(&r.read_hist).expect("same bounds");
            write_h.add(&r.write_hist).expect("same bounds");
            errors.add(&r.errors);
            reads += r.reads;
            writes += r.writes;
            bytes += r.bytes_read + r.bytes_written;
            retransmits += r.retransmits;
            stale += r.stale;
            checked += r.sectors_verified;
            with_expectation += r.sectors_with_expectation;
            failures.extend(r.failures.iter().cloned());
        }
        let mut all_h = read_h.clone();
        all_h.add(&write_h).expect("same bounds");
        Self {
            tool: "aoe-bench",
            target,
            config: ConfigOut {
                iface: cli.iface.clone(),
                mtu,
                depth_requested: cli.depth,
                depth: plan.window,
                threads: plan.threads,
                sectors_per_request: plan.sectors,
                read_pct: if cli.verify_only { 100 } else { cli.read_pct },
                random: cli.random,
                duration_s: cli.duration,
                verify: cli.verify,
                verify_only: cli.verify_only,
                pad_reads: cli.pad_reads,
                busy_poll: cli.busy_poll,
                region_sectors: plan.region_sectors(),
                timeout_ms: cli.timeout_ms,
                max_retries: cli.max_retries,
                batch: crate::sock::MAX_BATCH,
            },
            elapsed_s: elapsed,
            ops: reads + writes,
            reads,
            writes,
            iops: per_s(reads + writes),
            read_iops: per_s(reads),
            write_iops: per_s(writes),
            mb_per_s: per_s(bytes) / 1e6,
            latency_us: Percentiles::of(&all_h),
            read_latency_us: Percentiles::of(&read_h),
            write_latency_us: Percentiles::of(&write_h),
            retransmits,
            stale_replies: stale,
            errors_total: errors.total(),
            errors,
            verify: cli.verifying().then(|| VerifyOut {
                sectors_checked: checked,
                sectors_with_expectation: with_expectation,
                failures: errors.verify,
                first_failures: failures.clone(),
            }),
            failures,
        }
    }

    /// JSON or the table on stdout, the failure messages on stderr.
    pub fn print(&self, json: bool) {
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(self).expect("serializable")
            );
        } else {
            let _ = std::io::stdout().write_all(self.table().as_bytes());
        }
        for f in &self.failures {
            eprintln!("aoe-bench: {f}");
        }
    }

    fn table(&self) -> String {
        let (c, t) = (&self.config, self.target);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "target {}.{} at {} (buffers {}, firmware {:#x}, {} sectors{}) {:?}",
            t.config.shelf,
            t.config.slot,
            t.config.mac,
            t.config.buffer_count,
            t.config.firmware,
            t.sectors,
            if t.lba48 { ", LBA48" } else { "" },
            t.model
        );
        let mode = match (c.verify_only, c.verify) {
            (true, _) => "verify-only",
            (_, true) => "verify",
            _ => "load",
        };
        let _ = writeln!(
            s,
            "{mode} on {} (MTU {}): depth {} (asked {}), {} thread(s), {} sectors/request, {}% reads, {}, region {:.1} MiB, {:.2} s",
            c.iface,
            c.mtu,
            c.depth,
            c.depth_requested,
            c.threads,
            c.sectors_per_request,
            c.read_pct,
            if c.random { "random" } else { "sequential" },
            c.region_sectors as f64 / SECTORS_PER_MIB as f64,
            self.elapsed_s
        );
        let _ = writeln!(
            s,
            "{:<6} {:>10} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "", "ops", "IOPS", "MB/s", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "max µs"
        );
        let bytes_per_op = frames::data_len(c.sectors_per_request) as f64;
        for (name, n, iops, p) in [
            ("all", self.ops, self.iops, &self.latency_us),
            ("read", self.reads, self.read_iops, &self.read_latency_us),
            (
                "write",
                self.writes,
                self.write_iops,
                &self.write_latency_us,
            ),
        ] {
            if n == 0 && name != "all" {
                continue;
            }
            let _ = writeln!(
                s,
                "{name:<6} {n:>10} {iops:>11.0} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                iops * bytes_per_op / 1e6,
                p.p50,
                p.p90,
                p.p99,
                p.p99_9,
                p.max
            );
        }
        let e = &self.errors;
        let _ = writeln!(
            s,
            "retransmits {}, stale replies {}, errors {} (aoe {}, ata {}, timeout {}, short {}, verify {}, mismatch {}), send failures {}",
            self.retransmits, self.stale_replies, self.errors_total, e.aoe, e.ata, e.timeout, e.short, e.verify, e.mismatch, e.send
        );
        if let Some(v) = &self.verify {
            let _ = writeln!(
                s,
                "verify: {} sectors checked ({} against a known generation), {} failures",
                v.sectors_checked, v.sectors_with_expectation, v.failures
            );
        }
        s
    }
}

/// --discover-only: what the target said, as JSON or one line.
pub fn print_target(t: &Target, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(t).expect("serializable"));
        return;
    }
    let c = &t.config;
    println!(
        "target {}.{} at {}: buffers {}, sectors/request {}, firmware {:#x}, capacity {} sectors ({:.1} MiB), lba48 {}, model {:?}",
        c.shelf,
        c.slot,
        c.mac,
        c.buffer_count,
        c.max_sectors(),
        c.firmware,
        t.sectors,
        t.sectors as f64 / SECTORS_PER_MIB as f64,
        t.lba48,
        t.model
    );
}
