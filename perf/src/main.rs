//! `rvs-perf`: runs rvs's benchmarks and prints one JSON object per line on stdout
//! (diagnostics go to stderr). Exit status: 0 when every selected mode was measured,
//! 1 when a mode failed (a data-path check, or a figure lost in noise), 2 on a usage
//! error.

use std::process::ExitCode;

use rvs_perf::pipeline::{run_mode, Mode, Options};

const USAGE: &str = "\
usage: rvs-perf <subcommand> [options]

subcommands:
  pipeline    the data path on the in-memory driver: ns/packet and Mpps per mode

pipeline options:
  --seconds F   wall-clock budget per mode, warm-up included (default 2)
  --quick       a ~0.2 s run per mode with 3 runs (smoke test; rough figures)
  --mode NAME   only this mode (repeatable, or comma-separated):
                arp_reply, icmp_echo, drop_malformed
  --runs N      timed runs of the worker and of the baseline each (default 5, quick 3)
  --bursts N    exactly N bursts of 32 per run and for the warm-up, instead of a
                length calibrated from --seconds (for callgrind instruction counts)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("pipeline") => match parse_pipeline(&args[1..]) {
            Ok((opts, modes)) => pipeline(&opts, &modes),
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
    let (mut quick, mut seconds, mut runs, mut bursts) = (false, None, None, None);
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
