//! The AFL++ target. Built by `cargo afl build` (which sets `--cfg
//! fuzzing`) it is the persistent-mode harness afl-fuzz runs; outside
//! afl-fuzz that binary reads one input from stdin, so
//! `target/afl/release/aoe_target < crash-file` replays a crash.
//!
//! Built by plain cargo it is a replayer with no AFL++ runtime: each
//! argument is an input file (or a directory of them) run through the same
//! checks, with the panic message and a backtrace on the first failure.

#[cfg(fuzzing)]
fn main() {
    afl::fuzz!(|data: &[u8]| {
        aoe_proto_fuzz::run(data);
    });
}

#[cfg(not(fuzzing))]
fn main() -> std::io::Result<()> {
    use std::io::Read;
    let args: Vec<std::path::PathBuf> = std::env::args_os().skip(1).map(Into::into).collect();
    if args.is_empty() {
        let mut data = Vec::new();
        std::io::stdin().read_to_end(&mut data)?;
        aoe_proto_fuzz::run(&data);
        println!("stdin: ok");
        return Ok(());
    }
    let mut files = Vec::new();
    for arg in args {
        if arg.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(&arg)?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()?;
            entries.retain(|p| p.is_file());
            entries.sort();
            files.extend(entries);
        } else {
            files.push(arg);
        }
    }
    for file in &files {
        eprintln!("replaying {}", file.display());
        aoe_proto_fuzz::run(&std::fs::read(file)?);
    }
    println!("{} input(s): ok", files.len());
    Ok(())
}
