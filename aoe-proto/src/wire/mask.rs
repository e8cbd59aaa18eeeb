use super::MacAddr;

/// Bytes in the Mac Mask List argument before the directives.
pub const MASK_ARG_LEN: usize = 4;
/// Bytes in one directive.
pub const MASK_DIRECTIVE_LEN: usize = 8;

mod field {
    pub const MCMD: usize = 1;
    pub const MERROR: usize = 2;
    pub const COUNT: usize = 3;
    /// Within a directive.
    pub const DCMD: usize = 1;
    pub const MAC: core::ops::Range<usize> = 2..8;
}

byte_code! {
    /// MCmd values.
    MaskCommand {
        Read = 0,
        Edit = 1,
    } else Unknown
}

/// DCmd: no directive.
pub const DCMD_NONE: u8 = 0;
/// DCmd: add the MAC to the list.
pub const DCMD_ADD: u8 = 1;
/// DCmd: delete the MAC from the list.
pub const DCMD_DELETE: u8 = 2;

/// MError: unspecified error.
pub const MERROR_UNSPECIFIED: u8 = 1;
/// MError: bad DCmd directive.
pub const MERROR_BAD_DCMD: u8 = 2;
/// MError: mask list full.
pub const MERROR_LIST_FULL: u8 = 3;

view! {
    /// The Mac Mask List argument; the buffer starts at the argument.
    MaskArg, MASK_ARG_LEN
}

impl<T: AsRef<[u8]>> MaskArg<T> {
    pub fn command(&self) -> MaskCommand {
        self.buf.as_ref()[field::MCMD].into()
    }

    pub fn merror(&self) -> u8 {
        self.buf.as_ref()[field::MERROR]
    }

    pub fn count(&self) -> usize {
        self.buf.as_ref()[field::COUNT] as usize
    }

    /// Directive `i` as (DCmd, MAC), if the buffer holds it.
    pub fn directive(&self, i: usize) -> Option<(u8, MacAddr)> {
        let at = MASK_ARG_LEN + i * MASK_DIRECTIVE_LEN;
        let d = self.buf.as_ref().get(at..at + MASK_DIRECTIVE_LEN)?;
        Some((d[field::DCMD], MacAddr::from_slice(&d[field::MAC])?))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> MaskArg<T> {
    pub fn set_merror(&mut self, v: u8) {
        self.buf.as_mut()[field::MERROR] = v;
    }

    pub fn set_count(&mut self, n: u8) {
        self.buf.as_mut()[field::COUNT] = n;
    }

    /// Writes `macs` as the directive list (DCmd 0) and sets the count;
    /// returns the argument length, or `None` if the buffer is too short.
    pub fn write_list(&mut self, macs: &[MacAddr]) -> Option<usize> {
        let len = MASK_ARG_LEN + macs.len() * MASK_DIRECTIVE_LEN;
        let b = self.buf.as_mut().get_mut(..len)?;
        b[field::COUNT] = macs.len() as u8;
        for (d, mac) in b[MASK_ARG_LEN..]
            .chunks_exact_mut(MASK_DIRECTIVE_LEN)
            .zip(macs)
        {
            d[0] = 0;
            d[field::DCMD] = DCMD_NONE;
            d[field::MAC].copy_from_slice(&mac.0);
        }
        Some(len)
    }
}
