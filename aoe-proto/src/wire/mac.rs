//! Ethernet addresses.

use core::fmt;
use core::str::FromStr;

/// A 48-bit Ethernet address. Prints and parses as `02:00:0a:ff:00:01`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff
    pub const BROADCAST: MacAddr = MacAddr([0xFF; 6]);

    /// The address from the first six bytes of `b`, if it has them.
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        Some(Self(b.get(..6)?.try_into().ok()?))
    }

    /// A group address (multicast or broadcast): the I/G bit of the first
    /// octet. No station sends from one, so a request claiming one as its
    /// source is forged or broken, and answering it would flood the segment.
    pub fn is_group(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    pub fn octets(&self) -> [u8; 6] {
        self.0
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(b: [u8; 6]) -> Self {
        Self(b)
    }
}

impl AsRef<[u8]> for MacAddr {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A string that is not six colon-separated hex octets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadMacAddr(pub String);

impl fmt::Display for BadMacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "'{}' is not a MAC address like 02:00:0a:ff:00:01",
            self.0
        )
    }
}

impl std::error::Error for BadMacAddr {}

impl FromStr for MacAddr {
    type Err = BadMacAddr;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadMacAddr(s.to_string());
        let mut mac = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut mac {
            let part = parts.next().ok_or_else(bad)?;
            if part.is_empty() || part.len() > 2 {
                return Err(bad());
            }
            *b = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        match parts.next() {
            None => Ok(Self(mac)),
            Some(_) => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::MacAddr;

    #[test]
    fn prints_and_parses() {
        let m: MacAddr = "02:00:0a:ff:00:01".parse().unwrap();
        assert_eq!(m, MacAddr([2, 0, 0x0a, 0xff, 0, 1]));
        assert_eq!(m.to_string(), "02:00:0a:ff:00:01");
        assert_eq!("2:0:A:FF:0:1".parse::<MacAddr>().unwrap(), m);
        for bad in [
            "",
            "02:00",
            "02:00:0a:ff:00:01:07",
            "02:00:0a:ff:00:zz",
            "020:0:0:0:0:0",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn group_addresses() {
        assert!(MacAddr::BROADCAST.is_group());
        assert!(MacAddr([0x01, 0x00, 0x5e, 0, 0, 1]).is_group());
        assert!(MacAddr([0x33, 0x33, 0, 0, 0, 1]).is_group());
        assert!(!MacAddr([0x02, 0, 0, 0, 0, 1]).is_group());
    }
}
