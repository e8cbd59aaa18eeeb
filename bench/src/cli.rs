//! The command line.

use std::path::PathBuf;

use clap::builder::RangedU64ValueParser;
use clap::Parser;

use crate::worker::MAX_THREADS;

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

Exit status: 0 on success, 1 if any request failed (AoE or ATA error, timeout,
short reply, verify mismatch) or --verify-only did not read the whole region,
2 if the target could not be found or set up, or --state holds nothing to verify.";

#[derive(Parser, Debug)]
#[command(
    name = "aoe-bench",
    version,
    about = "ATA-over-Ethernet initiator and load generator (AF_PACKET, batched, pinned threads)",
    after_help = EXAMPLES
)]
pub struct Cli {
    /// Network interface the target is reachable on, e.g. `--iface vethB`.
    #[arg(long)]
    pub iface: String,

    /// Target address as SHELF.SLOT, e.g. `--target 1.1`.
    #[arg(long, value_parser = parse_target)]
    pub target: (u16, u8),

    /// Requests kept in flight in total (capped at the target's advertised
    /// buffer count unless --ignore-window), e.g. `--depth 64`.
    #[arg(long, default_value_t = 16, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub depth: usize,

    /// Sectors per request; default min((MTU-36)/512, target's sector
    /// count): MTU 1500 gives 2. E.g. `--sectors 1`.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..))]
    pub sectors: Option<u8>,

    /// Percentage of requests that are reads (the rest are writes), e.g.
    /// `--read-pct 70`; 100 = read only, 0 = write only.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub read_pct: u8,

    /// Uniformly random request-aligned LBAs in the region (default:
    /// sequential, wrapping at the end of the region).
    #[arg(long)]
    pub random: bool,

    /// Run length in seconds, e.g. `--duration 10` (ignored by --verify-only,
    /// which reads the region once).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,

    /// Sender threads, each with its own socket and share of the window and
    /// region, pinned one per allowed core (replies are steered back by a
    /// packet fanout program on the tag), e.g. `--threads 2`.
    #[arg(long, default_value_t = 1,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_THREADS as u64))]
    pub threads: usize,

    /// Print one JSON object on stdout instead of the table (progress, if
    /// any, stays on stderr).
    #[arg(long)]
    pub json: bool,

    /// Stamp every written sector with its LBA and a generation and check
    /// every read against the last acknowledged generation; overlapping
    /// requests are never in flight together. Mismatches are errors.
    #[arg(long)]
    pub verify: bool,

    /// Only read the whole region back once and check it against --state
    /// (sectors without a recorded generation are accepted unless they are
    /// torn copies of ours), e.g. after a target crash. Fails if the state
    /// records no acknowledged write in the region.
    #[arg(long, conflicts_with = "verify", requires = "state")]
    pub verify_only: bool,

    /// State file of last acknowledged generations: loaded at start if it
    /// exists (--verify/--verify-only), saved at the end (--verify), e.g.
    /// `--state /tmp/aoe.state`.
    #[arg(long)]
    pub state: Option<PathBuf>,

    /// Limit I/O to the first N MiB of the target, e.g. `--region-mb 256`.
    #[arg(long)]
    pub region_mb: Option<u64>,

    /// First retransmit timeout in milliseconds; each further retry doubles
    /// it (capped at 1 s). Every retransmit gets a new tag.
    #[arg(long, default_value_t = 50)]
    pub timeout_ms: u64,

    /// Retransmissions before a request is abandoned and counted as an error.
    #[arg(long, default_value_t = 8)]
    pub max_retries: u32,

    /// Zero-pad read requests to the size of their reply (36 + sectors x
    /// 512 bytes). Only for the XDP link-limit responder, which cannot grow
    /// a frame on veth; real targets ignore the padding, but the link then
    /// carries the data both ways.
    #[arg(long)]
    pub pad_reads: bool,

    /// Spin on non-blocking receives instead of sleeping until a reply
    /// arrives: takes the initiator's wake-up out of the latency (and a
    /// whole core per thread).
    #[arg(long)]
    pub busy_poll: bool,

    /// Use --depth even if the target advertises fewer buffers.
    #[arg(long)]
    pub ignore_window: bool,

    /// Do not pin threads to cores.
    #[arg(long)]
    pub no_pin: bool,

    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,

    /// Seconds to wait for the Query Config answer.
    #[arg(long, default_value_t = 5.0)]
    pub discover_timeout: f64,

    /// Discover (and IDENTIFY) the target, print what it says, and exit.
    #[arg(long)]
    pub discover_only: bool,

    /// Random seed (default: from the clock).
    #[arg(long)]
    pub seed: Option<u64>,
}

impl Cli {
    pub fn verifying(&self) -> bool {
        self.verify || self.verify_only
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(parse_target("1.1"), Ok((1, 1)));
        assert_eq!(parse_target("65534.254"), Ok((65534, 254)));
        assert!(parse_target("1").is_err());
        assert!(parse_target("65535.1").is_err());
        assert!(parse_target("1.255").is_err());
        assert!(parse_target("x.1").is_err());
    }

    #[test]
    fn verify_only_needs_a_state_file() {
        let base = ["aoe-bench", "--iface", "x", "--target", "1.1"];
        let with = |extra: &[&str]| Cli::try_parse_from(base.iter().chain(extra));
        assert!(with(&["--verify-only"]).is_err());
        assert!(with(&["--verify-only", "--state", "/tmp/s"]).is_ok());
        assert!(with(&["--verify-only", "--verify", "--state", "/tmp/s"]).is_err());
        assert!(with(&["--depth", "0"]).is_err());
        assert!(with(&["--threads", "129"]).is_err());
        assert!(with(&["--sectors", "0"]).is_err());
    }
}
