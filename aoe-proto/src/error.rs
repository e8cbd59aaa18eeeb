//! The one place where every failure gets its wire code.

/// AoE-level errors: the response carries the error flag and this code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AoeError {
    UnrecognizedCommand,
    BadArgument,
    DeviceUnavailable,
    ConfigStringPresent,
    UnsupportedVersion,
    TargetReserved,
}

impl AoeError {
    /// The error field of the AoE header.
    pub fn code(self) -> u8 {
        match self {
            AoeError::UnrecognizedCommand => 1,
            AoeError::BadArgument => 2,
            AoeError::DeviceUnavailable => 3,
            AoeError::ConfigStringPresent => 4,
            AoeError::UnsupportedVersion => 5,
            AoeError::TargetReserved => 6,
        }
    }
}

/// ATA-level failures: a normal AoE response whose ATA status has ERR set.
/// The Linux initiator fails the I/O at once on these (it ignores AoE
/// errors and retries until the device is declared down), so every ATA
/// command failure is reported this way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtaFailure {
    /// Unsupported command, bad sector count, or a short write frame.
    Aborted,
    /// The address range passes the end of the export.
    OutOfRange,
    /// A write to a read-only export.
    ReadOnly,
    /// The store failed a read.
    ReadError,
    /// The store failed a write or a flush (I/O error, no space).
    WriteError,
}

/// ATA status: device ready.
pub const ATA_STATUS_DRDY: u8 = 0x40;
/// ATA status: error (see the error register).
pub const ATA_STATUS_ERR: u8 = 0x01;
/// ATA error: command aborted.
pub const ATA_ERR_ABRT: u8 = 0x04;
/// ATA error: ID (address) not found.
pub const ATA_ERR_IDNF: u8 = 0x10;
/// ATA error: uncorrectable data.
pub const ATA_ERR_UNC: u8 = 0x40;

impl AtaFailure {
    /// (status, error register).
    pub fn status_err(self) -> (u8, u8) {
        let err = match self {
            AtaFailure::Aborted | AtaFailure::ReadOnly | AtaFailure::WriteError => ATA_ERR_ABRT,
            AtaFailure::OutOfRange => ATA_ERR_IDNF,
            AtaFailure::ReadError => ATA_ERR_UNC,
        };
        (ATA_STATUS_DRDY | ATA_STATUS_ERR, err)
    }
}
