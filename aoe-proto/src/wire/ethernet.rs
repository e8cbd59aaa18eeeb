use super::{be16, MacAddr, Truncated};

/// The AoE EtherType.
pub const ETHERTYPE_AOE: u16 = 0x88A2;
/// An 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;

/// An untagged Ethernet II header.
pub const ETH_HEADER_LEN: usize = 14;
/// One 802.1Q tag.
pub const VLAN_TAG_LEN: usize = 4;
/// A header with one 802.1Q tag.
pub const ETH_TAGGED_HEADER_LEN: usize = ETH_HEADER_LEN + VLAN_TAG_LEN;

mod field {
    use core::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const INNER_ETHERTYPE: usize = ETHERTYPE + super::VLAN_TAG_LEN;
    pub const HEADER_LEN: usize = super::ETH_HEADER_LEN;
    pub const TAGGED_HEADER_LEN: usize = super::ETH_TAGGED_HEADER_LEN;
}

/// An Ethernet II frame, with at most one 802.1Q tag.
#[derive(Debug)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buf: T,
    header_len: usize,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Checks that the buffer holds a whole (possibly tagged) header.
    pub fn new_checked(buf: T) -> Result<Self, Truncated> {
        let b = buf.as_ref();
        if b.len() < field::HEADER_LEN {
            return Err(Truncated);
        }
        let header_len = if be16(b, field::ETHERTYPE) == ETHERTYPE_VLAN {
            if b.len() < field::TAGGED_HEADER_LEN {
                return Err(Truncated);
            }
            field::TAGGED_HEADER_LEN
        } else {
            field::HEADER_LEN
        };
        Ok(Self { buf, header_len })
    }

    pub fn dst(&self) -> MacAddr {
        mac(&self.buf.as_ref()[field::DST])
    }

    pub fn src(&self) -> MacAddr {
        mac(&self.buf.as_ref()[field::SRC])
    }

    /// The VLAN id of a tagged frame.
    pub fn vlan_id(&self) -> Option<u16> {
        (self.header_len == field::TAGGED_HEADER_LEN)
            .then(|| be16(self.buf.as_ref(), field::ETHERTYPE + 2) & 0x0FFF)
    }

    /// The EtherType after any VLAN tag.
    pub fn ethertype(&self) -> u16 {
        let at = if self.header_len == field::TAGGED_HEADER_LEN {
            field::INNER_ETHERTYPE
        } else {
            field::ETHERTYPE
        };
        be16(self.buf.as_ref(), at)
    }

    /// 14, or 18 with a VLAN tag.
    pub fn header_len(&self) -> usize {
        self.header_len
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    pub fn set_dst(&mut self, mac: &MacAddr) {
        self.buf.as_mut()[field::DST].copy_from_slice(&mac.0);
    }

    pub fn set_src(&mut self, mac: &MacAddr) {
        self.buf.as_mut()[field::SRC].copy_from_slice(&mac.0);
    }

    /// Writes an untagged AoE header (for frames the target originates).
    pub fn set_ethertype_aoe(&mut self) {
        self.buf.as_mut()[field::ETHERTYPE..field::HEADER_LEN]
            .copy_from_slice(&ETHERTYPE_AOE.to_be_bytes());
        self.header_len = field::HEADER_LEN;
    }
}

fn mac(b: &[u8]) -> MacAddr {
    MacAddr::from_slice(b).expect("a six-byte field")
}
