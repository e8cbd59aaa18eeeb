//! Writes the seed corpus (see `src/seeds.rs`) as one file per seed.
//!
//! `cargo run --bin make_corpus [-- DIR]` (default `corpus`, run in fuzz/)
//! rewrites the files and removes files in DIR that are no longer seeds;
//! `cargo run --bin make_corpus -- --check [DIR]` only compares and exits
//! non-zero if DIR is not exactly what the generator writes.

#[path = "../seeds.rs"]
mod seeds;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut check = false;
    let mut dir = PathBuf::from("corpus");
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--check" => check = true,
            "-h" | "--help" => {
                eprintln!("usage: make_corpus [--check] [DIR]");
                return ExitCode::SUCCESS;
            }
            _ => dir = PathBuf::from(arg),
        }
    }
    match make(&dir, check) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(stale) => {
            eprintln!(
                "{} file(s) in {} differ from the generator: run `cargo run --bin make_corpus` in fuzz/",
                stale,
                dir.display()
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("make_corpus: {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}

/// Writes (or with `check`, compares) every seed; returns how many files
/// differed, were missing or were extra.
fn make(dir: &std::path::Path, check: bool) -> std::io::Result<usize> {
    if !check {
        std::fs::create_dir_all(dir)?;
    }
    let seeds = seeds::seeds();
    let names: BTreeSet<&str> = seeds.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), seeds.len(), "two seeds share a name");
    let mut differing = 0;
    for (name, bytes) in &seeds {
        let path = dir.join(name);
        if std::fs::read(&path).ok().as_deref() == Some(bytes.as_slice()) {
            continue;
        }
        differing += 1;
        if check {
            eprintln!("stale or missing: {}", path.display());
        } else {
            std::fs::write(&path, bytes)?;
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if names.contains(name.to_string_lossy().as_ref()) {
            continue;
        }
        differing += 1;
        if check {
            eprintln!("not a seed: {}", entry.path().display());
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    if !check {
        println!("wrote {} seeds to {}", seeds.len(), dir.display());
        return Ok(0);
    }
    Ok(differing)
}
