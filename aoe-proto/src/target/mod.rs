//! The target state machine: a request frame in, an [`Action`] out, with
//! the response header written in place in the same buffer.
//!
//! - `mod.rs`: the exports, routing (which exports a frame addresses,
//!   broadcast fan-out included) and dispatch by command;
//! - `control.rs`: the control state initiators change, and its rules;
//! - `response.rs`: each command's response, written in place;
//! - `action.rs`: what the I/O layer is asked to do.
//!
//! The buffer handed to [`Target::handle`] holds the received frame at its
//! start and must be large enough for the longest response (36 bytes of
//! headers plus the data of a read, or a config string). The I/O layer does
//! the storage work an action names, then calls [`Reply::finish`] for the
//! length to transmit.

mod action;
mod control;
mod response;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use action::{Action, BlockIo, Dropped, Reply};
pub use control::{Control, MAC_LIST_CAPACITY};

use crate::ata::{self, Identity, IDENTIFY_PAGE_LEN};
use crate::error::AoeError;
use crate::wire::{
    AoeHeader, Command, ConfigArg, ConfigCommand, EthernetFrame, MacAddr, AOE_HEADER_LEN,
    ARG_OFFSET, ETHERTYPE_AOE, FLAG_RESPONSE,
};
use crate::{pad_frame, MIN_FRAME_LEN};
use response::Response;

/// Shelf address that matches every shelf.
pub const SHELF_BROADCAST: u16 = 0xFFFF;
/// Slot address that matches every slot.
pub const SLOT_BROADCAST: u8 = 0xFF;

/// Settings shared by every export of one target.
#[derive(Debug, Clone)]
pub struct TargetParams {
    /// Source address of every frame the target sends.
    pub mac: MacAddr,
    /// Requests the target holds in flight; advertised in Query Config.
    pub buffer_count: u16,
    /// Firmware version advertised in Query Config.
    pub firmware_version: u16,
    /// Most sectors per ATA request; advertised in Query Config.
    pub max_sectors: u8,
}

/// What is fixed about an export.
#[derive(Debug, Clone)]
pub struct ExportInfo {
    pub shelf: u16,
    pub slot: u8,
    pub sectors: u64,
    pub read_only: bool,
    identify: [u8; IDENTIFY_PAGE_LEN],
}

impl ExportInfo {
    pub fn new(shelf: u16, slot: u8, read_only: bool, identity: &Identity) -> Self {
        Self {
            shelf,
            slot,
            sectors: identity.sectors,
            read_only,
            identify: ata::identify_page(identity),
        }
    }
}

/// One export: its fixed facts and its control state, shared by workers.
#[derive(Debug)]
pub struct Export {
    pub info: ExportInfo,
    control: RwLock<Control>,
    /// Mask or reserve list non-empty: the ATA path only takes the lock
    /// when this is set, so an unrestricted export costs no shared write.
    restricted: AtomicBool,
}

impl Export {
    fn new(info: ExportInfo) -> Self {
        Self {
            info,
            control: RwLock::new(Control::new()),
            restricted: AtomicBool::new(false),
        }
    }

    /// A snapshot of the control state (for logs and tests).
    pub fn control(&self) -> Control {
        self.read_control().clone()
    }

    fn read_control(&self) -> RwLockReadGuard<'_, Control> {
        // A panic while holding the lock cannot leave Control half-updated
        // in a way that matters more than stopping service would.
        self.control.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the control state; keeps the `restricted` hint in step.
    fn update_control<R>(&self, f: impl FnOnce(&mut Control) -> R) -> R {
        let mut control: RwLockWriteGuard<'_, Control> =
            self.control.write().unwrap_or_else(|e| e.into_inner());
        let r = f(&mut control);
        self.restricted
            .store(control.restricted(), Ordering::Release);
        r
    }

    /// Runs `check` on the control state only if the export is restricted.
    fn check_restricted(&self, check: impl FnOnce(&Control) -> bool) -> bool {
        !self.restricted.load(Ordering::Acquire) || check(&self.read_control())
    }

    fn addressed_by(&self, shelf: u16, slot: u8) -> bool {
        (shelf == SHELF_BROADCAST || shelf == self.info.shelf)
            && (slot == SLOT_BROADCAST || slot == self.info.slot)
    }

    fn is(&self, shelf: u16, slot: u8) -> bool {
        shelf == self.info.shelf && slot == self.info.slot
    }
}

/// The exports one request addresses, in order: one for a request to
/// shelf.slot, several for a broadcast. This is the only place broadcast
/// fan-out is decided; the I/O layer serves each index it yields (from a
/// copy of the frame for all but the last).
#[derive(Debug, Clone)]
pub struct Route<'a> {
    exports: &'a [Export],
    shelf: u16,
    slot: u8,
    /// Data commands must name one export, so one frame never writes
    /// several: broadcast ATA requests address nothing.
    exact_only: bool,
    next: usize,
}

impl Iterator for Route<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while let Some(export) = self.exports.get(self.next) {
            let i = self.next;
            self.next += 1;
            let hit = if self.exact_only {
                export.is(self.shelf, self.slot)
            } else {
                export.addressed_by(self.shelf, self.slot)
            };
            if hit {
                return Some(i);
            }
        }
        None
    }
}

/// The headers every request is checked against before anything else.
struct Request {
    l2: usize,
    sender: MacAddr,
    shelf: u16,
    slot: u8,
    command: Command,
    version: u8,
}

impl Request {
    fn parse(frame: &[u8]) -> Result<Self, Dropped> {
        let eth = EthernetFrame::new_checked(frame).map_err(|_| Dropped::NotForUs)?;
        if eth.ethertype() != ETHERTYPE_AOE {
            return Err(Dropped::NotForUs);
        }
        let l2 = eth.header_len();
        let hdr = AoeHeader::new_checked(&frame[l2..]).map_err(|_| Dropped::NotForUs)?;
        if hdr.is_response() {
            return Err(Dropped::NotForUs);
        }
        let sender = eth.src();
        if sender.is_group() {
            return Err(Dropped::GroupSource);
        }
        Ok(Self {
            l2,
            sender,
            shelf: hdr.shelf(),
            slot: hdr.slot(),
            command: hdr.command(),
            version: hdr.version(),
        })
    }
}

/// An AoE target serving one or more exports from one MAC address.
#[derive(Debug)]
pub struct Target {
    params: TargetParams,
    exports: Vec<Export>,
}

impl Target {
    pub fn new(params: TargetParams, exports: Vec<ExportInfo>) -> Self {
        Self {
            params,
            exports: exports.into_iter().map(Export::new).collect(),
        }
    }

    pub fn params(&self) -> &TargetParams {
        &self.params
    }

    pub fn exports(&self) -> &[Export] {
        &self.exports
    }

    /// The exports a received frame addresses, or why it addresses none
    /// (an empty route is possible too: a well-formed request for a
    /// shelf.slot that is not ours).
    pub fn route(&self, frame: &[u8]) -> Result<Route<'_>, Dropped> {
        let req = Request::parse(frame)?;
        Ok(Route {
            exports: &self.exports,
            shelf: req.shelf,
            slot: req.slot,
            exact_only: req.command == Command::Ata,
            next: 0,
        })
    }

    /// Handles the request in `buf[..rx_len]` for export `index`, writing
    /// the response header in place. `buf` may be longer than the request:
    /// it is the space available for the response.
    pub fn handle(&self, index: usize, buf: &mut [u8], rx_len: usize) -> Action {
        let Some(export) = self.exports.get(index) else {
            return Action::Drop(Dropped::NotForUs);
        };
        let Some(frame) = buf.get(..rx_len) else {
            return Action::Drop(Dropped::NotForUs);
        };
        let req = match Request::parse(frame) {
            Ok(req) => req,
            Err(why) => return Action::Drop(why),
        };
        if !export.addressed_by(req.shelf, req.slot)
            || (req.command == Command::Ata && !export.is(req.shelf, req.slot))
        {
            return Action::Drop(Dropped::NotForUs);
        }
        if !export.check_restricted(|c| c.admits(&req.sender)) {
            return Action::Drop(Dropped::Masked);
        }
        if buf.len() < MIN_FRAME_LEN {
            return Action::Drop(Dropped::NoRoom);
        }

        let mut resp = Response::start(buf, req.l2, rx_len, export, &self.params, &req.sender);
        if req.version != crate::wire::AOE_VERSION {
            return resp.aoe_error(AoeError::UnsupportedVersion, req.command);
        }
        match req.command {
            Command::Ata => resp.ata(),
            Command::QueryConfig => resp.config(),
            Command::MacMaskList => resp.mask(),
            Command::ReserveRelease => resp.reserve(),
            Command::Other(_) => resp.aoe_error(AoeError::UnrecognizedCommand, req.command),
        }
    }

    /// Writes the unsolicited Query Config response that announces export
    /// `index` to the broadcast address; returns the length to send.
    pub fn announce(&self, index: usize, buf: &mut [u8]) -> Option<usize> {
        let export = self.exports.get(index)?;
        let control = export.read_control();
        let needed = ARG_OFFSET + crate::wire::CONFIG_ARG_LEN + control.config().len();
        if buf.len() < needed.max(MIN_FRAME_LEN) {
            return None;
        }
        let mut eth = EthernetFrame::new_checked(&mut *buf).ok()?;
        eth.set_dst(&MacAddr::BROADCAST);
        eth.set_src(&self.params.mac);
        eth.set_ethertype_aoe();
        let l2 = eth.header_len();
        let mut hdr = AoeHeader::new_checked(&mut buf[l2..]).ok()?;
        hdr.set_flags(FLAG_RESPONSE, 0);
        hdr.set_address(export.info.shelf, export.info.slot);
        hdr.set_command(Command::QueryConfig);
        hdr.set_tag(0);
        let arg_len = ConfigArg::new_checked(&mut buf[l2 + AOE_HEADER_LEN..])
            .ok()?
            .write_response(
                self.params.buffer_count,
                self.params.firmware_version,
                self.params.max_sectors,
                ConfigCommand::Read,
                control.config(),
            )?;
        Some(pad_frame(buf, l2 + AOE_HEADER_LEN + arg_len))
    }
}
