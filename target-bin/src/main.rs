//! aoe-xdp: an ATA-over-Ethernet target on AF_XDP.

mod cli;
mod export;
mod iface;
mod stats;
mod steer;
mod store;
mod worker;
mod xsk;

use std::collections::HashSet;
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aoe_proto::ata::Identity;
use aoe_proto::{ExportInfo, Target, TargetParams};
use clap::Parser;

use crate::cli::Cli;
use crate::iface::Interface;
use crate::stats::{Counters, SharedCounters};
use crate::steer::Steering;
use crate::store::Store;
use crate::worker::Worker;
use crate::xsk::{CopyMode, Queue, FRAME_SIZE, PACKET_OFFSET, RX_RING};

/// Firmware version advertised in Query Config.
const FIRMWARE_VERSION: u16 = 0x0001;
/// Room for the Ethernet, VLAN, AoE and ATA headers in front of the data.
const HEADERS: usize = 18 + 10 + 12;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line, as for every other error.
            let msg = e.to_string();
            let head = msg.split("\n\n").next().unwrap_or("invalid arguments");
            let head = head.strip_prefix("error: ").unwrap_or(head);
            let line = head.split_whitespace().collect::<Vec<_>>().join(" ");
            eprintln!("aoe-xdp: error: {line} (see --help)");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format(|f, record| {
            writeln!(
                f,
                "{} aoe-xdp {}: {}",
                f.timestamp_millis(),
                record.level(),
                record.args()
            )
        })
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aoe-xdp: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let mut seen = HashSet::new();
    for e in &cli.exports {
        if !seen.insert((e.shelf, e.slot)) {
            bail!("export {} is given twice", e.name());
        }
    }
    check_privileges()?;
    let iface = Interface::lookup(&cli.iface)?;
    if cli.queues > iface.rx_queues {
        bail!(
            "--queues {} but {} has {} RX queue(s)",
            cli.queues,
            iface.name,
            iface.rx_queues
        );
    }
    if cli.queues > steer::MAX_QUEUES {
        bail!("--queues {} is more than {}", cli.queues, steer::MAX_QUEUES);
    }

    let host = hostname();
    let mut stores = Vec::new();
    let mut infos = Vec::new();
    for e in &cli.exports {
        let mut opts = e.open_options();
        opts.sync |= cli.sync;
        let store = Store::open(&e.path, opts).with_context(|| format!("export {}", e.name()))?;
        let identity = Identity {
            serial: format!("{}.{}:{host}", e.shelf, e.slot),
            firmware: env!("CARGO_PKG_VERSION").into(),
            model: "aoe-xdp".into(),
            sectors: store.sectors(),
        };
        infos.push(ExportInfo::new(e.shelf, e.slot, e.read_only, &identity));
        log::info!(
            "export {}: {} ({}, {} sectors, {} MiB, {})",
            e.name(),
            e.path.display(),
            store.describe(),
            store.sectors(),
            store.sectors() / 2048,
            if e.read_only {
                "read-only"
            } else {
                "read-write"
            }
        );
        stores.push(store);
    }

    // The most sectors one frame can carry: by the MTU, and by what fits in
    // a UMEM frame after the headroom and headers.
    let by_frame = (FRAME_SIZE as usize - PACKET_OFFSET - HEADERS) / aoe_proto::SECTOR_SIZE;
    let max_sectors = aoe_proto::sectors_for_mtu(iface.mtu).min(by_frame as u8);
    if max_sectors == 0 {
        bail!(
            "the MTU of {} ({}) is too small for AoE",
            iface.name,
            iface.mtu
        );
    }
    let buffers = cli.buffers.min(RX_RING as u16);
    let target = Arc::new(Target::new(
        TargetParams {
            mac: iface.mac,
            buffer_count: buffers,
            firmware_version: FIRMWARE_VERSION,
            max_sectors,
        },
        infos,
    ));
    let stores = Arc::new(stores);

    let mut steering = Steering::attach(&iface.name, cli.xdp_mode)?;
    log::info!(
        "XDP program attached to {} in {} mode",
        iface.name,
        steering.mode
    );

    let mut queues = Vec::new();
    for q in 0..cli.queues {
        let queue = Queue::bind(&iface.name, q)?;
        steering.register(q, &queue)?;
        queues.push(queue);
    }
    let mode = queues[0].mode;
    log::info!(
        "{} AF_XDP socket(s) bound in {} mode{}",
        queues.len(),
        match mode {
            CopyMode::ZeroCopy => "zero-copy",
            CopyMode::Copy => "copy",
        },
        if mode == CopyMode::Copy {
            " (the driver offers no zero-copy)"
        } else {
            ""
        }
    );

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }

    let cores = core_affinity::get_core_ids().unwrap_or_default();
    if !cores.is_empty() && cores.len() < queues.len() {
        log::warn!(
            "{} queues but only {} usable core(s): workers will share cores",
            queues.len(),
            cores.len()
        );
    }
    let mut counters = Vec::new();
    let mut handles = Vec::new();
    for (i, queue) in queues.into_iter().enumerate() {
        let shared = Arc::new(SharedCounters::default());
        counters.push(Arc::clone(&shared));
        let mut worker = Worker::new(
            queue,
            Arc::clone(&target),
            Arc::clone(&stores),
            shared,
            Arc::clone(&stop),
        )
        .context("creating the worker's io_uring")?;
        let core = cores.get(i % cores.len().max(1)).copied();
        let handle = std::thread::Builder::new()
            .name(format!("aoe-q{i}"))
            .spawn(move || {
                if let Some(core) = core {
                    if !core_affinity::set_for_current(core) {
                        log::warn!("queue {i}: could not pin to core {}", core.id);
                    }
                }
                if i == 0 {
                    worker.announce();
                }
                worker.run();
            })
            .context("starting a worker thread")?;
        handles.push(handle);
    }
    log::info!(
        "serving {} export(s) on {} (MAC {}, MTU {}): queues 0-{}, {} sector(s) per request, buffer count {}",
        target.exports().len(),
        iface.name,
        format_mac(&iface.mac),
        iface.mtu,
        cli.queues - 1,
        max_sectors,
        buffers
    );

    let interval = Duration::from_secs(cli.stats_interval);
    let mut last_log = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        // Workers only return once asked to stop; one that returns before
        // is a fault, and serving with fewer queues would hide it.
        if !stop.load(Ordering::Relaxed) && handles.iter().any(|h| h.is_finished()) {
            stop.store(true, Ordering::Relaxed);
            log::error!("a worker thread stopped unexpectedly");
        }
        if !interval.is_zero() && last_log.elapsed() >= interval {
            last_log = Instant::now();
            for (q, c) in counters.iter().enumerate() {
                log::info!("stats queue={q} {}", c.snapshot());
            }
        }
    }
    log::info!("stopping");
    for h in handles {
        let _ = h.join();
    }
    for (q, c) in counters.iter().enumerate() {
        log::info!("stats queue={q} {}", c.snapshot());
    }
    let total = counters
        .iter()
        .fold(Counters::default(), |acc, c| acc.add(c.snapshot()));
    log::info!("stats total {total}");
    for store in stores.iter() {
        if let Err(e) = store.flush() {
            log::error!("final flush failed: {e}");
        }
    }
    drop(steering);
    log::info!("XDP program detached from {}", iface.name);
    Ok(())
}

/// Fails early, with a sentence, when the process cannot load BPF or open
/// AF_XDP sockets (root has every capability; others need these three).
fn check_privileges() -> Result<()> {
    const CAP_NET_ADMIN: u32 = 12;
    const CAP_NET_RAW: u32 = 13;
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_BPF: u32 = 39;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let Some(eff) = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    else {
        return Ok(()); // Cannot tell: let the kernel decide.
    };
    let has = |cap: u32| eff & (1 << cap) != 0;
    if has(CAP_NET_ADMIN) && has(CAP_NET_RAW) && (has(CAP_BPF) || has(CAP_SYS_ADMIN)) {
        Ok(())
    } else {
        bail!("insufficient privileges: run as root (needs CAP_BPF, CAP_NET_ADMIN and CAP_NET_RAW)")
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "aoe-xdp".into())
}

fn format_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
