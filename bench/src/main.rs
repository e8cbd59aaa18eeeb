//! aoe-bench: a user-space ATA-over-Ethernet initiator and load generator.
//!
//! Discovers one target with Query Config, sizes it with IDENTIFY, then
//! keeps `--depth` requests in flight from `--threads` pinned threads, each
//! on its own AF_PACKET socket with batched sendmmsg/recvmmsg, and reports
//! HdrHistogram latency percentiles, IOPS and throughput.

mod frames;
mod sock;
mod verify;
mod worker;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aoe_proto::ata::CMD_IDENTIFY;
use aoe_proto::wire::{AtaArg, Command, ATA_ARG_LEN};
use clap::Parser;
use hdrhistogram::Histogram;
use serde::Serialize;

use frames::{ConfigInfo, ARG_OFF};
use sock::{IfaceInfo, PacketSocket};
use worker::{Errors, Live, Report};

const EXAMPLES: &str = "\
Examples:
  # 10 s of random 2-sector writes, 16 in flight, against shelf 1 slot 1 on vethB:
  aoe-bench --iface vethB --target 1.1 --depth 16 --random --duration 10

  # 70% reads, two pinned sender threads, JSON on stdout:
  aoe-bench --iface vethB --target 1.1 --depth 64 --read-pct 70 --random --threads 2 --json

  # Data integrity: stamped writes and checked reads over the first 64 MiB,
  # remembering what was acknowledged; later check the whole region again:
  aoe-bench --iface vethB --target 1.1 --verify --read-pct 50 --random --region-mb 64 --state /tmp/aoe.state
  aoe-bench --iface vethB --target 1.1 --verify-only --region-mb 64 --state /tmp/aoe.state

  # A responder that cannot answer IDENTIFY: give the size yourself:
  aoe-bench --iface vethB --target 1.1 --sectors-total 524288 --depth 64

Exit status: 0 on success, 1 if any request failed (AoE or ATA error, timeout,
short reply, verify mismatch), 2 if the target could not be found or set up.";

#[derive(Parser, Debug)]
#[command(
    name = "aoe-bench",
    version,
    about = "ATA-over-Ethernet initiator and load generator (AF_PACKET, batched, pinned threads)",
    after_help = EXAMPLES
)]
struct Cli {
    /// Network interface the target is reachable on, e.g. `--iface vethB`.
    #[arg(long)]
    iface: String,

    /// Target address as SHELF.SLOT, e.g. `--target 1.1`.
    #[arg(long, value_parser = parse_target)]
    target: (u16, u8),

    /// Requests kept in flight in total (capped at the target's advertised
    /// buffer count unless --ignore-window), e.g. `--depth 64`.
    #[arg(long, default_value_t = 16)]
    depth: usize,

    /// Sectors per request; default min((MTU-36)/512, target's sector
    /// count): MTU 1500 gives 2. E.g. `--sectors 1`.
    #[arg(long)]
    sectors: Option<u8>,

    /// Percentage of requests that are reads (the rest are writes), e.g.
    /// `--read-pct 70`; 100 = read only, 0 = write only.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    read_pct: u8,

    /// Uniformly random request-aligned LBAs in the region (default:
    /// sequential, wrapping at the end of the region).
    #[arg(long)]
    random: bool,

    /// Run length in seconds, e.g. `--duration 10` (ignored by --verify-only,
    /// which reads the region once).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,

    /// Sender threads, each with its own socket and share of the window and
    /// region, pinned one per allowed core (replies are steered back by a
    /// packet fanout program on the tag), e.g. `--threads 2`.
    #[arg(long, default_value_t = 1)]
    threads: usize,

    /// Print one JSON object on stdout instead of the table (progress, if
    /// any, stays on stderr).
    #[arg(long)]
    json: bool,

    /// Stamp every written sector with its LBA and a generation and check
    /// every read against the last acknowledged generation; overlapping
    /// requests are never in flight together. Mismatches are errors.
    #[arg(long)]
    verify: bool,

    /// Only read the whole region back once and check it against --state
    /// (sectors without a recorded generation are accepted unless they are
    /// torn copies of ours), e.g. after a target crash.
    #[arg(long, conflicts_with = "verify")]
    verify_only: bool,

    /// State file of last acknowledged generations: loaded at start if it
    /// exists (--verify/--verify-only), saved at the end (--verify), e.g.
    /// `--state /tmp/aoe.state`.
    #[arg(long)]
    state: Option<PathBuf>,

    /// Limit I/O to the first N MiB of the target, e.g. `--region-mb 256`.
    #[arg(long)]
    region_mb: Option<u64>,

    /// Target capacity in sectors; skips IDENTIFY (for responders that do
    /// not answer it), e.g. `--sectors-total 524288`.
    #[arg(long)]
    sectors_total: Option<u64>,

    /// First retransmit timeout in milliseconds; each further retry doubles
    /// it (capped at 1 s). Every retransmit gets a new tag.
    #[arg(long, default_value_t = 50)]
    timeout_ms: u64,

    /// Retransmissions before a request is abandoned and counted as an error.
    #[arg(long, default_value_t = 8)]
    max_retries: u32,

    /// Zero-pad read requests to the size of their reply (36 + sectors x
    /// 512 bytes). Only for the XDP link-limit responder, which cannot grow
    /// a frame on veth; real targets ignore the padding, but the link then
    /// carries the data both ways.
    #[arg(long)]
    pad_reads: bool,

    /// Spin on non-blocking receives instead of sleeping until a reply
    /// arrives: takes the initiator's wake-up out of the latency (and a
    /// whole core per thread).
    #[arg(long)]
    busy_poll: bool,

    /// Use --depth even if the target advertises fewer buffers.
    #[arg(long)]
    ignore_window: bool,

    /// Frames per sendmmsg/recvmmsg call.
    #[arg(long, default_value_t = 64)]
    batch: usize,

    /// Do not pin threads to cores.
    #[arg(long)]
    no_pin: bool,

    /// No progress line on stderr.
    #[arg(long)]
    quiet: bool,

    /// Seconds to wait for the Query Config answer.
    #[arg(long, default_value_t = 5.0)]
    discover_timeout: f64,

    /// Discover (and IDENTIFY) the target, print what it says, and exit.
    #[arg(long)]
    discover_only: bool,

    /// Random seed (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
}

fn parse_target(s: &str) -> Result<(u16, u8), String> {
    let (a, b) = s
        .split_once('.')
        .ok_or_else(|| format!("expected SHELF.SLOT, got {s:?}"))?;
    let shelf: u16 = a.parse().map_err(|e| format!("shelf {a:?}: {e}"))?;
    let slot: u8 = b.parse().map_err(|e| format!("slot {b:?}: {e}"))?;
    if shelf == 0xffff || slot == 0xff {
        return Err("the broadcast address cannot be a target".into());
    }
    Ok((shelf, slot))
}

static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALLED.store(true, Ordering::Relaxed);
}

fn install_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe; signal(2) has no other preconditions.
        unsafe {
            libc::signal(
                sig,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
    }
}

/// Sends Query Config to SHELF.SLOT until the target answers.
fn discover(
    sock: &PacketSocket,
    ifi: &IfaceInfo,
    shelf: u16,
    slot: u8,
    timeout: Duration,
) -> Result<ConfigInfo, String> {
    let mut tx = [0u8; 64];
    let mut rx = vec![0u8; 65536];
    let tag = 0x8000_0000 | (std::process::id() & 0x00ff_ffff);
    let len = frames::query_config(&mut tx, &ifi.mac, shelf, slot, tag);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let answer = send_and_await(sock, &mut rx, &tx[..len], Duration::from_millis(250), |r| {
            // vblade also broadcasts an unsolicited config (tag 0) at
            // start; any config reply from the right address will do.
            if r.command == Command::QueryConfig
                && r.shelf == shelf
                && r.slot == slot
                && !r.is_error()
            {
                frames::parse_config(r).map(Ok)
            } else {
                None
            }
        })?;
        if let Some(c) = answer {
            return Ok(c);
        }
    }
    Err(format!(
        "no Query Config answer from {shelf}.{slot} within {:.1} s",
        timeout.as_secs_f64()
    ))
}

const IDENTIFY_REPLY_LEN: usize = aoe_proto::wire::ATA_DATA_OFFSET + 512;

/// Sends IDENTIFY DEVICE and returns the 512-byte page.
fn identify(sock: &PacketSocket, ifi: &IfaceInfo, cfg: &ConfigInfo) -> Result<Vec<u8>, String> {
    let mut tx = [0u8; 1024];
    let mut rx = vec![0u8; 65536];
    for attempt in 0..10u32 {
        let tag = 0x8000_0000 | 0x7f00_0000 | attempt;
        frames::put_headers(
            &mut tx,
            &cfg.mac,
            &ifi.mac,
            cfg.shelf,
            cfg.slot,
            Command::Ata,
        );
        frames::set_tag(&mut tx, tag);
        let len = frames::ata_request(&mut tx, CMD_IDENTIFY, false, false, 0, 1);
        // IDENTIFY has no LBA: undo the LBA28 device bits.
        tx[ARG_OFF + 4..ARG_OFF + 10].fill(0);
        // Every other attempt is zero-padded to the reply's size (as
        // aoe-sancheck pads IDENTIFY): a responder that cannot grow frames
        // (XDP on veth) can then answer in place; targets ignore the tail.
        let len = if attempt % 2 == 1 {
            tx[len..IDENTIFY_REPLY_LEN].fill(0);
            IDENTIFY_REPLY_LEN
        } else {
            len
        };
        let page = send_and_await(sock, &mut rx, &tx[..len], Duration::from_millis(300), |r| {
            if r.command != Command::Ata || r.tag != tag {
                return None;
            }
            Some(identify_page(r))
        })?;
        if let Some(page) = page {
            return Ok(page);
        }
    }
    Err("no IDENTIFY answer (use --sectors-total N to skip IDENTIFY)".into())
}

/// The 512-byte page of an IDENTIFY reply, or why there is none.
fn identify_page(r: &frames::Reply<'_>) -> Result<Vec<u8>, String> {
    if r.is_error() {
        return Err(format!("IDENTIFY: AoE error {}", r.error));
    }
    let arg = AtaArg::new_checked(r.arg).map_err(|_| "IDENTIFY: short reply")?;
    if arg.status() & 0x01 != 0 {
        return Err(format!(
            "IDENTIFY: ATA status {:#04x} err {:#04x}",
            arg.status(),
            arg.err()
        ));
    }
    let data = &r.arg[ATA_ARG_LEN..];
    if data.len() < 512 {
        return Err(format!("IDENTIFY: {} data bytes, want 512", data.len()));
    }
    Ok(data[..512].to_vec())
}

/// Sends `frame` once and waits up to `wait` for a reply that `accept`
/// recognises (`None`: not the one we wait for). `Ok(None)` on timeout.
fn send_and_await<T>(
    sock: &PacketSocket,
    rx: &mut [u8],
    frame: &[u8],
    wait: Duration,
    mut accept: impl FnMut(&frames::Reply<'_>) -> Option<Result<T, String>>,
) -> Result<Option<T>, String> {
    sock.send(frame).map_err(|e| format!("send: {e}"))?;
    let until = Instant::now() + wait;
    while Instant::now() < until {
        if !sock
            .poll_readable(until.saturating_duration_since(Instant::now()))
            .map_err(|e| format!("poll: {e}"))?
        {
            continue;
        }
        while let Some(n) = sock.recv_nowait(rx).map_err(|e| format!("recv: {e}"))? {
            let Some(r) = frames::parse_reply(&rx[..n]) else {
                continue;
            };
            if let Some(result) = accept(&r) {
                return result.map(Some);
            }
        }
    }
    Ok(None)
}

#[derive(Serialize)]
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

fn percentiles(h: &Histogram<u64>) -> Percentiles {
    let us = |ns: u64| ns as f64 / 1000.0;
    if h.is_empty() {
        return Percentiles {
            count: 0,
            min: 0.0,
            mean: 0.0,
            p50: 0.0,
            p90: 0.0,
            p99: 0.0,
            p99_9: 0.0,
            max: 0.0,
        };
    }
    Percentiles {
        count: h.len(),
        min: us(h.min()),
        mean: h.mean() / 1000.0,
        p50: us(h.value_at_quantile(0.50)),
        p90: us(h.value_at_quantile(0.90)),
        p99: us(h.value_at_quantile(0.99)),
        p99_9: us(h.value_at_quantile(0.999)),
        max: us(h.max()),
    }
}

#[derive(Serialize)]
struct TargetOut {
    #[serde(flatten)]
    config: ConfigInfo,
    sectors_total: u64,
    lba48: bool,
    model: Option<String>,
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
    batch: usize,
}

#[derive(Serialize)]
struct VerifyOut {
    sectors_checked: u64,
    sectors_with_expectation: u64,
    failures: u64,
    first_failures: Vec<String>,
}

#[derive(Serialize)]
struct Output {
    tool: &'static str,
    target: TargetOut,
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
    errors_total: u64,
    errors: Errors,
    verify: Option<VerifyOut>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("aoe-bench: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    install_signals();
    let (shelf, slot) = cli.target;
    if cli.threads == 0 || cli.threads > worker::MAX_THREADS {
        return Err(format!("--threads must be 1..={}", worker::MAX_THREADS));
    }
    if cli.depth == 0 {
        return Err("--depth must be at least 1".into());
    }
    let ifi = sock::iface_info(&cli.iface).map_err(|e| e.to_string())?;

    // Setup on a private socket, closed before the workers' sockets exist so
    // it does not take copies of their replies.
    let (cfg, ident, model) = {
        let ctl = PacketSocket::open(ifi.ifindex).map_err(|e| format!("AF_PACKET socket: {e}"))?;
        let cfg = discover(
            &ctl,
            &ifi,
            shelf,
            slot,
            Duration::from_secs_f64(cli.discover_timeout),
        )?;
        match cli.sectors_total {
            Some(n) => (
                cfg,
                frames::IdentifyInfo {
                    sectors: n,
                    lba48: true,
                },
                None,
            ),
            None => {
                let page = identify(&ctl, &ifi, &cfg)?;
                let info = frames::parse_identify(&page).ok_or("bad IDENTIFY page")?;
                (cfg, info, Some(frames::identify_model(&page)))
            }
        }
    };

    let adv_sectors = if cfg.sector_count == 0 {
        2
    } else {
        cfg.sector_count
    };
    let mtu_sectors = aoe_proto::sectors_for_mtu(ifi.mtu);
    let sectors = match cli.sectors {
        Some(0) => return Err("--sectors must be at least 1".into()),
        Some(n) if n > mtu_sectors => {
            return Err(format!(
                "--sectors {n} does not fit MTU {} (max {mtu_sectors})",
                ifi.mtu
            ))
        }
        Some(n) => {
            if n > adv_sectors {
                eprintln!("aoe-bench: warning: --sectors {n} exceeds the target's advertised {adv_sectors}");
            }
            n
        }
        None => mtu_sectors.min(adv_sectors),
    };
    if sectors == 0 {
        return Err(format!("MTU {} is too small for one sector", ifi.mtu));
    }
    let window = if cli.ignore_window {
        cli.depth
    } else {
        cli.depth.min(cfg.buffer_count.max(1) as usize)
    };
    let threads = cli.threads.min(window);
    if window / threads > worker::MAX_DEPTH_PER_THREAD {
        return Err(format!(
            "depth per thread is at most {}",
            worker::MAX_DEPTH_PER_THREAD
        ));
    }
    let mut region = ident.sectors;
    if let Some(mb) = cli.region_mb {
        region = region.min(mb * 2048);
    }
    let chunks_total = region / sectors as u64;
    if chunks_total == 0 {
        return Err(format!("region of {region} sectors holds no request"));
    }
    let verifying = cli.verify || cli.verify_only;
    if verifying && chunks_total < 2 * window as u64 {
        return Err(format!(
            "--verify needs at least {} request-sized chunks in the region (has {chunks_total})",
            2 * window
        ));
    }

    let target_out = TargetOut {
        config: cfg.clone(),
        sectors_total: ident.sectors,
        lba48: ident.lba48,
        model,
    };
    if cli.discover_only {
        if cli.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&target_out).expect("serializable")
            );
        } else {
            println!(
                "target {}.{} at {}: buffers {}, sectors/request {}, firmware {:#x}, capacity {} sectors ({:.1} MiB), lba48 {}, model {:?}",
                cfg.shelf,
                cfg.slot,
                frames::fmt_mac(&cfg.mac),
                cfg.buffer_count,
                adv_sectors,
                cfg.firmware,
                ident.sectors,
                ident.sectors as f64 / 2048.0,
                ident.lba48,
                target_out.model.as_deref().unwrap_or("-")
            );
        }
        return Ok(ExitCode::SUCCESS);
    }

    // Verify state: last acknowledged generation per sector of the region.
    let covered = chunks_total * sectors as u64;
    let mut state = verify::State::new(0, covered);
    if verifying {
        if let Some(path) = &cli.state {
            if path.exists() {
                let loaded = verify::State::load(path).map_err(|e| e.to_string())?;
                if loaded.first_lba != 0 {
                    return Err("state file region does not start at LBA 0".into());
                }
                let n = loaded.generations.len().min(state.generations.len());
                state.generations[..n].copy_from_slice(&loaded.generations[..n]);
                if loaded.generations.len() != state.generations.len() {
                    eprintln!(
                        "aoe-bench: warning: state file covers {} sectors, region {}",
                        loaded.generations.len(),
                        state.generations.len()
                    );
                }
            } else if cli.verify_only {
                return Err(format!("state file {} does not exist", path.display()));
            }
        }
    }
    let newest_before = state.newest();

    // Worker sockets, joined to the fanout group in thread order.
    let mut socks = Vec::with_capacity(threads);
    let fanout_id = (std::process::id() & 0xffff) as u16;
    for i in 0..threads {
        let s = PacketSocket::open(ifi.ifindex).map_err(|e| format!("AF_PACKET socket: {e}"))?;
        s.set_qdisc_bypass()
            .map_err(|e| format!("PACKET_QDISC_BYPASS: {e}"))?;
        s.set_recv_timeout(Duration::from_millis(1))
            .map_err(|e| format!("SO_RCVTIMEO: {e}"))?;
        if threads > 1 {
            s.join_fanout(fanout_id)
                .map_err(|e| format!("PACKET_FANOUT: {e}"))?;
            if i == 0 {
                s.set_fanout_tag_steering()
                    .map_err(|e| format!("PACKET_FANOUT_DATA: {e}"))?;
            }
        }
        socks.push(s);
    }

    let cores = if cli.no_pin {
        Vec::new()
    } else {
        core_affinity::get_core_ids().unwrap_or_default()
    };
    let seed = cli.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let stop = Arc::new(AtomicBool::new(false));
    let lives: Vec<Arc<Live>> = (0..threads).map(|_| Arc::new(Live::default())).collect();
    let rx_frame_len = (ifi.mtu + 18 + 64).max(2048);
    let mut handles = Vec::with_capacity(threads);
    // Generations only grow, across runs too: start from the clock in
    // microseconds (no run issues a write per microsecond per thread), so
    // data left by an earlier run always reads as older than this run's
    // acknowledged writes, with or without a state file.
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let gen_base = (newest_before + 1).max(now_us);
    let duration = Duration::from_secs_f64(cli.duration.max(0.0));
    let start = Instant::now();
    for (i, s) in socks.into_iter().enumerate() {
        let c0 = chunks_total * i as u64 / threads as u64;
        let c1 = chunks_total * (i as u64 + 1) / threads as u64;
        let depth = window / threads + usize::from(i < window % threads);
        let first = c0 * sectors as u64;
        let expected = if verifying {
            state.generations[first as usize..(c1 * sectors as u64) as usize].to_vec()
        } else {
            Vec::new()
        };
        let wc = worker::Config {
            id: i as u8,
            depth,
            src: ifi.mac,
            dst: cfg.mac,
            shelf,
            slot,
            lba48: ident.lba48,
            sectors,
            first_lba: first,
            chunks: c1 - c0,
            read_pct: cli.read_pct,
            random: cli.random,
            verify: cli.verify,
            verify_only: cli.verify_only,
            deadline: (!cli.verify_only).then(|| start + duration),
            pad_reads: cli.pad_reads,
            busy_poll: cli.busy_poll,
            expected,
            newest_before,
            gen_base,
            timeout: Duration::from_millis(cli.timeout_ms.max(1)),
            max_retries: cli.max_retries,
            batch: cli.batch,
            rx_frame_len,
            seed: seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            max_failure_reports: 10,
        };
        let core = if cores.is_empty() {
            None
        } else {
            Some(cores[i % cores.len()])
        };
        let stop = stop.clone();
        let live = lives[i].clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("aoe-bench-{i}"))
                .spawn(move || {
                    if let Some(c) = core {
                        core_affinity::set_for_current(c);
                    }
                    worker::run(wc, s, stop, live)
                })
                .map_err(|e| format!("spawn: {e}"))?,
        );
    }

    // Progress once a second; stop after --duration or on a signal.
    let tty = std::io::stderr().is_terminal();
    let mut last = (Instant::now(), 0u64, 0u64);
    let mut next_tick = start + Duration::from_secs(1);
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = Instant::now();
        if lives.iter().all(|l| l.done.load(Ordering::Acquire)) {
            break;
        }
        if SIGNALLED.load(Ordering::Relaxed) || (!cli.verify_only && now - start >= duration) {
            stop.store(true, Ordering::Relaxed);
        }
        if now >= next_tick {
            next_tick += Duration::from_secs(1);
            if !cli.quiet {
                let ops: u64 = lives.iter().map(|l| l.ops.load(Ordering::Relaxed)).sum();
                let bytes: u64 = lives.iter().map(|l| l.bytes.load(Ordering::Relaxed)).sum();
                let rt: u64 = lives
                    .iter()
                    .map(|l| l.retransmits.load(Ordering::Relaxed))
                    .sum();
                let er: u64 = lives.iter().map(|l| l.errors.load(Ordering::Relaxed)).sum();
                let dt = now.duration_since(last.0).as_secs_f64();
                let line = format!(
                    "[{:5.1}s] {:>10.0} IOPS {:>8.1} MB/s  ops {}  retransmits {}  errors {}",
                    (now - start).as_secs_f64(),
                    (ops - last.1) as f64 / dt,
                    (bytes - last.2) as f64 / dt / 1e6,
                    ops,
                    rt,
                    er
                );
                if tty {
                    eprint!("\r{line}\x1b[K");
                } else {
                    eprintln!("{line}");
                }
                last = (now, ops, bytes);
            }
        }
    }
    if tty && !cli.quiet {
        eprintln!();
    }
    let reports: Vec<Report> = handles
        .into_iter()
        .map(|h| h.join().expect("worker thread panicked"))
        .collect();
    let end = reports
        .iter()
        .map(|r| r.end)
        .max()
        .unwrap_or_else(Instant::now);
    let elapsed = end.duration_since(start).as_secs_f64();

    let mut read_h = worker::new_histogram();
    let mut write_h = worker::new_histogram();
    let mut errors = Errors::default();
    let (mut reads, mut writes, mut bytes, mut rt, mut stale) = (0, 0, 0, 0, 0);
    let (mut checked, mut with_exp) = (0, 0);
    let mut failures = Vec::new();
    let mut newest = newest_before;
    for r in &reports {
        read_h.add(&r.read_hist).expect("same bounds");
        write_h.add(&r.write_hist).expect("same bounds");
        errors.add(&r.errors);
        reads += r.reads;
        writes += r.writes;
        bytes += r.bytes_read + r.bytes_written;
        rt += r.retransmits;
        stale += r.stale;
        checked += r.sectors_verified;
        with_exp += r.sectors_with_expectation;
        failures.extend(r.failures.iter().cloned());
        newest = newest.max(r.newest_gen);
        if verifying {
            let off = r.first_lba as usize;
            state.generations[off..off + r.expected.len()].copy_from_slice(&r.expected);
        }
    }
    let mut all_h = read_h.clone();
    all_h.add(&write_h).expect("same bounds");
    let ops = reads + writes;
    let per_s = |n: u64| {
        if elapsed > 0.0 {
            n as f64 / elapsed
        } else {
            0.0
        }
    };

    if cli.verify {
        if let Some(path) = &cli.state {
            state
                .save(path)
                .map_err(|e| format!("saving {}: {e}", path.display()))?;
            if !cli.json {
                eprintln!(
                    "aoe-bench: state saved to {} (newest generation {newest})",
                    path.display()
                );
            }
        }
    }

    let out = Output {
        tool: "aoe-bench",
        target: target_out,
        config: ConfigOut {
            iface: cli.iface.clone(),
            mtu: ifi.mtu,
            depth_requested: cli.depth,
            depth: window,
            threads,
            sectors_per_request: sectors,
            read_pct: if cli.verify_only { 100 } else { cli.read_pct },
            random: cli.random,
            duration_s: cli.duration,
            verify: cli.verify,
            verify_only: cli.verify_only,
            pad_reads: cli.pad_reads,
            busy_poll: cli.busy_poll,
            region_sectors: covered,
            timeout_ms: cli.timeout_ms,
            max_retries: cli.max_retries,
            batch: cli.batch,
        },
        elapsed_s: elapsed,
        ops,
        reads,
        writes,
        iops: per_s(ops),
        read_iops: per_s(reads),
        write_iops: per_s(writes),
        mb_per_s: per_s(bytes) / 1e6,
        latency_us: percentiles(&all_h),
        read_latency_us: percentiles(&read_h),
        write_latency_us: percentiles(&write_h),
        retransmits: rt,
        stale_replies: stale,
        errors_total: errors.total(),
        errors,
        verify: verifying.then(|| VerifyOut {
            sectors_checked: checked,
            sectors_with_expectation: with_exp,
            failures: errors.verify,
            first_failures: failures.clone(),
        }),
    };
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("serializable")
        );
    } else {
        print_table(&out, &cfg);
    }
    for f in &failures {
        eprintln!("aoe-bench: {f}");
    }
    Ok(if out.errors_total > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_table(o: &Output, cfg: &ConfigInfo) {
    let c = &o.config;
    let mut s = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(
        s,
        "target {}.{} at {} (buffers {}, firmware {:#x}, {} sectors{}){}",
        cfg.shelf,
        cfg.slot,
        frames::fmt_mac(&cfg.mac),
        cfg.buffer_count,
        cfg.firmware,
        o.target.sectors_total,
        if o.target.lba48 { ", LBA48" } else { "" },
        o.target
            .model
            .as_deref()
            .map(|m| format!(" {m:?}"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        s,
        "{} on {} (MTU {}): depth {} (asked {}), {} thread(s), {} sectors/request, {}% reads, {}, region {:.1} MiB, {:.2} s",
        if c.verify_only { "verify-only" } else if c.verify { "verify" } else { "load" },
        c.iface,
        c.mtu,
        c.depth,
        c.depth_requested,
        c.threads,
        c.sectors_per_request,
        c.read_pct,
        if c.random { "random" } else { "sequential" },
        c.region_sectors as f64 / 2048.0,
        o.elapsed_s
    );
    let _ = writeln!(
        s,
        "{:<6} {:>10} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "", "ops", "IOPS", "MB/s", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "max µs"
    );
    let bytes_per_op = c.sectors_per_request as f64 * 512.0;
    for (name, n, iops, p) in [
        ("all", o.ops, o.iops, &o.latency_us),
        ("read", o.reads, o.read_iops, &o.read_latency_us),
        ("write", o.writes, o.write_iops, &o.write_latency_us),
    ] {
        if n == 0 && name != "all" {
            continue;
        }
        let _ = writeln!(
            s,
            "{:<6} {:>10} {:>11.0} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            name,
            n,
            iops,
            iops * bytes_per_op / 1e6,
            p.p50,
            p.p90,
            p.p99,
            p.p99_9,
            p.max
        );
    }
    let e = &o.errors;
    let _ = writeln!(
        s,
        "retransmits {}, stale replies {}, errors {} (aoe {}, ata {}, timeout {}, short {}, verify {}, mismatch {}), send failures {}",
        o.retransmits, o.stale_replies, o.errors_total, e.aoe, e.ata, e.timeout, e.short, e.verify, e.mismatch, e.send
    );
    if let Some(v) = &o.verify {
        let _ = writeln!(
            s,
            "verify: {} sectors checked ({} against a known generation), {} failures",
            v.sectors_checked, v.sectors_with_expectation, v.failures
        );
    }
    let _ = std::io::stdout().write_all(s.as_bytes());
}
