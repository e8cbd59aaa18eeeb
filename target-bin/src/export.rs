//! `SHELF.SLOT=PATH[,options]` -> an export specification.

use std::path::PathBuf;

use aoe_proto::target::{SHELF_BROADCAST, SLOT_BROADCAST};

use crate::store::{Backend, OpenOptionsSpec};

/// One `--export` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSpec {
    pub shelf: u16,
    pub slot: u8,
    pub path: PathBuf,
    pub read_only: bool,
    /// `None`: by kind (block device -> direct, file -> mmap).
    pub backend: Option<Backend>,
    pub sync: bool,
}

impl ExportSpec {
    /// Parses `SHELF.SLOT=PATH[,OPTION...]`; the message says what is wrong.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (addr, rest) = s
            .split_once('=')
            .ok_or_else(|| format!("'{s}' is not SHELF.SLOT=PATH (e.g. 1.1=/dev/sdb)"))?;
        let (shelf, slot) = addr
            .split_once('.')
            .ok_or_else(|| format!("address '{addr}' is not SHELF.SLOT (e.g. 1.1)"))?;
        let shelf: u16 = shelf
            .parse()
            .map_err(|_| format!("shelf '{shelf}' is not a number from 0 to 65534"))?;
        let slot: u8 = slot
            .parse()
            .map_err(|_| format!("slot '{slot}' is not a number from 0 to 254"))?;
        if shelf == SHELF_BROADCAST {
            return Err("shelf 65535 (0xFFFF) is the broadcast address".into());
        }
        if slot == SLOT_BROADCAST {
            return Err("slot 255 (0xFF) is the broadcast address".into());
        }
        let mut parts = rest.split(',');
        let path = parts.next().unwrap_or_default();
        if path.is_empty() {
            return Err(format!("export {shelf}.{slot} has no path"));
        }
        let (mut read_only, mut backend, mut sync) = (false, None, false);
        for opt in parts {
            match opt {
                "ro" => read_only = true,
                "rw" => read_only = false,
                "direct" => backend = Some(Backend::Direct),
                "mmap" => backend = Some(Backend::Mmap),
                "sync" => sync = true,
                other => {
                    return Err(format!(
                        "unknown export option '{other}' (known: ro, rw, direct, mmap, sync)"
                    ))
                }
            }
        }
        Ok(Self {
            shelf,
            slot,
            path: PathBuf::from(path),
            read_only,
            backend,
            sync,
        })
    }

    pub fn open_options(&self) -> OpenOptionsSpec {
        OpenOptionsSpec {
            read_only: self.read_only,
            backend: self.backend,
            sync: self.sync,
        }
    }

    pub fn name(&self) -> String {
        format!("e{}.{}", self.shelf, self.slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_address_path_and_options() {
        let e = ExportSpec::parse("1.1=/dev/nvme0n1").unwrap();
        assert_eq!((e.shelf, e.slot, e.read_only), (1, 1, false));
        assert_eq!(e.path, PathBuf::from("/dev/nvme0n1"));
        assert_eq!((e.backend, e.sync), (None, false));
        let e = ExportSpec::parse("65534.254=/srv/a=b.img,ro").unwrap();
        assert_eq!((e.shelf, e.slot, e.read_only), (65534, 254, true));
        assert_eq!(e.path, PathBuf::from("/srv/a=b.img"));
        assert_eq!(e.name(), "e65534.254");
        let e = ExportSpec::parse("2.3=/dev/loop0,direct,sync").unwrap();
        assert_eq!((e.backend, e.sync), (Some(Backend::Direct), true));
        let e = ExportSpec::parse("2.3=/dev/loop0,mmap").unwrap();
        assert_eq!(e.backend, Some(Backend::Mmap));
    }

    #[test]
    fn rejects_bad_input_with_a_reason() {
        for (arg, why) in [
            ("1.1", "not SHELF.SLOT=PATH"),
            ("1=/x", "not SHELF.SLOT"),
            ("a.1=/x", "shelf 'a'"),
            ("1.b=/x", "slot 'b'"),
            ("65536.1=/x", "shelf '65536'"),
            ("1.256=/x", "slot '256'"),
            ("65535.1=/x", "broadcast"),
            ("1.255=/x", "broadcast"),
            ("1.1=", "no path"),
            ("1.1=/x,fast", "unknown export option"),
        ] {
            let err = ExportSpec::parse(arg).unwrap_err();
            assert!(err.contains(why), "{arg}: {err}");
        }
    }
}
