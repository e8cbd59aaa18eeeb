//! aoe-bench: a user-space ATA-over-Ethernet initiator and load generator.
//!
//! Discovers one target with Query Config, sizes it with IDENTIFY, then
//! keeps `--depth` requests in flight from `--threads` pinned threads, each
//! on its own AF_PACKET socket with batched sendmmsg/recvmmsg, and reports
//! HdrHistogram latency percentiles, IOPS and throughput.
#![forbid(unsafe_code)]

mod cli;
mod discovery;
mod frames;
mod plan;
mod report;
mod sock;
mod verify;
mod worker;

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use signal_hook::consts::{SIGINT, SIGTERM};

use cli::Cli;
use plan::Plan;
use report::Output;
use verify::State;

fn main() -> ExitCode {
    match run(&Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("aoe-bench: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: &Cli) -> Result<ExitCode, String> {
    let ifi = sock::iface_info(&cli.iface)?;
    let discover_timeout = Duration::from_secs_f64(cli.discover_timeout);
    let target = discovery::find(&ifi, cli.target, discover_timeout)?;
    let plan = Plan::new(cli, ifi.mtu, &target)?;
    if cli.discover_only {
        report::print_target(&target, cli.json);
        return Ok(ExitCode::SUCCESS);
    }
    let mut state = load_state(cli, &plan)?;
    let stop = stop_on_signals()?;
    let running = plan::launch(cli, &plan, &ifi, &target, state.as_ref(), stop)?;
    report::watch(&running, cli.quiet);
    let start = running.start;
    let reports = running.join();
    if let Some(st) = &mut state {
        save_state(cli, st, &reports)?;
    }
    let out = Output::new(cli, ifi.mtu, &plan, &target, start, &reports);
    out.print(cli.json);
    let mut failed = out.errors_total > 0;
    if let (true, Some(v)) = (cli.verify_only, &out.verify) {
        if v.sectors_checked < plan.region_sectors() {
            eprintln!(
                "aoe-bench: --verify-only checked {} of the region's {} sectors",
                v.sectors_checked,
                plan.region_sectors()
            );
            failed = true;
        }
    }
    Ok(ExitCode::from(u8::from(failed)))
}

/// The verify state of the region (None unless verifying). --verify-only
/// needs at least one acknowledged write to check.
fn load_state(cli: &Cli, plan: &Plan) -> Result<Option<State>, String> {
    if !cli.verifying() {
        return Ok(None);
    }
    let state = State::for_region(cli.state.as_deref(), plan.region_sectors())?;
    if let (true, Some(path)) = (cli.verify_only, &cli.state) {
        if state.acknowledged() == 0 {
            return Err(format!(
                "--verify-only: {} records no acknowledged write in the region ({} sectors): nothing to verify",
                path.display(),
                plan.region_sectors()
            ));
        }
    }
    Ok(Some(state))
}

/// Takes the workers' acknowledged generations into the state and, for
/// --verify --state PATH, saves it and says so on stderr in one line:
/// "state: saved N acknowledged sectors to PATH".
fn save_state(cli: &Cli, state: &mut State, reports: &[worker::Report]) -> Result<(), String> {
    for r in reports {
        let at = r.first_lba as usize;
        state.generations[at..at + r.expected.len()].copy_from_slice(&r.expected);
    }
    if let (true, Some(path)) = (cli.verify, &cli.state) {
        state
            .save(path)
            .map_err(|e| format!("saving {}: {e}", path.display()))?;
        eprintln!(
            "state: saved {} acknowledged sectors to {}",
            state.acknowledged(),
            path.display()
        );
    }
    Ok(())
}

/// The flag SIGINT and SIGTERM set to stop the workers (which then wait
/// for the requests in flight); a second signal exits at once.
fn stop_on_signals() -> Result<Arc<AtomicBool>, String> {
    let stop = Arc::new(AtomicBool::new(false));
    for (sig, status) in [(SIGINT, 130), (SIGTERM, 143)] {
        signal_hook::flag::register_conditional_shutdown(sig, status, stop.clone())
            .and_then(|_| signal_hook::flag::register(sig, stop.clone()))
            .map_err(|e| format!("signal handler: {e}"))?;
    }
    Ok(stop)
}
