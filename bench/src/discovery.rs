//! Finding the target: Query Config until SHELF.SLOT answers, then IDENTIFY
//! DEVICE for its capacity.

use std::time::{Duration, Instant};

use aoe_proto::ata::{parse_identify, Identified, IDENTIFY_PAGE_LEN};
use aoe_proto::error::ATA_STATUS_ERR;
use aoe_proto::wire::{AtaArg, Command, ATA_DATA_OFFSET};
use serde::Serialize;

use crate::frames::{self, ConfigInfo, Reply};
use crate::sock::{IfaceInfo, PacketSocket};

/// What the target says about itself.
#[derive(Debug, Serialize)]
pub struct Target {
    #[serde(flatten)]
    pub config: ConfigInfo,
    #[serde(rename = "sectors_total")]
    pub sectors: u64,
    pub lba48: bool,
    pub model: String,
}

/// Tags of setup requests: bit 31 (ours) and a thread field no worker
/// thread has while setup runs.
const SETUP_TAG: u32 = 0xff00_0000;

/// Discovers SHELF.SLOT on the interface and sizes it with IDENTIFY.
pub fn find(
    ifi: &IfaceInfo,
    (shelf, slot): (u16, u8),
    timeout: Duration,
) -> Result<Target, String> {
    // A private socket, closed before the workers' sockets exist so that it
    // does not take copies of their replies.
    let sock = PacketSocket::open(ifi, Duration::from_millis(20))
        .map_err(|e| format!("AF_PACKET socket: {e}"))?;
    let config = query_config(&sock, ifi, shelf, slot, timeout)?;
    let id = identify(&sock, ifi, &config)?;
    Ok(Target {
        config,
        sectors: id.sectors,
        lba48: id.lba48,
        model: id.model,
    })
}

/// Sends Query Config to SHELF.SLOT until the target answers.
fn query_config(
    sock: &PacketSocket,
    ifi: &IfaceInfo,
    shelf: u16,
    slot: u8,
    timeout: Duration,
) -> Result<ConfigInfo, String> {
    let mut tx = [0u8; 64];
    let tag = SETUP_TAG | (std::process::id() & 0x00ff_ffff);
    let len = frames::query_config(&mut tx, ifi.mac, shelf, slot, tag);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let answer = send_and_await(sock, &tx[..len], Duration::from_millis(250), |r| {
            // vblade also broadcasts an unsolicited config (tag 0) at
            // start; any config reply from the right address will do.
            if r.command == Command::QueryConfig
                && (r.shelf, r.slot) == (shelf, slot)
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

/// Sends IDENTIFY DEVICE until it is answered, and parses the page.
fn identify(sock: &PacketSocket, ifi: &IfaceInfo, cfg: &ConfigInfo) -> Result<Identified, String> {
    const REPLY_LEN: usize = ATA_DATA_OFFSET + IDENTIFY_PAGE_LEN;
    let mut tx = [0u8; REPLY_LEN];
    for attempt in 0..10u32 {
        let tag = SETUP_TAG | attempt;
        frames::put_headers(&mut tx, cfg.mac, ifi.mac, cfg.shelf, cfg.slot, Command::Ata);
        frames::set_tag(&mut tx, tag);
        let len = frames::identify_request(&mut tx);
        // Every other attempt is zero-padded to the reply's size (as
        // aoe-sancheck pads IDENTIFY): a responder that cannot grow frames
        // (XDP on veth) can then answer in place; targets ignore the tail.
        let len = if attempt % 2 == 1 {
            tx[len..].fill(0);
            REPLY_LEN
        } else {
            len
        };
        let page = send_and_await(sock, &tx[..len], Duration::from_millis(300), |r| {
            (r.command == Command::Ata && r.tag == tag).then(|| identify_reply(r))
        })?;
        if let Some(id) = page {
            return Ok(id);
        }
    }
    Err("no IDENTIFY answer".into())
}

/// What an IDENTIFY reply says, or why it says nothing.
fn identify_reply(r: &Reply<'_>) -> Result<Identified, String> {
    if r.is_error() {
        return Err(format!("IDENTIFY: AoE error {}", r.error));
    }
    let arg = AtaArg::new_checked(r.arg).map_err(|_| "IDENTIFY: short reply")?;
    if arg.status() & ATA_STATUS_ERR != 0 {
        return Err(format!(
            "IDENTIFY: ATA status {:#04x} err {:#04x}",
            arg.status(),
            arg.err()
        ));
    }
    parse_identify(arg.data()).ok_or_else(|| {
        format!(
            "IDENTIFY: {} data bytes, want {IDENTIFY_PAGE_LEN}",
            arg.data().len()
        )
    })
}

/// Sends `frame` once and waits up to `wait` for a reply that `accept`
/// recognises (`None`: not the one we wait for). `Ok(None)` on timeout.
fn send_and_await<T>(
    sock: &PacketSocket,
    frame: &[u8],
    wait: Duration,
    mut accept: impl FnMut(&Reply<'_>) -> Option<Result<T, String>>,
) -> Result<Option<T>, String> {
    let mut rx = vec![0u8; 1 << 16];
    sock.send(frame).map_err(|e| format!("send: {e}"))?;
    let until = Instant::now() + wait;
    while Instant::now() < until {
        let Some(n) = sock.recv(&mut rx).map_err(|e| format!("recv: {e}"))? else {
            continue;
        };
        if let Some(result) = frames::parse_reply(&rx[..n]).and_then(|r| accept(&r)) {
            return result.map(Some);
        }
    }
    Ok(None)
}
