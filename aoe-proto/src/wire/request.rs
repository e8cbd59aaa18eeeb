//! The headers of a request, as initiators (the load generator, the tests,
//! the fuzzer's seeds) build them.

use super::{AoeHeader, Command, EthernetFrame, MacAddr, ARG_OFFSET, ETH_HEADER_LEN};

/// The addressing of an untagged AoE request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    pub dst: MacAddr,
    pub src: MacAddr,
    pub shelf: u16,
    pub slot: u8,
    pub command: Command,
    pub tag: u32,
}

impl RequestHeader {
    /// A request to the broadcast address, as discovery and the tests send.
    pub fn broadcast(src: MacAddr, shelf: u16, slot: u8, command: Command, tag: u32) -> Self {
        Self {
            dst: MacAddr::BROADCAST,
            src,
            shelf,
            slot,
            command,
            tag,
        }
    }

    /// Writes the Ethernet and AoE headers (version 1, no flags) at the
    /// start of `buf`; returns where the command argument starts, or
    /// `None` if `buf` is too short for the headers.
    pub fn write(&self, buf: &mut [u8]) -> Option<usize> {
        let mut eth = EthernetFrame::new_checked(buf.get_mut(..ETH_HEADER_LEN)?).ok()?;
        eth.set_dst(&self.dst);
        eth.set_src(&self.src);
        eth.set_ethertype_aoe();
        let mut aoe = AoeHeader::new_checked(buf.get_mut(ETH_HEADER_LEN..ARG_OFFSET)?).ok()?;
        aoe.set_flags(0, 0);
        aoe.set_address(self.shelf, self.slot);
        aoe.set_command(self.command);
        aoe.set_tag(self.tag);
        Some(ARG_OFFSET)
    }

    /// The headers followed by `arg`, as a new frame (not padded).
    pub fn frame(&self, arg: &[u8]) -> Vec<u8> {
        let mut f = vec![0; ARG_OFFSET];
        self.write(&mut f).expect("room for the headers");
        f.extend_from_slice(arg);
        f
    }
}
