//! `--verify` data: every written sector carries its LBA and a generation
//! stamp, the rest is a pattern derived from both; and the state file that
//! remembers the last acknowledged generation of every sector in the region.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use aoe_proto::SECTOR_SIZE;

const MAGIC: &[u8; 8] = b"AOEBSTA1";
const HEADER_LEN: usize = 32;

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Yields the 62 pattern words (bytes 16..512) of sector (lba, generation).
fn pattern_words(lba: u64, generation: u64) -> impl Iterator<Item = u64> {
    let mut x = splitmix(lba ^ generation.rotate_left(29) ^ 0x5AD0_AE00_B0E7_C4ED);
    (0..62).map(move |i| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x.wrapping_add(i)
    })
}

/// Fills one 512-byte sector for (lba, generation).
pub fn fill_sector(sector: &mut [u8], lba: u64, generation: u64) {
    sector[0..8].copy_from_slice(&lba.to_le_bytes());
    sector[8..16].copy_from_slice(&generation.to_le_bytes());
    for (chunk, w) in sector[16..SECTOR_SIZE]
        .chunks_exact_mut(8)
        .zip(pattern_words(lba, generation))
    {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
}

/// Why a sector failed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    WrongLba { found: u64 },
    StaleGeneration { found: u64, expected_at_least: u64 },
    FutureGeneration { found: u64, newest_issued: u64 },
    Corrupt { generation: u64, byte: usize },
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::WrongLba { found } => write!(f, "sector holds LBA stamp {found}"),
            Mismatch::StaleGeneration {
                found,
                expected_at_least,
            } => write!(
                f,
                "stale data: generation {found}, last acknowledged write was {expected_at_least}"
            ),
            Mismatch::FutureGeneration {
                found,
                newest_issued,
            } => write!(
                f,
                "generation {found} newer than any write issued ({newest_issued})"
            ),
            Mismatch::Corrupt { generation, byte } => {
                write!(
                    f,
                    "pattern of generation {generation} differs at byte {byte}"
                )
            }
        }
    }
}

/// Checks a sector read back. `expected` is the generation of the last
/// acknowledged write (0: nothing known, any content is accepted unless it
/// claims to be ours and is torn); `newest` the newest generation ever
/// issued (0: no bound).
pub fn check_sector(sector: &[u8], lba: u64, expected: u64, newest: u64) -> Result<(), Mismatch> {
    let found_lba = u64::from_le_bytes(sector[0..8].try_into().expect("8 bytes"));
    let generation = u64::from_le_bytes(sector[8..16].try_into().expect("8 bytes"));
    if expected == 0 {
        // Nothing known about this sector: anything goes, except a torn
        // copy of our own format. Its generation may come from any earlier
        // run, so it is not bounded by this run's newest.
        if found_lba != lba || generation == 0 {
            return Ok(());
        }
    } else {
        if found_lba != lba {
            return Err(Mismatch::WrongLba { found: found_lba });
        }
        if generation < expected {
            return Err(Mismatch::StaleGeneration {
                found: generation,
                expected_at_least: expected,
            });
        }
        if newest != 0 && generation > newest {
            return Err(Mismatch::FutureGeneration {
                found: generation,
                newest_issued: newest,
            });
        }
    }
    for (i, (chunk, w)) in sector[16..SECTOR_SIZE]
        .chunks_exact(8)
        .zip(pattern_words(lba, generation))
        .enumerate()
    {
        if chunk != w.to_le_bytes() {
            return Err(Mismatch::Corrupt {
                generation,
                byte: 16 + i * 8,
            });
        }
    }
    Ok(())
}

/// Last acknowledged generation per sector of a region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub first_lba: u64,
    pub generations: Vec<u64>,
}

impl State {
    pub fn new(first_lba: u64, sectors: u64) -> Self {
        Self {
            first_lba,
            generations: vec![0; sectors as usize],
        }
    }

    pub fn newest(&self) -> u64 {
        self.generations.iter().copied().max().unwrap_or(0)
    }

    /// Sectors with a known acknowledged generation.
    pub fn acknowledged(&self) -> u64 {
        self.generations.iter().filter(|&&g| g != 0).count() as u64
    }

    /// The state of the first `sectors` sectors of the target: what `path`
    /// records for them if it exists, else nothing known.
    pub fn for_region(path: Option<&Path>, sectors: u64) -> Result<Self, String> {
        let mut state = Self::new(0, sectors);
        let Some(path) = path.filter(|p| p.exists()) else {
            return Ok(state);
        };
        let loaded = Self::load(path).map_err(|e| e.to_string())?;
        if loaded.first_lba != 0 {
            return Err(format!(
                "{}: the state's region does not start at LBA 0",
                path.display()
            ));
        }
        let n = loaded.generations.len().min(state.generations.len());
        state.generations[..n].copy_from_slice(&loaded.generations[..n]);
        if loaded.generations.len() != state.generations.len() {
            eprintln!(
                "aoe-bench: warning: {} covers {} sectors, the region {}",
                path.display(),
                loaded.generations.len(),
                state.generations.len()
            );
        }
        Ok(state)
    }

    /// Binary file: magic, first LBA, sector count, reserved, then one
    /// little-endian u64 per sector.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let mut out = Vec::with_capacity(HEADER_LEN + 8 * self.generations.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.first_lba.to_le_bytes());
        out.extend_from_slice(&(self.generations.len() as u64).to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        for g in &self.generations {
            out.extend_from_slice(&g.to_le_bytes());
        }
        let tmp = path.with_extension("tmp");
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&out)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        // The rename is durable once the directory is.
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        fs::File::open(dir.unwrap_or(Path::new(".")))?.sync_all()
    }

    pub fn load(path: &Path) -> io::Result<Self> {
        let b = fs::read(path)?;
        let bad = |m: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {m}", path.display()),
            )
        };
        if b.len() < HEADER_LEN || &b[..8] != MAGIC {
            return Err(bad("not an aoe-bench state file"));
        }
        let u = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        let first_lba = u(8);
        let n = u(16) as usize;
        if b.len() != HEADER_LEN + 8 * n {
            return Err(bad("truncated state file"));
        }
        let generations = (0..n).map(|i| u(HEADER_LEN + 8 * i)).collect();
        Ok(Self {
            first_lba,
            generations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLDEN: u64 = 9_102_968_243_940_167_234;

    #[test]
    fn roundtrip_and_mismatches() {
        let mut s = [0u8; SECTOR_SIZE];
        fill_sector(&mut s, 77, 5);
        assert_eq!(check_sector(&s, 77, 5, 9), Ok(()));
        assert_eq!(check_sector(&s, 77, 3, 0), Ok(()));
        assert_eq!(check_sector(&s, 77, 0, 0), Ok(()));
        assert!(matches!(
            check_sector(&s, 78, 1, 0),
            Err(Mismatch::WrongLba { found: 77 })
        ));
        assert!(matches!(
            check_sector(&s, 77, 6, 0),
            Err(Mismatch::StaleGeneration { .. })
        ));
        assert!(matches!(
            check_sector(&s, 77, 1, 4),
            Err(Mismatch::FutureGeneration { .. })
        ));
        s[300] ^= 1;
        assert!(matches!(
            check_sector(&s, 77, 1, 0),
            Err(Mismatch::Corrupt { .. })
        ));
        // Unknown sectors: zeros and foreign data pass, our torn data does not.
        assert_eq!(check_sector(&[0u8; SECTOR_SIZE], 77, 0, 0), Ok(()));
        // An unknown sector may hold any earlier run's generation.
        let mut old = [0u8; SECTOR_SIZE];
        fill_sector(&mut old, 77, 1000);
        assert_eq!(check_sector(&old, 77, 0, 10), Ok(()));
        assert!(check_sector(&s, 77, 0, 0).is_err());
    }

    #[test]
    fn pattern_is_stable() {
        // Sectors written by one build are checked by another (--state across
        // runs): the stamp format must never change.
        let mut s = [0u8; SECTOR_SIZE];
        fill_sector(&mut s, 1, 2);
        assert_eq!(&s[..16], &[1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
        let sum = s
            .iter()
            .fold(0u64, |a, &b| a.wrapping_mul(31).wrapping_add(b as u64));
        assert_eq!(sum, GOLDEN);
    }

    #[test]
    fn state_file_roundtrip() {
        let dir = std::env::temp_dir().join(format!("aoe-bench-test-{}", std::process::id()));
        let mut st = State::new(10, 100);
        st.generations[3] = 42;
        st.save(&dir).unwrap();
        let back = State::load(&dir).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(back, st);
        assert_eq!(back.newest(), 42);
        assert_eq!(back.acknowledged(), 1);
    }

    #[test]
    fn region_from_a_state_file() {
        let path = std::env::temp_dir().join(format!("aoe-bench-region-{}", std::process::id()));
        // No file: nothing known.
        let none = State::for_region(Some(&path), 8).unwrap();
        assert_eq!((none.generations.len(), none.acknowledged()), (8, 0));
        let mut st = State::new(0, 4);
        st.generations[1] = 7;
        st.generations[3] = 9;
        st.save(&path).unwrap();
        // A smaller region takes the prefix, a larger one pads with zeros.
        let small = State::for_region(Some(&path), 2).unwrap();
        assert_eq!(small.generations, vec![0, 7]);
        let big = State::for_region(Some(&path), 6).unwrap();
        assert_eq!(big.generations, vec![0, 7, 0, 9, 0, 0]);
        assert_eq!(big.acknowledged(), 2);
        // A state that starts elsewhere is refused.
        State::new(5, 4).save(&path).unwrap();
        assert!(State::for_region(Some(&path), 4).is_err());
        std::fs::write(&path, b"junk").unwrap();
        assert!(State::for_region(Some(&path), 4).is_err());
        std::fs::remove_file(&path).unwrap();
    }
}
