//! The command line: the only place that knows how options are spelled.

use clap::Parser;

use crate::export::ExportSpec;

/// Serves block devices and files as ATA-over-Ethernet exports, at NIC line
/// rate: an XDP program steers AoE frames into one AF_XDP socket per NIC
/// queue, and one pinned worker per queue serves them.
///
/// Example:
///
///   aoe-xdp --iface eth0 --queues 4 --export 1.1=/dev/nvme0n1 --export 1.2=/srv/disk.img,ro
///
/// Needs root (CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF). The XDP program is
/// detached when aoe-xdp exits, however it exits. Stop it with Ctrl-C or
/// SIGTERM.
#[derive(Debug, Parser)]
#[command(name = "aoe-xdp", version, verbatim_doc_comment)]
pub struct Cli {
    /// Ethernet interface to serve on, e.g. eth0. Frames that are not AoE
    /// requests pass through to the kernel untouched.
    #[arg(long, value_name = "IFACE")]
    pub iface: String,

    /// Number of NIC queues to serve (queues 0..N-1), one worker thread
    /// pinned to its own core per queue. At most the interface's RX queue
    /// count (see `ethtool -l IFACE`).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub queues: u32,

    /// An export: SHELF.SLOT=PATH[,OPTION...]. PATH is a block device or a
    /// regular file; its size (rounded down to 512-byte sectors) is the
    /// disk's size. Shelf 0-65534, slot 0-254; initiators see eSHELF.SLOT.
    /// Repeat for several exports. Options:
    ///   ro         refuse writes (ATA error); rw is the default
    ///   durable    the default: a write is acknowledged only once it is on
    ///              stable storage (writes in flight share one fdatasync);
    ///              `sync` is accepted as the same
    ///   writeback  acknowledge writes from the page cache (buffered) or
    ///              the device's write cache (direct): faster, but a power
    ///              cut loses acknowledged writes, and the Linux initiator
    ///              never sends FLUSH; see docs/durability.md
    ///   direct     O_DIRECT through io_uring (default for block devices)
    ///   buffered   the page cache through io_uring (default for files)
    /// Example: --export 1.1=/dev/nvme0n1 --export 1.2=/srv/iso.img,ro
    #[arg(long = "export", value_name = "SHELF.SLOT=PATH[,OPTION...]", required = true,
          value_parser = ExportSpec::parse)]
    pub exports: Vec<ExportSpec>,

    /// Requests the target accepts in flight from one initiator, advertised
    /// in Query Config (the Linux initiator's window). Each queue's RX fill
    /// ring holds at least this many frames.
    #[arg(long, value_name = "N", default_value_t = 256,
          value_parser = clap::value_parser!(u16).range(1..=2048))]
    pub buffers: u16,

    /// Every export without its own durable/writeback option is
    /// writeback: acknowledged writes are lost on a power cut.
    #[arg(long, conflicts_with = "sync")]
    pub writeback: bool,

    /// Every export durable (the default; kept for older command lines).
    #[arg(long, hide = true)]
    pub sync: bool,

    /// XDP attach mode: auto tries native (driver) mode, then generic.
    #[arg(long, value_name = "MODE", default_value = "auto")]
    pub xdp_mode: XdpModeArg,

    /// Seconds between per-queue counter lines in the log (0: only at exit).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub stats_interval: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum XdpModeArg {
    /// Native mode, else generic mode.
    Auto,
    /// Native (driver) mode only.
    Native,
    /// Generic (skb) mode only.
    Generic,
}
