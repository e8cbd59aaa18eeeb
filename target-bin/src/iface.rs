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
        let mac: MacAddr = read("address")?
            .parse()
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
