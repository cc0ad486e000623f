//! `rvs-perf`: runs rvs's benchmarks and prints one JSON object per line on stdout
//! (diagnostics go to stderr). Exit status: 0 when every selected mode was measured,
//! 1 when a mode failed (a data-path check, or a figure lost in noise), 2 on a usage
//! error.

use std::process::ExitCode;

use rvs_dataplane::conn::MAX_CAPACITY;
use rvs_perf::conn_lookup::{self, LookupOptions};
use rvs_perf::harness::{Mode, Options};
use rvs_perf::pipeline::run_mode;

const USAGE: &str = "\
usage: rvs-perf <subcommand> [options]

subcommands:
  pipeline      the data path on the in-memory driver: ns/packet and Mpps per mode;
                for the L4 modes also ns per new connection and bytes per connection
  conn-lookup   the connection table alone: hit, miss and insert ns, and its memory

pipeline options:
  --seconds F   wall-clock budget per mode, warm-up included (default 2; the L4 modes
                spend up to half as much again on new connections)
  --quick       a ~0.2 s run per mode with 3 runs (smoke test; rough figures)
  --mode NAME   only this mode (repeatable, or comma-separated):
                arp_reply, icmp_echo, drop_malformed,
                dr, nat, nat_reply, fullnat, fullnat_reply, tunnel
  --runs N      timed runs of the worker and of the baseline each (default 5, quick 3)
  --bursts N    exactly N bursts of 32 per run and for the warm-up, instead of a
                length calibrated from --seconds (for callgrind instruction counts;
                the L4 modes use N for the new-connection runs too)
  --flows N     L4 modes: established flows the data packets cycle through (default 1024)

conn-lookup options:
  --entries N[,N..]  table sizes (default 1000000,10000000)
  --runs N           timed runs of each lookup kind (default 3)
  --lookups N        lookups per run (default min(entries, 4194304))
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("pipeline") => match parse_pipeline(&args[1..]) {
            Ok((opts, modes)) => pipeline(&opts, &modes),
            Err(msg) => usage_error(&msg),
        },
        Some("conn-lookup") => match parse_conn_lookup(&args[1..]) {
            Ok((opts, sizes)) => conn_lookup(&opts, &sizes),
            Err(msg) => usage_error(&msg),
        },
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => usage_error(&format!("unknown subcommand {other:?}")),
        None => usage_error("no subcommand"),
    }
}

fn usage_error(msg: &str) -> ExitCode {
    eprint!("rvs-perf: {msg}\n{USAGE}");
    ExitCode::from(2)
}

/// Parses `pipeline`'s options into the measurement options and the modes to run.
fn parse_pipeline(args: &[String]) -> Result<(Options, Vec<Mode>), String> {
    let (mut quick, mut seconds, mut runs, mut bursts, mut flows) = (false, None, None, None, None);
    let mut modes = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--quick" => quick = true,
            "--seconds" => {
                let v = value("--seconds")?;
                let s: f64 = v.parse().map_err(|_| format!("--seconds {v:?}: not a number"))?;
                if !(s.is_finite() && s > 0.0) {
                    return Err(format!("--seconds {v:?}: must be positive"));
                }
                seconds = Some(s);
            }
            "--runs" => runs = Some(positive(&value("--runs")?, "--runs")? as usize),
            "--bursts" => bursts = Some(positive(&value("--bursts")?, "--bursts")?),
            "--flows" => flows = Some(positive(&value("--flows")?, "--flows")? as usize),
            "--mode" => {
                for name in value("--mode")?.split(',') {
                    let m = Mode::from_name(name).ok_or_else(|| format!("unknown mode {name:?}"))?;
                    if !modes.contains(&m) {
                        modes.push(m);
                    }
                }
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    let mut opts = if quick { Options::quick() } else { Options::default() };
    opts.seconds = seconds.unwrap_or(opts.seconds);
    opts.runs = runs.unwrap_or(opts.runs);
    opts.bursts = bursts;
    opts.flows = flows.unwrap_or(opts.flows);
    if modes.is_empty() {
        modes = Mode::ALL.to_vec();
    } else {
        // Output in the canonical order whatever order the filter named them in.
        modes.sort_by_key(|m| Mode::ALL.iter().position(|a| a == m));
    }
    Ok((opts, modes))
}

fn positive(v: &str, name: &str) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{name} {v:?}: must be a positive integer")),
    }
}

/// Runs every mode, printing each result as soon as it is known; a failed mode does not
/// stop the others but makes the exit status 1.
fn pipeline(opts: &Options, modes: &[Mode]) -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    for &mode in modes {
        match run_mode(mode, opts) {
            Ok(report) => println!("{}", report.to_json()),
            Err(e) => {
                eprintln!("rvs-perf: {e}");
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}

/// Parses `conn-lookup`'s options into the measurement options and the table sizes.
fn parse_conn_lookup(args: &[String]) -> Result<(LookupOptions, Vec<usize>), String> {
    let mut opts = LookupOptions::default();
    let mut sizes = vec![1_000_000, 10_000_000];
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--entries" => {
                sizes = value("--entries")?
                    .split(',')
                    .map(|v| positive(v, "--entries").map(|n| n as usize))
                    .collect::<Result<_, _>>()?;
                if let Some(&n) = sizes.iter().find(|&&n| n > MAX_CAPACITY) {
                    return Err(format!("--entries {n}: at most {MAX_CAPACITY}"));
                }
            }
            "--runs" => opts.runs = positive(&value("--runs")?, "--runs")? as usize,
            "--lookups" => opts.lookups = Some(positive(&value("--lookups")?, "--lookups")? as usize),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok((opts, sizes))
}

/// Measures every table size in turn (one table in memory at a time).
fn conn_lookup(opts: &LookupOptions, sizes: &[usize]) -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    for &n in sizes {
        match conn_lookup::run(n, opts) {
            Ok(r) => println!("{}", r.to_json()),
            Err(e) => {
                eprintln!("rvs-perf: conn-lookup {n}: {e}");
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}
