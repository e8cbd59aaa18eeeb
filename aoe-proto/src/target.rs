//! The target state machine: a request frame in, an [`Action`] out, with
//! the response header written in place in the same buffer.
//!
//! The buffer handed to [`Target::handle`] holds the received frame at its
//! start and must be large enough for the longest response (36 bytes of
//! headers plus the data of a read, or a config string). The I/O layer does
//! the storage work an action names, then calls [`Reply::finish`] for the
//! length to transmit.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use crate::ata::{self, Identity, Transfer};
use crate::error::{AoeError, AtaFailure, ATA_STATUS_DRDY};
use crate::wire::{
    mask, reserve, AoeHeader, AtaArg, Command, ConfigArg, ConfigCommand, EthernetFrame, MacAddr,
    MaskArg, MaskCommand, ReserveArg, AOE_HEADER_LEN, AOE_VERSION, ATA_ARG_LEN, CONFIG_ARG_LEN,
    ETHERTYPE_AOE, FLAG_ERROR, FLAG_RESPONSE, MASK_ARG_LEN, MASK_DIRECTIVE_LEN, RESERVE_ARG_LEN,
};
use crate::{pad_frame, MAX_CONFIG_LEN, SECTOR_SIZE};

/// Shelf address that matches every shelf.
pub const SHELF_BROADCAST: u16 = 0xFFFF;
/// Slot address that matches every slot.
pub const SLOT_BROADCAST: u8 = 0xFF;
/// How many MACs a mask list or a reserve list holds.
pub const MAC_LIST_CAPACITY: usize = 32;

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
    identify: [u8; 512],
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

/// A fixed-capacity list of MACs (no allocation after start-up).
#[derive(Debug, Clone)]
struct MacList {
    macs: [MacAddr; MAC_LIST_CAPACITY],
    len: usize,
}

impl MacList {
    const fn new() -> Self {
        Self {
            macs: [[0; 6]; MAC_LIST_CAPACITY],
            len: 0,
        }
    }

    fn as_slice(&self) -> &[MacAddr] {
        &self.macs[..self.len]
    }

    fn contains(&self, mac: &MacAddr) -> bool {
        self.as_slice().contains(mac)
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `mac` unless present; `false` if the list is full.
    fn add(&mut self, mac: MacAddr) -> bool {
        if self.contains(&mac) {
            return true;
        }
        if self.len == MAC_LIST_CAPACITY {
            return false;
        }
        self.macs[self.len] = mac;
        self.len += 1;
        true
    }

    fn remove(&mut self, mac: &MacAddr) {
        if let Some(i) = self.as_slice().iter().position(|m| m == mac) {
            self.macs.copy_within(i + 1..self.len, i);
            self.len -= 1;
        }
    }

    fn clear(&mut self) {
        self.len = 0;
    }
}

/// What initiators can change about an export: config string, Mac Mask
/// List and reservations. Kept in memory, as vblade does.
#[derive(Debug, Clone)]
pub struct Control {
    config: [u8; MAX_CONFIG_LEN],
    config_len: usize,
    mask: MacList,
    reserve: MacList,
}

impl Control {
    const fn new() -> Self {
        Self {
            config: [0; MAX_CONFIG_LEN],
            config_len: 0,
            mask: MacList::new(),
            reserve: MacList::new(),
        }
    }

    pub fn config(&self) -> &[u8] {
        &self.config[..self.config_len]
    }

    pub fn mask(&self) -> &[MacAddr] {
        self.mask.as_slice()
    }

    pub fn reservation(&self) -> &[MacAddr] {
        self.reserve.as_slice()
    }

    fn set_config(&mut self, s: &[u8]) {
        self.config[..s.len()].copy_from_slice(s);
        self.config_len = s.len();
    }

    fn restricted(&self) -> bool {
        !self.mask.is_empty() || !self.reserve.is_empty()
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

    fn read_control(&self) -> std::sync::RwLockReadGuard<'_, Control> {
        // A panic while holding the lock cannot leave Control half-updated
        // in a way that matters more than stopping service would.
        self.control.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_control(&self) -> std::sync::RwLockWriteGuard<'_, Control> {
        self.control.write().unwrap_or_else(|e| e.into_inner())
    }

    fn addressed_by(&self, shelf: u16, slot: u8) -> bool {
        (shelf == SHELF_BROADCAST || shelf == self.info.shelf)
            && (slot == SLOT_BROADCAST || slot == self.info.slot)
    }
}

/// A block transfer the I/O layer performs before replying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockIo {
    pub lba: u64,
    pub sectors: u8,
    /// Where the sector data sits in the buffer: the source of a write, the
    /// destination of a read.
    pub data: core::ops::Range<usize>,
}

impl BlockIo {
    /// Byte offset in the export.
    pub fn offset(&self) -> u64 {
        self.lba * SECTOR_SIZE as u64
    }

    /// Byte length of the transfer.
    pub fn len(&self) -> usize {
        self.sectors as usize * SECTOR_SIZE
    }

    pub fn is_empty(&self) -> bool {
        self.sectors == 0
    }
}

/// A response whose header is in the buffer; [`Reply::finish`] completes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    len: usize,
    /// Offset of the ATA argument, for ATA commands (to report an I/O error).
    ata_arg: Option<usize>,
    /// The response already carries an AoE error or an ATA error status.
    error: bool,
}

impl Reply {
    /// True if the response reports an error whatever the storage outcome
    /// (an AoE error, or an ATA error decided by the protocol core). With a
    /// failed outcome, [`Reply::finish`] makes any reply an error.
    pub fn is_error(&self) -> bool {
        self.error
    }

    /// Length of the response if the storage work succeeds (before padding).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Records the outcome of the storage work (an ATA error on failure),
    /// pads the frame, and returns the number of bytes to transmit.
    /// For a write, call this only after the data has been stored: padding
    /// overwrites the bytes after the response header.
    pub fn finish(self, buf: &mut [u8], outcome: Result<(), AtaFailure>) -> usize {
        let mut len = self.len;
        if let (Err(failure), Some(at)) = (outcome, self.ata_arg) {
            let mut arg = AtaArg::new_checked(&mut buf[at..]).expect("checked in handle");
            let (status, err) = failure.status_err();
            arg.set_status(status);
            arg.set_err(err);
            len = at + ATA_ARG_LEN;
        }
        pad_frame(buf, len)
    }
}

/// What the I/O layer must do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send nothing; the buffer may be reused.
    Drop,
    /// The response is complete in the buffer.
    Reply(Reply),
    /// Read the sectors into `io.data`, then reply.
    Read(BlockIo, Reply),
    /// Write the sectors from `io.data`, then reply.
    Write(BlockIo, Reply),
    /// Make every acknowledged write durable, then reply.
    Flush(Reply),
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

    /// The first export at index `from` or later that an AoE request in
    /// `frame` is addressed to. Responses and non-AoE frames match nothing.
    /// A request to a broadcast address matches several exports: each one
    /// answers, so the caller handles a copy of the frame for all but the
    /// last.
    pub fn next_addressed(&self, frame: &[u8], from: usize) -> Option<usize> {
        let eth = EthernetFrame::new_checked(frame).ok()?;
        if eth.ethertype() != ETHERTYPE_AOE {
            return None;
        }
        let hdr = AoeHeader::new_checked(&frame[eth.header_len()..]).ok()?;
        if hdr.is_response() {
            return None;
        }
        let (shelf, slot) = (hdr.shelf(), hdr.slot());
        (from..self.exports.len()).find(|&i| self.exports[i].addressed_by(shelf, slot))
    }

    /// Handles the request in `buf[..rx_len]` for export `index`, writing
    /// the response header in place. `buf` may be longer than the request:
    /// it is the space available for the response.
    pub fn handle(&self, index: usize, buf: &mut [u8], rx_len: usize) -> Action {
        let Some(export) = self.exports.get(index) else {
            return Action::Drop;
        };
        let Some(rx_len) = (rx_len <= buf.len()).then_some(rx_len) else {
            return Action::Drop;
        };
        let Ok(eth) = EthernetFrame::new_checked(&buf[..rx_len]) else {
            return Action::Drop;
        };
        let (l2, sender) = (eth.header_len(), eth.src());
        let Ok(hdr) = AoeHeader::new_checked(&buf[l2..rx_len]) else {
            return Action::Drop;
        };
        if hdr.is_response() || !export.addressed_by(hdr.shelf(), hdr.slot()) {
            return Action::Drop;
        }
        let command = hdr.command();
        let exact = hdr.shelf() == export.info.shelf && hdr.slot() == export.info.slot;
        let version = hdr.version();
        // Broadcast is for discovery and control; data commands must name
        // one export, so one frame can never write several.
        if command == Command::Ata && !exact {
            return Action::Drop;
        }
        if export.restricted.load(Ordering::Acquire) {
            let control = export.read_control();
            if !control.mask.is_empty() && !control.mask.contains(&sender) {
                return Action::Drop;
            }
        }

        let mut resp = Response {
            buf,
            l2,
            rx_len,
            export,
        };
        resp.start(&self.params.mac, &sender);
        if version != AOE_VERSION {
            return resp.aoe_error(AoeError::UnsupportedVersion, command);
        }
        match command {
            Command::Ata => resp.ata(&self.params, &sender),
            Command::QueryConfig => resp.config(&self.params),
            Command::MacMaskList => resp.mask(),
            Command::ReserveRelease => resp.reserve(&sender),
            Command::Other(_) => resp.aoe_error(AoeError::UnrecognizedCommand, command),
        }
    }

    /// Writes the unsolicited Query Config response that announces export
    /// `index` to the broadcast address; returns the length to send.
    pub fn announce(&self, index: usize, buf: &mut [u8]) -> Option<usize> {
        let export = self.exports.get(index)?;
        let l2 = 14;
        let control = export.read_control();
        let needed = l2 + AOE_HEADER_LEN + CONFIG_ARG_LEN + control.config_len;
        let buf_len = buf.len();
        if buf_len < needed.max(crate::MIN_FRAME_LEN) {
            return None;
        }
        let mut eth = EthernetFrame::new_checked(&mut *buf).ok()?;
        eth.set_dst(&[0xFF; 6]);
        eth.set_src(&self.params.mac);
        eth.set_ethertype_aoe();
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

/// A request being turned into its response, in place.
struct Response<'a> {
    buf: &'a mut [u8],
    l2: usize,
    rx_len: usize,
    export: &'a Export,
}

impl Response<'_> {
    /// Offset of the command argument.
    fn arg_at(&self) -> usize {
        self.l2 + AOE_HEADER_LEN
    }

    /// The received argument bytes (anything past the AoE header).
    fn arg(&self) -> &[u8] {
        &self.buf[self.arg_at()..self.rx_len]
    }

    /// Addresses the response to the sender, from us, from this export.
    fn start(&mut self, our_mac: &MacAddr, sender: &MacAddr) {
        let mut eth = EthernetFrame::new_checked(&mut *self.buf).expect("checked in handle");
        eth.set_dst(sender);
        eth.set_src(our_mac);
        let mut hdr = AoeHeader::new_checked(&mut self.buf[self.l2..]).expect("checked");
        hdr.set_flags(FLAG_RESPONSE, 0);
        hdr.set_address(self.export.info.shelf, self.export.info.slot);
    }

    fn reply(&self, arg_len: usize) -> Action {
        Action::Reply(Reply {
            len: self.arg_at() + arg_len,
            ata_arg: None,
            error: false,
        })
    }

    /// An AoE error response: the header with the error flag, followed by
    /// the fixed part of the request's argument as received.
    fn aoe_error(&mut self, error: AoeError, command: Command) -> Action {
        let fixed = match command {
            Command::Ata => ATA_ARG_LEN,
            Command::QueryConfig => CONFIG_ARG_LEN,
            Command::MacMaskList => MASK_ARG_LEN,
            Command::ReserveRelease => RESERVE_ARG_LEN,
            Command::Other(_) => 0,
        };
        let arg_len = fixed.min(self.rx_len - self.arg_at());
        let mut hdr = AoeHeader::new_checked(&mut self.buf[self.l2..]).expect("checked");
        hdr.set_flags(FLAG_RESPONSE | FLAG_ERROR, error.code());
        Action::Reply(Reply {
            len: self.arg_at() + arg_len,
            ata_arg: None,
            error: true,
        })
    }

    fn ata(&mut self, params: &TargetParams, sender: &MacAddr) -> Action {
        let at = self.arg_at();
        let Ok(req) = AtaArg::new_checked(self.arg()) else {
            return self.aoe_error(AoeError::BadArgument, Command::Ata);
        };
        let (command, count, raw_lba) = (req.command(), req.sector_count(), req.lba());
        let received_data = req.data().len();
        if self.export.restricted.load(Ordering::Acquire) {
            let control = self.export.read_control();
            if !control.reserve.is_empty() && !control.reserve.contains(sender) {
                drop(control);
                return self.aoe_error(AoeError::TargetReserved, Command::Ata);
            }
        }
        let data_at = at + ATA_ARG_LEN;
        let reply = |len| Reply {
            len,
            ata_arg: Some(at),
            error: false,
        };
        let info = &self.export.info;
        let buf_len = self.buf.len();
        let mut resp = AtaArg::new_checked(&mut self.buf[at..]).expect("checked above");
        resp.set_err(0);
        resp.set_status(ATA_STATUS_DRDY);

        let decoded =
            ata::decode_transfer(command, raw_lba, count, params.max_sectors, info.sectors);
        let outcome = match (command, decoded) {
            (_, Some(Ok(range))) => {
                let io = BlockIo {
                    lba: range.lba,
                    sectors: range.sectors,
                    data: data_at..data_at + range.sectors as usize * SECTOR_SIZE,
                };
                match range.transfer {
                    Transfer::Read if io.data.end > buf_len => Err(AtaFailure::Aborted),
                    Transfer::Read => {
                        let len = io.data.end;
                        return Action::Read(io, reply(len));
                    }
                    Transfer::Write if info.read_only => Err(AtaFailure::ReadOnly),
                    Transfer::Write if received_data < io.len() => Err(AtaFailure::Aborted),
                    Transfer::Write => return Action::Write(io, reply(data_at)),
                }
            }
            (_, Some(Err(failure))) => Err(failure),
            (ata::CMD_IDENTIFY, None) => {
                let page = &info.identify;
                match resp.data_mut().get_mut(..page.len()) {
                    Some(dst) => {
                        dst.copy_from_slice(page);
                        return Action::Reply(reply(data_at + page.len()));
                    }
                    None => Err(AtaFailure::Aborted),
                }
            }
            (ata::CMD_CHECK_POWER_MODE, None) => {
                resp.set_sector_count(ata::POWER_MODE_ACTIVE);
                Ok(())
            }
            (ata::CMD_FLUSH_CACHE | ata::CMD_FLUSH_CACHE_EXT, None) => {
                return Action::Flush(reply(data_at));
            }
            _ => Err(AtaFailure::Aborted),
        };
        if let Err(failure) = outcome {
            let (status, err) = failure.status_err();
            resp.set_status(status);
            resp.set_err(err);
        }
        Action::Reply(Reply {
            error: outcome.is_err(),
            ..reply(data_at)
        })
    }

    fn config(&mut self, params: &TargetParams) -> Action {
        let at = self.arg_at();
        let Ok(req) = ConfigArg::new_checked(self.arg()) else {
            return self.aoe_error(AoeError::BadArgument, Command::QueryConfig);
        };
        let ccmd = req.command();
        let Some(string) = req.string().filter(|s| s.len() <= MAX_CONFIG_LEN) else {
            return self.aoe_error(AoeError::BadArgument, Command::QueryConfig);
        };
        // The request's string is overwritten by the response: copy it out.
        let mut arg = [0u8; MAX_CONFIG_LEN];
        let arg = {
            arg[..string.len()].copy_from_slice(string);
            &arg[..string.len()]
        };
        let mut control = self.export.write_control();
        let answer = match ccmd {
            ConfigCommand::Read => true,
            ConfigCommand::Test => control.config() == arg,
            ConfigCommand::TestPrefix => control.config().starts_with(arg),
            // A retransmitted set of the same string must not fail.
            ConfigCommand::Set if control.config_len == 0 || control.config() == arg => {
                control.set_config(arg);
                true
            }
            ConfigCommand::Set => {
                drop(control);
                return self.aoe_error(AoeError::ConfigStringPresent, Command::QueryConfig);
            }
            ConfigCommand::ForceSet => {
                control.set_config(arg);
                true
            }
            ConfigCommand::Unknown(_) => {
                drop(control);
                return self.aoe_error(AoeError::BadArgument, Command::QueryConfig);
            }
        };
        if !answer {
            return Action::Drop;
        }
        let written = ConfigArg::new_checked(&mut self.buf[at..])
            .expect("checked above")
            .write_response(
                params.buffer_count,
                params.firmware_version,
                params.max_sectors,
                ccmd,
                control.config(),
            );
        drop(control);
        match written {
            Some(arg_len) => self.reply(arg_len),
            None => Action::Drop,
        }
    }

    fn mask(&mut self) -> Action {
        let at = self.arg_at();
        let Ok(req) = MaskArg::new_checked(self.arg()) else {
            return self.aoe_error(AoeError::BadArgument, Command::MacMaskList);
        };
        let mut control = self.export.write_control();
        match req.command() {
            MaskCommand::Read => {}
            MaskCommand::Edit => {
                let count = req.count();
                if req.directive(count.saturating_sub(1)).is_none() && count > 0 {
                    drop(control);
                    return self.aoe_error(AoeError::BadArgument, Command::MacMaskList);
                }
                for i in 0..count {
                    let (dcmd, mac) = req.directive(i).expect("length checked above");
                    let merror = match dcmd {
                        mask::DCMD_NONE => None,
                        mask::DCMD_ADD => {
                            (!control.mask.add(mac)).then_some(mask::MERROR_LIST_FULL)
                        }
                        mask::DCMD_DELETE => {
                            control.mask.remove(&mac);
                            None
                        }
                        _ => Some(mask::MERROR_BAD_DCMD),
                    };
                    if let Some(merror) = merror {
                        // The reply echoes the directives before the failing
                        // one; its count is the failing directive's index.
                        self.export
                            .restricted
                            .store(control.restricted(), Ordering::Release);
                        drop(control);
                        let mut resp = MaskArg::new_checked(&mut self.buf[at..]).expect("checked");
                        resp.set_merror(merror);
                        resp.set_count(i as u8);
                        return self.reply(MASK_ARG_LEN + i * MASK_DIRECTIVE_LEN);
                    }
                }
                self.export
                    .restricted
                    .store(control.restricted(), Ordering::Release);
            }
            MaskCommand::Unknown(_) => {
                drop(control);
                return self.aoe_error(AoeError::BadArgument, Command::MacMaskList);
            }
        }
        let mut resp = MaskArg::new_checked(&mut self.buf[at..]).expect("checked above");
        resp.set_merror(0);
        let written = resp.write_list(control.mask.as_slice());
        drop(control);
        match written {
            Some(arg_len) => self.reply(arg_len),
            None => Action::Drop,
        }
    }

    fn reserve(&mut self, sender: &MacAddr) -> Action {
        let at = self.arg_at();
        let Ok(req) = ReserveArg::new_checked(self.arg()) else {
            return self.aoe_error(AoeError::BadArgument, Command::ReserveRelease);
        };
        let (rcmd, count) = (req.command(), req.count());
        let mut control = self.export.write_control();
        match rcmd {
            reserve::RCMD_READ => {}
            reserve::RCMD_SET | reserve::RCMD_FORCE_SET => {
                if rcmd == reserve::RCMD_SET
                    && !control.reserve.is_empty()
                    && !control.reserve.contains(sender)
                {
                    drop(control);
                    return self.aoe_error(AoeError::TargetReserved, Command::ReserveRelease);
                }
                if count > MAC_LIST_CAPACITY
                    || req.mac(count.saturating_sub(1)).is_none() && count > 0
                {
                    drop(control);
                    return self.aoe_error(AoeError::BadArgument, Command::ReserveRelease);
                }
                control.reserve.clear();
                for i in 0..count {
                    control
                        .reserve
                        .add(req.mac(i).expect("length checked above"));
                }
                self.export
                    .restricted
                    .store(control.restricted(), Ordering::Release);
            }
            _ => {
                drop(control);
                return self.aoe_error(AoeError::BadArgument, Command::ReserveRelease);
            }
        }
        let written = ReserveArg::new_checked(&mut self.buf[at..])
            .expect("checked above")
            .write_list(control.reserve.as_slice());
        drop(control);
        match written {
            Some(arg_len) => self.reply(arg_len),
            None => Action::Drop,
        }
    }
}
