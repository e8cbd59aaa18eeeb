//! What the target needs to know about its network interface, from sysfs.

use std::fs;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use aoe_proto::MacAddr;

#[derive(Debug, Clone)]
pub struct Interface {
    pub name: String,
    pub mac: MacAddr,
    pub mtu: usize,
    pub rx_queues: u32,
}

impl Interface {
    pub fn lookup(name: &str) -> Result<Self> {
        let dir = PathBuf::from("/sys/class/net").join(name);
        if name.is_empty() || name.contains('/') || !dir.exists() {
            bail!("no network interface named '{name}' (see `ip link`)");
        }
        let read = |f: &str| {
            fs::read_to_string(dir.join(f))
                .map(|s| s.trim().to_string())
                .with_context(|| format!("reading {}/{f}", dir.display()))
        };
        let mac = parse_mac(&read("address")?)
            .with_context(|| format!("interface {name} has no Ethernet address"))?;
        let mtu = read("mtu")?.parse().context("parsing the MTU")?;
        let rx_queues = fs::read_dir(dir.join("queues"))
            .with_context(|| format!("listing the queues of {name}"))?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
            .count() as u32;
        Ok(Self {
            name: name.to_string(),
            mac,
            mtu,
            rx_queues,
        })
    }
}

fn parse_mac(s: &str) -> Option<MacAddr> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_sysfs_addresses() {
        assert_eq!(
            super::parse_mac("02:00:0a:ff:00:01"),
            Some([2, 0, 0x0a, 0xff, 0, 1])
        );
        assert_eq!(super::parse_mac("02:00"), None);
        assert_eq!(super::parse_mac("02:00:0a:ff:00:01:07"), None);
    }
}
