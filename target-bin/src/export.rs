//! `SHELF.SLOT=PATH[,options]` -> an export specification.

use std::path::PathBuf;

use aoe_proto::target::{SHELF_BROADCAST, SLOT_BROADCAST};

use crate::store::{Backend, Durability, OpenOptionsSpec};

/// One `--export` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSpec {
    pub shelf: u16,
    pub slot: u8,
    pub path: PathBuf,
    pub read_only: bool,
    /// `None`: by kind (block device -> direct, file -> buffered).
    pub backend: Option<Backend>,
    /// `None`: the global default (durable unless `--writeback`).
    pub durability: Option<Durability>,
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
        let (mut read_only, mut backend, mut durability) = (false, None, None);
        for opt in parts {
            match opt {
                "ro" => read_only = true,
                "rw" => read_only = false,
                "direct" => backend = Some(Backend::Direct),
                "buffered" => backend = Some(Backend::Buffered),
                // `sync` is the earlier spelling of `durable`.
                "durable" | "sync" => durability = Some(Durability::Durable),
                "writeback" => durability = Some(Durability::Writeback),
                "mmap" => {
                    return Err(
                        "the mmap backend is retired (a full filesystem or a disk error \
                                killed the process with SIGBUS): files are served through the \
                                page cache by `buffered`, the default for files"
                            .into(),
                    )
                }
                other => {
                    return Err(format!(
                        "unknown export option '{other}' \
                         (known: ro, rw, durable, writeback, buffered, direct)"
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
            durability,
        })
    }

    /// How to open it; `default` is the durability of exports that do
    /// not choose their own.
    pub fn open_options(&self, default: Durability) -> OpenOptionsSpec {
        OpenOptionsSpec {
            read_only: self.read_only,
            backend: self.backend,
            durability: self.durability.unwrap_or(default),
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
        assert_eq!((e.backend, e.durability), (None, None));
        let e = ExportSpec::parse("65534.254=/srv/a=b.img,ro").unwrap();
        assert_eq!((e.shelf, e.slot, e.read_only), (65534, 254, true));
        assert_eq!(e.path, PathBuf::from("/srv/a=b.img"));
        assert_eq!(e.name(), "e65534.254");
        let e = ExportSpec::parse("2.3=/dev/loop0,direct,sync").unwrap();
        assert_eq!(
            (e.backend, e.durability),
            (Some(Backend::Direct), Some(Durability::Durable))
        );
        let e = ExportSpec::parse("2.3=/srv/a.img,buffered,writeback").unwrap();
        assert_eq!(
            (e.backend, e.durability),
            (Some(Backend::Buffered), Some(Durability::Writeback))
        );
        assert_eq!(
            e.open_options(Durability::Durable).durability,
            Durability::Writeback,
            "an export's own choice wins over the global default"
        );
        let e = ExportSpec::parse("2.3=/srv/a.img,durable").unwrap();
        assert_eq!(
            e.open_options(Durability::Writeback).durability,
            Durability::Durable
        );
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
            ("1.1=/x,mmap", "`buffered`"),
        ] {
            let err = ExportSpec::parse(arg).unwrap_err();
            assert!(err.contains(why), "{arg}: {err}");
        }
    }
}
