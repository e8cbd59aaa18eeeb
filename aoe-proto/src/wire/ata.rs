/// Bytes in the ATA argument before the data.
pub const ATA_ARG_LEN: usize = 12;

mod field {
    pub const AFLAGS: usize = 0;
    pub const ERR_FEATURE: usize = 1;
    pub const SECTOR_COUNT: usize = 2;
    pub const CMD_STATUS: usize = 3;
    pub const LBA: core::ops::Range<usize> = 4..10;
}

/// aflags: LBA48 command.
pub const AFLAG_EXTENDED: u8 = 0x40;
/// aflags: device/head register bit.
pub const AFLAG_DEVICE: u8 = 0x10;
/// aflags: asynchronous write.
pub const AFLAG_ASYNC: u8 = 0x02;
/// aflags: write command (data follows the argument).
pub const AFLAG_WRITE: u8 = 0x01;

view! {
    /// The ATA argument of command 0; the buffer starts at the argument.
    AtaArg, ATA_ARG_LEN
}

impl<T: AsRef<[u8]>> AtaArg<T> {
    pub fn aflags(&self) -> u8 {
        self.buf.as_ref()[field::AFLAGS]
    }

    pub fn feature(&self) -> u8 {
        self.buf.as_ref()[field::ERR_FEATURE]
    }

    pub fn sector_count(&self) -> u8 {
        self.buf.as_ref()[field::SECTOR_COUNT]
    }

    /// The ATA command of a request.
    pub fn command(&self) -> u8 {
        self.buf.as_ref()[field::CMD_STATUS]
    }

    /// The ATA status of a response.
    pub fn status(&self) -> u8 {
        self.buf.as_ref()[field::CMD_STATUS]
    }

    /// The ATA error register of a response.
    pub fn err(&self) -> u8 {
        self.buf.as_ref()[field::ERR_FEATURE]
    }

    /// All 48 LBA bits, little-endian on the wire.
    pub fn lba(&self) -> u64 {
        let b = &self.buf.as_ref()[field::LBA];
        let mut le = [0u8; 8];
        le[..6].copy_from_slice(b);
        u64::from_le_bytes(le)
    }

    /// The sector data after the argument.
    pub fn data(&self) -> &[u8] {
        &self.buf.as_ref()[ATA_ARG_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> AtaArg<T> {
    pub fn set_aflags(&mut self, v: u8) {
        self.buf.as_mut()[field::AFLAGS] = v;
    }

    pub fn set_feature(&mut self, v: u8) {
        self.buf.as_mut()[field::ERR_FEATURE] = v;
    }

    pub fn set_err(&mut self, v: u8) {
        self.buf.as_mut()[field::ERR_FEATURE] = v;
    }

    pub fn set_sector_count(&mut self, v: u8) {
        self.buf.as_mut()[field::SECTOR_COUNT] = v;
    }

    pub fn set_command(&mut self, v: u8) {
        self.buf.as_mut()[field::CMD_STATUS] = v;
    }

    pub fn set_status(&mut self, v: u8) {
        self.buf.as_mut()[field::CMD_STATUS] = v;
    }

    /// Writes the low 48 bits of `lba` and zeroes the reserved bytes.
    pub fn set_lba(&mut self, lba: u64) {
        let b = self.buf.as_mut();
        b[field::LBA].copy_from_slice(&lba.to_le_bytes()[..6]);
        b[field::LBA.end..ATA_ARG_LEN].fill(0);
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf.as_mut()[ATA_ARG_LEN..]
    }
}
