//! Loads the embedded XDP program with aya, attaches it to the interface
//! and fills its XSKMAP. Dropping `Steering` detaches the program, and so
//! does the process ending in any way: the attachment is a bpf_link whose
//! last file descriptor dies with the process.

use std::os::fd::AsRawFd;

use anyhow::{anyhow, Context, Result};
use aya::maps::XskMap;
use aya::programs::{Xdp, XdpMode};
use aya::Ebpf;

use crate::cli::XdpModeArg;

#[allow(dead_code)] // some constants are only for the C side and tests
mod consts {
    include!(concat!(env!("OUT_DIR"), "/steer_consts.rs"));
}
pub use consts::MAX_QUEUES;

static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/aoe_steer.bpf.o"));

pub struct Steering {
    ebpf: Ebpf,
    /// "native" or "generic", for the log.
    pub mode: &'static str,
}

impl Steering {
    pub fn attach(iface: &str, mode: XdpModeArg) -> Result<Self> {
        let mut ebpf = Ebpf::load(PROGRAM).map_err(|e| explain_bpf_error(e.into()))?;
        let prog: &mut Xdp = ebpf
            .program_mut("aoe_steer")
            .context("the embedded object has no aoe_steer program")?
            .try_into()?;
        prog.load()
            .map_err(|e| explain_bpf_error(e.into()))
            .context("loading the XDP program")?;
        let tries: &[(XdpMode, &str)] = match mode {
            XdpModeArg::Auto => &[(XdpMode::Driver, "native"), (XdpMode::Skb, "generic")],
            XdpModeArg::Native => &[(XdpMode::Driver, "native")],
            XdpModeArg::Generic => &[(XdpMode::Skb, "generic")],
        };
        let mut last_err = None;
        for &(xdp_mode, name) in tries {
            match prog.attach(iface, xdp_mode) {
                Ok(_) => return Ok(Self { ebpf, mode: name }),
                Err(e) => {
                    log::warn!("attaching XDP in {name} mode to {iface} failed: {e:#}");
                    last_err = Some(e);
                }
            }
        }
        Err(anyhow!(last_err.expect("at least one mode tried")))
            .with_context(|| format!("cannot attach the XDP program to {iface}"))
    }

    /// Steers queue `queue`'s AoE requests to `socket`.
    pub fn register(&mut self, queue: u32, socket: &impl AsRawFd) -> Result<()> {
        let mut map: XskMap<_> = self
            .ebpf
            .map_mut("aoe_xsks")
            .context("the embedded object has no aoe_xsks map")?
            .try_into()?;
        map.set(queue, socket.as_raw_fd(), 0)
            .with_context(|| format!("adding queue {queue}'s socket to the XSKMAP"))
    }
}

/// Turns EPERM (found in the error's chain of sources) into a sentence an
/// administrator can act on.
fn explain_bpf_error(e: anyhow::Error) -> anyhow::Error {
    if crate::os_error(&e) == Some(libc::EPERM) {
        anyhow!("permission denied loading the XDP program: run as root (needs CAP_BPF, CAP_NET_ADMIN and CAP_NET_RAW)")
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::consts;

    #[test]
    fn xdp_program_and_protocol_crate_agree() {
        assert_eq!(consts::ETH_P_AOE, aoe_proto::wire::ETHERTYPE_AOE as u32);
        assert_eq!(consts::ETH_P_8021Q, aoe_proto::wire::ETHERTYPE_VLAN as u32);
        assert_eq!(consts::FLAG_RESPONSE, aoe_proto::wire::FLAG_RESPONSE as u32);
    }
}
