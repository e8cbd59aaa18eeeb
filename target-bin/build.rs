//! Compiles the XDP program with clang and turns the shared header's
//! constants into Rust, so the program and the loader cannot disagree.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("../ebpf");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let src = root.join("aoe_steer.bpf.c");
    let header = root.join("aoe_steer.h");
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-changed={}", header.display());

    let obj = out.join("aoe_steer.bpf.o");
    let status = Command::new(env::var("BPF_CLANG").unwrap_or_else(|_| "clang".into()))
        .args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf"])
        .arg("-I/usr/include/x86_64-linux-gnu")
        .arg("-I")
        .arg(&root)
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .status()
        .expect("clang is needed to build the XDP program (apt-get install clang libbpf-dev)");
    assert!(
        status.success(),
        "clang failed to compile {}",
        src.display()
    );

    let mut consts = String::new();
    for line in fs::read_to_string(&header).unwrap().lines() {
        let mut words = line.split_whitespace();
        if let (Some("#define"), Some(name), Some(value)) =
            (words.next(), words.next(), words.next())
        {
            if let Some(name) = name.strip_prefix("AOE_STEER_") {
                writeln!(consts, "pub const {name}: u32 = {value};").unwrap();
            }
        }
    }
    fs::write(out.join("steer_consts.rs"), consts).unwrap();
}
