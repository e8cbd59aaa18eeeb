use super::{be16, put_be16, AOE_VERSION};

/// Bytes in the Query Config argument before the config string.
pub const CONFIG_ARG_LEN: usize = 8;

mod field {
    pub const BUFFER_COUNT: usize = 0;
    pub const FIRMWARE: usize = 2;
    pub const SECTOR_COUNT: usize = 4;
    pub const VER_CCMD: usize = 5;
    pub const STRING_LEN: usize = 6;
}

byte_code! {
    /// The Query Config sub-command (low nibble of byte 5).
    ConfigCommand {
        /// Read the config string; always answered.
        Read = 0,
        /// Answer only if the string matches exactly.
        Test = 1,
        /// Answer only if the argument is a prefix of the string.
        TestPrefix = 2,
        /// Set the string if it is empty.
        Set = 3,
        /// Set the string unconditionally.
        ForceSet = 4,
    } else Unknown
}

view! {
    /// The Query Config argument; the buffer starts at the argument.
    ConfigArg, CONFIG_ARG_LEN
}

impl<T: AsRef<[u8]>> ConfigArg<T> {
    pub fn buffer_count(&self) -> u16 {
        be16(self.buf.as_ref(), field::BUFFER_COUNT)
    }

    pub fn firmware_version(&self) -> u16 {
        be16(self.buf.as_ref(), field::FIRMWARE)
    }

    pub fn sector_count(&self) -> u8 {
        self.buf.as_ref()[field::SECTOR_COUNT]
    }

    pub fn aoe_version(&self) -> u8 {
        self.buf.as_ref()[field::VER_CCMD] >> 4
    }

    pub fn command(&self) -> ConfigCommand {
        (self.buf.as_ref()[field::VER_CCMD] & 0x0F).into()
    }

    /// The length field; callers must check it against the buffer.
    pub fn string_len(&self) -> usize {
        be16(self.buf.as_ref(), field::STRING_LEN) as usize
    }

    /// The config string, if the buffer holds as many bytes as the length
    /// field says. The frame length is not trusted: aoecfg pads to 1056.
    pub fn string(&self) -> Option<&[u8]> {
        self.buf
            .as_ref()
            .get(CONFIG_ARG_LEN..CONFIG_ARG_LEN + self.string_len())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ConfigArg<T> {
    /// Writes a whole response argument; returns its length, or `None` if
    /// the buffer cannot hold the string.
    pub fn write_response(
        &mut self,
        buffer_count: u16,
        firmware: u16,
        sector_count: u8,
        command: ConfigCommand,
        string: &[u8],
    ) -> Option<usize> {
        let len = CONFIG_ARG_LEN + string.len();
        let b = self.buf.as_mut().get_mut(..len)?;
        put_be16(b, field::BUFFER_COUNT, buffer_count);
        put_be16(b, field::FIRMWARE, firmware);
        b[field::SECTOR_COUNT] = sector_count;
        b[field::VER_CCMD] = (AOE_VERSION << 4) | (u8::from(command) & 0x0F);
        put_be16(b, field::STRING_LEN, string.len() as u16);
        b[CONFIG_ARG_LEN..].copy_from_slice(string);
        Some(len)
    }
}
