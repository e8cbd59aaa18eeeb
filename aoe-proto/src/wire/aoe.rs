use super::{be16, put_be16};

/// Bytes in the common AoE header.
pub const AOE_HEADER_LEN: usize = 10;
/// The protocol version this crate speaks (high nibble of byte 0).
pub const AOE_VERSION: u8 = 1;
/// Flag: this frame is a response.
pub const FLAG_RESPONSE: u8 = 0x8;
/// Flag: the error field is valid.
pub const FLAG_ERROR: u8 = 0x4;

mod field {
    pub const VER_FLAGS: usize = 0;
    pub const ERROR: usize = 1;
    pub const MAJOR: usize = 2;
    pub const MINOR: usize = 4;
    pub const COMMAND: usize = 5;
    pub const TAG: core::ops::Range<usize> = 6..10;
}

byte_code! {
    /// AoE commands (byte 5 of the header).
    Command {
        Ata = 0,
        QueryConfig = 1,
        MacMaskList = 2,
        ReserveRelease = 3,
    } else Other
}

view! {
    /// The common AoE header; the buffer starts right after the EtherType.
    AoeHeader, AOE_HEADER_LEN
}

impl<T: AsRef<[u8]>> AoeHeader<T> {
    pub fn version(&self) -> u8 {
        self.buf.as_ref()[field::VER_FLAGS] >> 4
    }

    pub fn flags(&self) -> u8 {
        self.buf.as_ref()[field::VER_FLAGS] & 0x0F
    }

    pub fn is_response(&self) -> bool {
        self.flags() & FLAG_RESPONSE != 0
    }

    pub fn error(&self) -> u8 {
        self.buf.as_ref()[field::ERROR]
    }

    pub fn shelf(&self) -> u16 {
        be16(self.buf.as_ref(), field::MAJOR)
    }

    pub fn slot(&self) -> u8 {
        self.buf.as_ref()[field::MINOR]
    }

    pub fn command(&self) -> Command {
        self.buf.as_ref()[field::COMMAND].into()
    }

    pub fn tag(&self) -> u32 {
        let b = &self.buf.as_ref()[field::TAG];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The command argument and anything after it.
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[AOE_HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> AoeHeader<T> {
    /// Sets version 1 with the given flags and error code.
    pub fn set_flags(&mut self, flags: u8, error: u8) {
        let b = self.buf.as_mut();
        b[field::VER_FLAGS] = (AOE_VERSION << 4) | (flags & 0x0F);
        b[field::ERROR] = error;
    }

    pub fn set_address(&mut self, shelf: u16, slot: u8) {
        let b = self.buf.as_mut();
        put_be16(b, field::MAJOR, shelf);
        b[field::MINOR] = slot;
    }

    pub fn set_command(&mut self, command: Command) {
        self.buf.as_mut()[field::COMMAND] = command.into();
    }

    pub fn set_tag(&mut self, tag: u32) {
        self.buf.as_mut()[field::TAG].copy_from_slice(&tag.to_be_bytes());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buf.as_mut()[AOE_HEADER_LEN..]
    }
}
