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
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aoe_proto::ata::Identity;
use aoe_proto::{ExportInfo, Target, TargetParams};
use clap::Parser;

use crate::cli::Cli;
use crate::iface::Interface;
use crate::stats::{Counters, SharedCounters};
use crate::steer::Steering;
use crate::store::{Backend, Durability, Store};
use crate::worker::Worker;
use crate::xsk::{CopyMode, Queue, FRAME_CAPACITY, RX_RING};

/// Firmware version advertised in Query Config.
const FIRMWARE_VERSION: u16 = 0x0001;

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
    check_exports_unique(&cli)?;
    check_privileges()?;
    let iface = Interface::lookup(&cli.iface)?;
    check_queues(&cli, &iface)?;
    let (stores, infos) = open_exports(&cli)?;
    let max_sectors = sectors_per_request(&iface)?;
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
    let queues = bind_queues(&iface, cli.queues, &mut steering)?;

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    let workers = spawn_workers(queues, &target, &stores, &stop)?;
    log::info!(
        "serving {} export(s) on {} (MAC {}, MTU {}): queues 0-{}, {} sector(s) per request, buffer count {}",
        target.exports().len(),
        iface.name,
        iface.mac,
        iface.mtu,
        cli.queues - 1,
        max_sectors,
        buffers
    );

    supervise(&workers, &stop, Duration::from_secs(cli.stats_interval));
    log::info!("stopping");
    shut_down(workers, &stores);
    drop(steering);
    log::info!("XDP program detached from {}", iface.name);
    Ok(())
}

fn check_exports_unique(cli: &Cli) -> Result<()> {
    let mut seen = HashSet::new();
    for e in &cli.exports {
        if !seen.insert((e.shelf, e.slot)) {
            bail!("export {} is given twice", e.name());
        }
    }
    Ok(())
}

fn check_queues(cli: &Cli, iface: &Interface) -> Result<()> {
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
    Ok(())
}

/// Opens every export's store and describes it to the protocol core.
fn open_exports(cli: &Cli) -> Result<(Vec<Store>, Vec<ExportInfo>)> {
    let host = hostname();
    let mut stores = Vec::new();
    let mut infos = Vec::new();
    for e in &cli.exports {
        let opts = e.open_options(if cli.writeback {
            Durability::Writeback
        } else {
            Durability::Durable
        });
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
        if store.extent().durability == Durability::Writeback && !e.read_only {
            log::warn!(
                "export {}: writeback: writes are acknowledged from the {}, so a power cut of this node loses the acknowledged writes not yet written back (the Linux initiator never sends FLUSH; see docs/durability.md)",
                e.name(),
                match store.backend() {
                    Backend::Buffered => "page cache",
                    Backend::Direct => "device's volatile write cache",
                }
            );
        }
        stores.push(store);
    }
    Ok((stores, infos))
}

/// The most sectors one request may carry: by the MTU, and by what fits in
/// a UMEM frame behind the longest header stack.
fn sectors_per_request(iface: &Interface) -> Result<u8> {
    let by_frame = (FRAME_CAPACITY - aoe_proto::wire::MAX_ATA_HEADERS_LEN) / aoe_proto::SECTOR_SIZE;
    let sectors = aoe_proto::sectors_for_mtu(iface.mtu).min(by_frame as u8);
    if sectors == 0 {
        bail!(
            "the MTU of {} ({}) is too small for AoE",
            iface.name,
            iface.mtu
        );
    }
    Ok(sectors)
}

fn bind_queues(iface: &Interface, count: u32, steering: &mut Steering) -> Result<Vec<Queue>> {
    let mut queues = Vec::new();
    for q in 0..count {
        let queue = Queue::bind(&iface.name, q)?;
        steering.register(q, &queue)?;
        queues.push(queue);
    }
    let mode = queues[0].mode();
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
    Ok(queues)
}

struct Running {
    handles: Vec<JoinHandle<()>>,
    counters: Vec<Arc<SharedCounters>>,
}

/// One worker thread per queue, each pinned to its own core of the allowed
/// set (so `taskset` is respected); queue 0 announces the exports.
fn spawn_workers(
    queues: Vec<Queue>,
    target: &Arc<Target>,
    stores: &Arc<Vec<Store>>,
    stop: &Arc<AtomicBool>,
) -> Result<Running> {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    if !cores.is_empty() && cores.len() < queues.len() {
        log::warn!(
            "{} queues but only {} usable core(s): workers will share cores",
            queues.len(),
            cores.len()
        );
    }
    let mut running = Running {
        handles: Vec::new(),
        counters: Vec::new(),
    };
    for (i, queue) in queues.into_iter().enumerate() {
        let shared = Arc::new(SharedCounters::default());
        running.counters.push(Arc::clone(&shared));
        let mut worker = Worker::new(
            queue,
            Arc::clone(target),
            Arc::clone(stores),
            shared,
            Arc::clone(stop),
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
        running.handles.push(handle);
    }
    Ok(running)
}

/// Waits for a stop signal, logging counters every `interval`. A worker
/// that returns before it is asked to is a fault: serving with fewer
/// queues would hide it, so everything stops.
fn supervise(running: &Running, stop: &AtomicBool, interval: Duration) {
    let mut last_log = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if !stop.load(Ordering::Relaxed) && running.handles.iter().any(|h| h.is_finished()) {
            stop.store(true, Ordering::Relaxed);
            log::error!("a worker thread stopped unexpectedly");
        }
        if !interval.is_zero() && last_log.elapsed() >= interval {
            last_log = Instant::now();
            log_counters(running);
        }
    }
}

fn log_counters(running: &Running) {
    for (q, c) in running.counters.iter().enumerate() {
        log::info!("stats queue={q} {}", c.snapshot());
    }
}

/// Joins the workers (each answers what storage still owes), logs the
/// final counters, and makes every completed write durable.
fn shut_down(mut running: Running, stores: &[Store]) {
    for h in running.handles.drain(..) {
        let _ = h.join();
    }
    log_counters(&running);
    let total = running
        .counters
        .iter()
        .fold(Counters::default(), |acc, c| acc.add(c.snapshot()));
    log::info!("stats total {total}");
    for store in stores {
        if let Err(e) = store.flush() {
            log::error!("final flush failed: {e}");
        }
    }
}

/// Fails early, with a sentence, when the process cannot load BPF or open
/// AF_XDP sockets (root has every capability; others need these three).
fn check_privileges() -> Result<()> {
    use caps::{CapSet, Capability};
    let has = |cap| caps::has_cap(None, CapSet::Effective, cap).unwrap_or(true);
    if has(Capability::CAP_NET_ADMIN)
        && has(Capability::CAP_NET_RAW)
        && (has(Capability::CAP_BPF) || has(Capability::CAP_SYS_ADMIN))
    {
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

/// The errno under an error chain, if any.
fn os_error(e: &anyhow::Error) -> Option<i32> {
    e.chain().find_map(|c| {
        c.downcast_ref::<std::io::Error>()
            .and_then(|io| io.raw_os_error())
    })
}
