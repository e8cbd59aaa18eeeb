//! From the options and what the target said to running workers: request
//! size, window, threads and their shares of the region.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aoe_proto::wire::ETH_TAGGED_HEADER_LEN;

use crate::cli::Cli;
use crate::discovery::Target;
use crate::sock::{IfaceInfo, PacketSocket};
use crate::verify::State;
use crate::worker::{self, Live, Report, MAX_DEPTH_PER_THREAD};

/// Sectors in one MiB.
pub const SECTORS_PER_MIB: u64 = 2048;

/// The shape of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Sectors per request.
    pub sectors: u8,
    /// Requests in flight in total.
    pub window: usize,
    pub threads: usize,
    /// Request-sized chunks in the region.
    pub chunks: u64,
}

impl Plan {
    pub fn new(cli: &Cli, mtu: usize, target: &Target) -> Result<Self, String> {
        let advertised = target.config.max_sectors();
        let fits = aoe_proto::sectors_for_mtu(mtu);
        let sectors = match cli.sectors {
            Some(n) if n > fits => {
                return Err(format!("--sectors {n} does not fit MTU {mtu} (max {fits})"))
            }
            Some(n) => {
                if n > advertised {
                    eprintln!("aoe-bench: warning: --sectors {n} exceeds the target's advertised {advertised}");
                }
                n
            }
            None => fits.min(advertised),
        };
        if sectors == 0 {
            return Err(format!("MTU {mtu} is too small for one sector"));
        }
        let window = if cli.ignore_window {
            cli.depth
        } else {
            cli.depth.min(target.config.buffer_count.max(1) as usize)
        };
        let threads = cli.threads.min(window);
        if window.div_ceil(threads) > MAX_DEPTH_PER_THREAD {
            return Err(format!(
                "depth per thread is at most {MAX_DEPTH_PER_THREAD}"
            ));
        }
        let region = cli.region_mb.map_or(target.sectors, |mb| {
            target.sectors.min(mb.saturating_mul(SECTORS_PER_MIB))
        });
        let chunks = region / sectors as u64;
        if chunks == 0 {
            return Err(format!("region of {region} sectors holds no request"));
        }
        if cli.verifying() && chunks < 2 * window as u64 {
            return Err(format!(
                "--verify needs at least {} request-sized chunks in the region (has {chunks})",
                2 * window
            ));
        }
        Ok(Self {
            sectors,
            window,
            threads,
            chunks,
        })
    }

    /// Sectors the requests cover.
    pub fn region_sectors(&self) -> u64 {
        self.chunks * self.sectors as u64
    }

    /// Thread `i`'s share: (first chunk, chunks, depth).
    fn share(&self, i: usize) -> (u64, u64, usize) {
        let (n, t) = (self.chunks, self.threads as u64);
        let c0 = n * i as u64 / t;
        let c1 = n * (i as u64 + 1) / t;
        let depth = self.window / self.threads + usize::from(i < self.window % self.threads);
        (c0, c1 - c0, depth)
    }
}

/// Worker threads under way.
pub struct Running {
    pub lives: Vec<Arc<Live>>,
    pub start: Instant,
    handles: Vec<JoinHandle<Report>>,
}

impl Running {
    pub fn done(&self) -> bool {
        self.lives
            .iter()
            .all(|l| l.done.load(std::sync::atomic::Ordering::Acquire))
    }

    pub fn join(self) -> Vec<Report> {
        self.handles
            .into_iter()
            .map(|h| h.join().expect("worker thread panicked"))
            .collect()
    }
}

/// Opens one socket per thread (joined to a fanout group in thread order
/// when there are several) and starts the workers. `state` is the verify
/// state of the region; `stop` ends them early.
pub fn launch(
    cli: &Cli,
    plan: &Plan,
    ifi: &IfaceInfo,
    target: &Target,
    state: Option<&State>,
    stop: Arc<AtomicBool>,
) -> Result<Running, String> {
    let threads = plan.threads;
    let fanout_id = (std::process::id() & 0xffff) as u16;
    let mut socks = Vec::with_capacity(threads);
    for i in 0..threads {
        let s = PacketSocket::open(ifi, Duration::from_millis(1))
            .map_err(|e| format!("AF_PACKET socket: {e}"))?;
        s.set_qdisc_bypass()
            .map_err(|e| format!("PACKET_QDISC_BYPASS: {e}"))?;
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
    let mut seeds = fastrand::Rng::with_seed(cli.seed.unwrap_or_else(|| fastrand::u64(..)));
    let newest_before = state.map_or(0, State::newest);
    // Generations only grow, across runs too: start from the clock in
    // microseconds (no run issues a write per microsecond per thread), so
    // data left by an earlier run always reads as older than this run's
    // acknowledged writes, with or without a state file.
    let now_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    let gen_base = (newest_before + 1).max(now_us);
    let rx_frame_len = (ifi.mtu + ETH_TAGGED_HEADER_LEN)
        .next_multiple_of(64)
        .max(2048);
    let start = Instant::now();
    let deadline =
        (!cli.verify_only).then(|| start + Duration::from_secs_f64(cli.duration.max(0.0)));
    let mut lives = Vec::with_capacity(threads);
    let mut handles = Vec::with_capacity(threads);
    for (i, sock) in socks.into_iter().enumerate() {
        let (first_chunk, chunks, depth) = plan.share(i);
        let first_lba = first_chunk * plan.sectors as u64;
        let expected = state.map_or_else(Vec::new, |st| {
            let end = first_lba + chunks * plan.sectors as u64;
            st.generations[first_lba as usize..end as usize].to_vec()
        });
        let wc = worker::Config {
            id: i as u8,
            depth,
            src: ifi.mac,
            dst: target.config.mac,
            shelf: target.config.shelf,
            slot: target.config.slot,
            lba48: target.lba48,
            sectors: plan.sectors,
            first_lba,
            chunks,
            read_pct: cli.read_pct,
            random: cli.random,
            verify: cli.verify,
            verify_only: cli.verify_only,
            deadline,
            pad_reads: cli.pad_reads,
            busy_poll: cli.busy_poll,
            expected,
            newest_before,
            gen_base,
            timeout: Duration::from_millis(cli.timeout_ms.max(1)),
            max_retries: cli.max_retries,
            rx_frame_len,
            seed: seeds.u64(..),
        };
        let core = (!cores.is_empty()).then(|| cores[i % cores.len()]);
        let stop = stop.clone();
        let live = Arc::new(Live::default());
        lives.push(live.clone());
        handles.push(
            std::thread::Builder::new()
                .name(format!("aoe-bench-{i}"))
                .spawn(move || {
                    if let Some(c) = core {
                        core_affinity::set_for_current(c);
                    }
                    worker::run(wc, sock, &stop, &live)
                })
                .map_err(|e| format!("spawn: {e}"))?,
        );
    }
    Ok(Running {
        lives,
        start,
        handles,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::ConfigInfo;
    use aoe_proto::MacAddr;
    use clap::Parser;

    fn target(buffers: u16, sector_count: u8, sectors: u64) -> Target {
        Target {
            config: ConfigInfo {
                shelf: 1,
                slot: 1,
                mac: MacAddr([2, 0, 0, 0, 0, 1]),
                buffer_count: buffers,
                firmware: 0,
                sector_count,
                config_string: String::new(),
            },
            sectors,
            lba48: true,
            model: String::new(),
        }
    }

    fn cli(extra: &[&str]) -> Cli {
        let base = ["aoe-bench", "--iface", "x", "--target", "1.1"];
        Cli::try_parse_from(base.iter().chain(extra)).unwrap()
    }

    #[test]
    fn window_request_size_and_region() {
        // MTU 1500 fits 2 sectors; the window is capped at the buffers.
        let p = Plan::new(&cli(&["--depth", "64"]), 1500, &target(16, 0, 1 << 20)).unwrap();
        assert_eq!(
            p,
            Plan {
                sectors: 2,
                window: 16,
                threads: 1,
                chunks: 1 << 19
            }
        );
        let p = Plan::new(
            &cli(&["--depth", "64", "--ignore-window", "--region-mb", "1"]),
            9000,
            &target(16, 255, 1 << 20),
        )
        .unwrap();
        assert_eq!((p.sectors, p.window, p.chunks), (17, 64, 2048 / 17));
        assert_eq!(p.region_sectors(), 2048 / 17 * 17);
        // Too big a request, too small a region, too small for verify.
        assert!(Plan::new(&cli(&["--sectors", "3"]), 1500, &target(16, 0, 1 << 20)).is_err());
        assert!(Plan::new(&cli(&[]), 1500, &target(16, 0, 1)).is_err());
        assert!(Plan::new(
            &cli(&["--verify", "--depth", "16"]),
            1500,
            &target(16, 0, 62)
        )
        .is_err());
        assert!(Plan::new(
            &cli(&["--verify", "--depth", "16"]),
            1500,
            &target(16, 0, 64)
        )
        .is_ok());
    }

    #[test]
    fn shares_cover_the_region_and_window() {
        let p = Plan {
            sectors: 2,
            window: 7,
            threads: 3,
            chunks: 100,
        };
        let shares: Vec<_> = (0..3).map(|i| p.share(i)).collect();
        assert_eq!(shares, vec![(0, 33, 3), (33, 33, 2), (66, 34, 2)]);
        // The depth per thread never passes the tag's slot field.
        let big = cli(&["--depth", "8193", "--threads", "2", "--ignore-window"]);
        assert!(Plan::new(&big, 1500, &target(16, 0, 1 << 30)).is_err());
    }
}
