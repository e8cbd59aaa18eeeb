//! What initiators can change about an export: the config string, the Mac
//! Mask List and the reservation. Pure state and its rules; the wire side
//! is in `response.rs`. Kept in memory, as vblade does.

use crate::wire::{mask, ConfigCommand, MacAddr};
use crate::{AoeError, MAX_CONFIG_LEN};

/// How many MACs a mask list or a reserve list holds.
pub const MAC_LIST_CAPACITY: usize = 32;

/// A fixed-capacity list of MACs (no allocation after start-up).
#[derive(Debug, Clone)]
pub(super) struct MacList {
    macs: [MacAddr; MAC_LIST_CAPACITY],
    len: usize,
}

impl MacList {
    const fn new() -> Self {
        Self {
            macs: [MacAddr([0; 6]); MAC_LIST_CAPACITY],
            len: 0,
        }
    }

    pub(super) fn as_slice(&self) -> &[MacAddr] {
        &self.macs[..self.len]
    }

    pub(super) fn contains(&self, mac: &MacAddr) -> bool {
        self.as_slice().contains(mac)
    }

    pub(super) fn is_empty(&self) -> bool {
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
}

/// The control state of one export.
#[derive(Debug, Clone)]
pub struct Control {
    config: [u8; MAX_CONFIG_LEN],
    config_len: usize,
    pub(super) mask: MacList,
    pub(super) reserve: MacList,
}

impl Default for Control {
    fn default() -> Self {
        Self::new()
    }
}

impl Control {
    pub const fn new() -> Self {
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

    /// Mask or reserve list non-empty: some initiators are refused.
    pub fn restricted(&self) -> bool {
        !self.mask.is_empty() || !self.reserve.is_empty()
    }

    /// The Mac Mask List lets `mac` in (an empty list lets everyone in).
    pub fn admits(&self, mac: &MacAddr) -> bool {
        self.mask.is_empty() || self.mask.contains(mac)
    }

    /// No reservation, or `mac` holds it.
    pub fn reserved_for(&self, mac: &MacAddr) -> bool {
        self.reserve.is_empty() || self.reserve.contains(mac)
    }

    /// Applies a Query Config sub-command with argument `arg` (at most
    /// [`MAX_CONFIG_LEN`] bytes). `Ok(true)`: answer with the stored
    /// string; `Ok(false)`: stay silent; `Err`: answer with that error.
    pub fn apply_config(&mut self, ccmd: ConfigCommand, arg: &[u8]) -> Result<bool, AoeError> {
        match ccmd {
            ConfigCommand::Read => Ok(true),
            ConfigCommand::Test => Ok(self.config() == arg),
            ConfigCommand::TestPrefix => Ok(self.config().starts_with(arg)),
            // A retransmitted set of the same string must not fail.
            ConfigCommand::Set if self.config_len == 0 || self.config() == arg => {
                self.set_config(arg);
                Ok(true)
            }
            ConfigCommand::Set => Err(AoeError::ConfigStringPresent),
            ConfigCommand::ForceSet => {
                self.set_config(arg);
                Ok(true)
            }
            ConfigCommand::Unknown(_) => Err(AoeError::BadArgument),
        }
    }

    fn set_config(&mut self, s: &[u8]) {
        self.config[..s.len()].copy_from_slice(s);
        self.config_len = s.len();
    }

    /// Applies one Mac Mask List directive; `Err(MError)` if it fails.
    pub fn apply_mask_directive(&mut self, dcmd: u8, mac: MacAddr) -> Result<(), u8> {
        match dcmd {
            mask::DCMD_NONE => Ok(()),
            mask::DCMD_ADD if self.mask.add(mac) => Ok(()),
            mask::DCMD_ADD => Err(mask::MERROR_LIST_FULL),
            mask::DCMD_DELETE => {
                self.mask.remove(&mac);
                Ok(())
            }
            _ => Err(mask::MERROR_BAD_DCMD),
        }
    }

    /// Replaces the reservation with `macs` (empty: release). A plain set
    /// (`force` false) is refused while another initiator holds it.
    pub fn set_reservation(
        &mut self,
        sender: &MacAddr,
        force: bool,
        macs: impl ExactSizeIterator<Item = MacAddr>,
    ) -> Result<(), AoeError> {
        if !force && !self.reserved_for(sender) {
            return Err(AoeError::TargetReserved);
        }
        if macs.len() > MAC_LIST_CAPACITY {
            return Err(AoeError::BadArgument);
        }
        self.reserve = MacList::new();
        for mac in macs {
            self.reserve.add(mac);
        }
        Ok(())
    }
}
