use super::MacAddr;

/// Bytes in the Reserve/Release argument before the MAC list.
pub const RESERVE_ARG_LEN: usize = 2;
/// Bytes of one MAC in the list.
const MAC_LEN: usize = 6;

mod field {
    pub const RCMD: usize = 0;
    pub const NMACS: usize = 1;
}

/// RCmd: read the reserve list.
pub const RCMD_READ: u8 = 0;
/// RCmd: set the list if unreserved or the sender holds the reservation.
pub const RCMD_SET: u8 = 1;
/// RCmd: set the list whoever holds it.
pub const RCMD_FORCE_SET: u8 = 2;

view! {
    /// The Reserve/Release argument; the buffer starts at the argument.
    ReserveArg, RESERVE_ARG_LEN
}

impl<T: AsRef<[u8]>> ReserveArg<T> {
    pub fn command(&self) -> u8 {
        self.buf.as_ref()[field::RCMD]
    }

    pub fn count(&self) -> usize {
        self.buf.as_ref()[field::NMACS] as usize
    }

    /// MAC `i` of the list, if the buffer holds it.
    pub fn mac(&self, i: usize) -> Option<MacAddr> {
        let at = RESERVE_ARG_LEN + i * MAC_LEN;
        MacAddr::from_slice(self.buf.as_ref().get(at..at + MAC_LEN)?)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ReserveArg<T> {
    /// Writes the list and its count; returns the argument length, or
    /// `None` if the buffer is too short.
    pub fn write_list(&mut self, macs: &[MacAddr]) -> Option<usize> {
        let len = RESERVE_ARG_LEN + macs.len() * MAC_LEN;
        let b = self.buf.as_mut().get_mut(..len)?;
        b[field::NMACS] = macs.len() as u8;
        for (d, mac) in b[RESERVE_ARG_LEN..].chunks_exact_mut(MAC_LEN).zip(macs) {
            d.copy_from_slice(&mac.0);
        }
        Some(len)
    }
}
