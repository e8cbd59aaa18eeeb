//! Each command's response, written in place over the request.

use super::action::{Action, BlockIo, Dropped, Reply};
use super::control::MAC_LIST_CAPACITY;
use super::{Export, TargetParams};
use crate::ata::{self, Transfer};
use crate::error::{AoeError, AtaFailure, ATA_STATUS_DRDY};
use crate::wire::{
    reserve, AoeHeader, AtaArg, Command, ConfigArg, EthernetFrame, MacAddr, MaskArg, MaskCommand,
    ReserveArg, AOE_HEADER_LEN, ATA_ARG_LEN, CONFIG_ARG_LEN, FLAG_ERROR, FLAG_RESPONSE,
    MASK_ARG_LEN, MASK_DIRECTIVE_LEN, RESERVE_ARG_LEN,
};
use crate::{MAX_CONFIG_LEN, SECTOR_SIZE};

/// A request being turned into its response, in place.
pub(super) struct Response<'a> {
    buf: &'a mut [u8],
    l2: usize,
    rx_len: usize,
    export: &'a Export,
    params: &'a TargetParams,
    sender: MacAddr,
}

impl<'a> Response<'a> {
    /// Addresses the response to the sender, from us, from this export.
    /// The caller has checked the headers of `buf[..rx_len]`.
    pub(super) fn start(
        buf: &'a mut [u8],
        l2: usize,
        rx_len: usize,
        export: &'a Export,
        params: &'a TargetParams,
        sender: &MacAddr,
    ) -> Self {
        let mut eth = EthernetFrame::new_checked(&mut *buf).expect("checked by the caller");
        eth.set_dst(sender);
        eth.set_src(&params.mac);
        let mut hdr = AoeHeader::new_checked(&mut buf[l2..]).expect("checked by the caller");
        hdr.set_flags(FLAG_RESPONSE, 0);
        hdr.set_address(export.info.shelf, export.info.slot);
        Self {
            buf,
            l2,
            rx_len,
            export,
            params,
            sender: *sender,
        }
    }

    /// Offset of the command argument.
    fn arg_at(&self) -> usize {
        self.l2 + AOE_HEADER_LEN
    }

    /// The received argument bytes (anything past the AoE header).
    fn arg(&self) -> &[u8] {
        &self.buf[self.arg_at()..self.rx_len]
    }

    fn reply(&self, arg_len: usize) -> Action {
        Action::Reply(Reply {
            len: self.arg_at() + arg_len,
            ata_arg: None,
            error: false,
        })
    }

    /// A reply whose argument was written by `written` (`None`: the buffer
    /// is too short for it).
    fn reply_written(&self, written: Option<usize>) -> Action {
        match written {
            Some(arg_len) => self.reply(arg_len),
            None => Action::Drop(Dropped::NoRoom),
        }
    }

    /// An AoE error response: the header with the error flag, followed by
    /// the fixed part of the request's argument as received.
    pub(super) fn aoe_error(&mut self, error: AoeError, command: Command) -> Action {
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

    pub(super) fn ata(&mut self) -> Action {
        let at = self.arg_at();
        let Ok(req) = AtaArg::new_checked(self.arg()) else {
            return self.aoe_error(AoeError::BadArgument, Command::Ata);
        };
        let (command, count, raw_lba) = (req.command(), req.sector_count(), req.lba());
        let received_data = req.data().len();
        let sender = self.sender;
        if !self.export.check_restricted(|c| c.reserved_for(&sender)) {
            return self.aoe_error(AoeError::TargetReserved, Command::Ata);
        }
        let data_at = at + ATA_ARG_LEN;
        let reply = |len| Reply {
            len,
            ata_arg: Some(at),
            error: false,
        };
        let info = &self.export.info;
        let max_sectors = self.params.max_sectors;
        let buf_len = self.buf.len();
        let mut resp = AtaArg::new_checked(&mut self.buf[at..]).expect("checked above");
        resp.set_err(0);
        resp.set_status(ATA_STATUS_DRDY);

        let decoded = ata::decode_transfer(command, raw_lba, count, max_sectors, info.sectors);
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

    pub(super) fn config(&mut self) -> Action {
        let at = self.arg_at();
        let Ok(req) = ConfigArg::new_checked(self.arg()) else {
            return self.aoe_error(AoeError::BadArgument, Command::QueryConfig);
        };
        let ccmd = req.command();
        let Some(string) = req.string().filter(|s| s.len() <= MAX_CONFIG_LEN) else {
            return self.aoe_error(AoeError::BadArgument, Command::QueryConfig);
        };
        // The request's string is overwritten by the response: copy it out.
        let mut copy = [0u8; MAX_CONFIG_LEN];
        copy[..string.len()].copy_from_slice(string);
        let arg = &copy[..string.len()];
        let params = self.params;
        let buf = &mut *self.buf;
        let answered = self.export.update_control(|control| {
            let answer = control.apply_config(ccmd, arg)?;
            // Written under the lock, so the string sent is the one set.
            Ok(answer.then(|| {
                ConfigArg::new_checked(&mut buf[at..])
                    .expect("checked above")
                    .write_response(
                        params.buffer_count,
                        params.firmware_version,
                        params.max_sectors,
                        ccmd,
                        control.config(),
                    )
            }))
        });
        match answered {
            Err(error) => self.aoe_error(error, Command::QueryConfig),
            Ok(None) => Action::Drop(Dropped::Silent),
            Ok(Some(written)) => self.reply_written(written),
        }
    }

    pub(super) fn mask(&mut self) -> Action {
        let at = self.arg_at();
        let Ok(req) = MaskArg::new_checked(self.arg()) else {
            return self.aoe_error(AoeError::BadArgument, Command::MacMaskList);
        };
        let (command, count) = (req.command(), req.count());
        if let MaskCommand::Unknown(_) = command {
            return self.aoe_error(AoeError::BadArgument, Command::MacMaskList);
        }
        if command == MaskCommand::Edit && count > 0 && req.directive(count - 1).is_none() {
            return self.aoe_error(AoeError::BadArgument, Command::MacMaskList);
        }
        // The directives are read before the reply overwrites them.
        let mut directives = [(0u8, MacAddr::default()); 255];
        for (i, d) in directives.iter_mut().enumerate().take(count) {
            *d = req.directive(i).unwrap_or_default();
        }
        let buf = &mut *self.buf;
        let written = self.export.update_control(|control| {
            let mut resp = MaskArg::new_checked(&mut buf[at..]).expect("checked above");
            if command == MaskCommand::Edit {
                for (i, &(dcmd, mac)) in directives[..count].iter().enumerate() {
                    if let Err(merror) = control.apply_mask_directive(dcmd, mac) {
                        // The reply echoes the directives before the failing
                        // one; its count is the failing directive's index.
                        resp.set_merror(merror);
                        resp.set_count(i as u8);
                        return Some(MASK_ARG_LEN + i * MASK_DIRECTIVE_LEN);
                    }
                }
            }
            resp.set_merror(0);
            resp.write_list(control.mask())
        });
        self.reply_written(written)
    }

    pub(super) fn reserve(&mut self) -> Action {
        let at = self.arg_at();
        let Ok(req) = ReserveArg::new_checked(self.arg()) else {
            return self.aoe_error(AoeError::BadArgument, Command::ReserveRelease);
        };
        let (rcmd, count) = (req.command(), req.count());
        let force = match rcmd {
            reserve::RCMD_READ => None,
            reserve::RCMD_SET => Some(false),
            reserve::RCMD_FORCE_SET => Some(true),
            _ => return self.aoe_error(AoeError::BadArgument, Command::ReserveRelease),
        };
        let mut macs = [MacAddr::default(); MAC_LIST_CAPACITY];
        let complete = count <= MAC_LIST_CAPACITY
            && (0..count).all(|i| req.mac(i).map(|m| macs[i] = m).is_some());
        let (sender, buf) = (self.sender, &mut *self.buf);
        let written = self.export.update_control(|control| {
            if let Some(force) = force {
                // Who may set is checked before the list itself.
                if !force && !control.reserved_for(&sender) {
                    return Err(AoeError::TargetReserved);
                }
                if !complete {
                    return Err(AoeError::BadArgument);
                }
                control.set_reservation(&sender, force, macs[..count].iter().copied())?;
            }
            Ok(ReserveArg::new_checked(&mut buf[at..])
                .expect("checked above")
                .write_list(control.reservation()))
        });
        match written {
            Ok(written) => self.reply_written(written),
            Err(error) => self.aoe_error(error, Command::ReserveRelease),
        }
    }
}
