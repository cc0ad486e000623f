//! `rvs-perf`: runs rvs's benchmarks and prints one JSON object per line on stdout
//! (diagnostics go to stderr). Exit status: 0 when every selected mode was measured,
//! 1 when a mode failed (a data-path check, or a figure lost in noise), 2 on a usage
//! error.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use rvs_dataplane::conn::MAX_CAPACITY;
use rvs_perf::conn_lookup::{self, LookupOptions};
use rvs_perf::harness::{Mode, Options};
use rvs_perf::pipeline::run_mode;
use rvs_perf::sync;

/// rvs's benchmarks: one JSON object per line on stdout, diagnostics on stderr.
#[derive(Debug, Parser)]
#[command(name = "rvs-perf")]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// The data path on the in-memory driver: ns/packet and Mpps per mode; for the L4
    /// modes also ns per new connection and bytes per connection.
    Pipeline(PipelineArgs),
    /// The connection table alone: hit, miss and insert ns, and its memory.
    ConnLookup(ConnLookupArgs),
    /// Connection sync: the master worker's ns per new connection with sync on and off,
    /// the record rate a backup keeps up with over UDP on 127.0.0.1 (one step per
    /// offered rate, then unpaced), bytes on the wire and the rings' memory.
    Sync(SyncArgs),
    /// RSS-aware Full-NAT local ports: ns per Toeplitz hash (table and bitwise) and per
    /// local port allocation with and without the NIC's RSS spec.
    RssHash(RssHashArgs),
}

#[derive(Debug, clap::Args)]
struct RssHashArgs {
    /// Operations per run.
    #[arg(long, value_name = "N", default_value_t = 2_000_000, value_parser = positive)]
    iters: u64,
    /// Runs per figure (the median is reported).
    #[arg(long, value_name = "N", default_value_t = 7, value_parser = positive)]
    runs: u64,
}

#[derive(Debug, clap::Args)]
struct SyncArgs {
    /// Seconds per offered rate (default 1; quick 0.2), and the budget of the cost
    /// measurement (default 2; quick 0.3).
    #[arg(long, value_name = "F", value_parser = positive_seconds, allow_negative_numbers = true)]
    seconds: Option<f64>,
    /// Smoke run: 0.2 s at 10000 records/s and 0.2 s unpaced, 3 cost runs; fails if a
    /// record is lost at 10000/s (rough figures).
    #[arg(long)]
    quick: bool,
    /// Offered rates in records/s, comma-separated (the unpaced step always follows).
    #[arg(long, value_name = "N[,N..]", value_delimiter = ',', value_parser = positive)]
    rates: Vec<u64>,
    /// Timed runs of each side of the cost measurement (default 5, quick 3).
    #[arg(long, value_name = "N", value_parser = positive)]
    runs: Option<u64>,
    /// Exactly N bursts of 32 per cost run instead of a calibrated length.
    #[arg(long, value_name = "N", value_parser = positive)]
    bursts: Option<u64>,
    /// Both sync sockets' receive buffer (SO_RCVBUF, bytes); default: the system's,
    /// as rvsd.
    #[arg(long, value_name = "BYTES", value_parser = positive)]
    rcvbuf: Option<u64>,
}

#[derive(Debug, clap::Args)]
struct PipelineArgs {
    /// Wall-clock budget per mode, warm-up included (default 2; the L4 modes spend up to
    /// half as much again on new connections).
    #[arg(long, value_name = "F", value_parser = positive_seconds, allow_negative_numbers = true)]
    seconds: Option<f64>,
    /// A ~0.2 s run per mode with 3 runs (smoke test; rough figures).
    #[arg(long)]
    quick: bool,
    /// Only this mode (repeatable, or comma-separated): arp_reply, icmp_echo,
    /// drop_malformed, dr, nat, nat_reply, fullnat, fullnat_reply, tunnel, nat_synproxy,
    /// nat_synproxy_reply, fullnat_synproxy, fullnat_synproxy_reply, and over IPv6 dr6,
    /// nat6, nat6_reply, fullnat6, fullnat6_reply, tunnel6, with the SYN proxy
    /// nat6_synproxy, nat6_synproxy_reply, fullnat6_synproxy, fullnat6_synproxy_reply, and
    /// NAT64 (IPv6 clients, IPv4 servers) nat64, nat64_reply.
    #[arg(long = "mode", value_name = "NAME", value_delimiter = ',', value_parser = mode)]
    modes: Vec<Mode>,
    /// Timed runs of the worker and of the baseline each (default 5, quick 3).
    #[arg(long, value_name = "N", value_parser = positive)]
    runs: Option<u64>,
    /// Exactly N bursts of 32 per run and for the warm-up, instead of a length calibrated
    /// from --seconds (for callgrind instruction counts; the L4 modes use N for the
    /// new-connection runs too).
    #[arg(long, value_name = "N", value_parser = positive)]
    bursts: Option<u64>,
    /// L4 modes: established flows the data packets cycle through (default 1024).
    #[arg(long, value_name = "N", value_parser = positive)]
    flows: Option<u64>,
    /// L4 modes: pages of the connection table (`hugetlb`, rvsd's default; `thp`; `4k`).
    #[arg(long, value_name = "hugetlb|thp|4k", value_parser = page_policy, default_value = "hugetlb")]
    pages: rvs_drivers::hugemem::PagePolicy,
}

#[derive(Debug, clap::Args)]
struct ConnLookupArgs {
    /// Table sizes, comma-separated.
    #[arg(long, value_name = "N[,N..]", value_delimiter = ',', value_parser = table_size,
          default_value = "1000000,10000000")]
    entries: Vec<usize>,
    /// Timed runs of each lookup kind.
    #[arg(long, value_name = "N", value_parser = positive, default_value_t = 3)]
    runs: u64,
    /// Lookups per run (default min(entries, 4194304)).
    #[arg(long, value_name = "N", value_parser = positive)]
    lookups: Option<u64>,
    /// Pages of the table's memory: `hugetlb` (reserved 2 MiB pages, rvsd's default;
    /// transparent ones when too few are free), `thp` (transparent huge pages only) or
    /// `4k` (ordinary pages, as before huge pages).
    #[arg(long, value_name = "hugetlb|thp|4k", value_parser = page_policy, default_value = "hugetlb")]
    pages: rvs_drivers::hugemem::PagePolicy,
}

/// `--pages`.
fn page_policy(s: &str) -> Result<rvs_drivers::hugemem::PagePolicy, String> {
    use rvs_drivers::hugemem::PagePolicy;
    match s {
        "hugetlb" => Ok(PagePolicy::HugeTlb),
        "thp" => Ok(PagePolicy::Transparent),
        "4k" => Ok(PagePolicy::Base),
        _ => Err(format!("`{s}`: expected hugetlb, thp or 4k")),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, help: to stdout, success.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // Usage errors: clap's message, then the subcommands (exit status 2, as before).
            eprint!("{}\n{}", e.render(), Cli::command().render_help());
            return ExitCode::from(2);
        }
    };
    match cli.bench {
        Bench::Pipeline(args) => {
            let (opts, modes) = pipeline_options(args);
            pipeline(&opts, &modes)
        }
        Bench::ConnLookup(args) => {
            let opts = LookupOptions {
                runs: args.runs as usize,
                lookups: args.lookups.map(|n| n as usize),
                pages: args.pages,
            };
            conn_lookup(&opts, &args.entries)
        }
        Bench::Sync(args) => sync(args),
        Bench::RssHash(args) => {
            println!("{}", rvs_perf::rss_hash::run(args.iters, args.runs).to_json());
            ExitCode::SUCCESS
        }
    }
}

/// The three sync measurements, each line printed as soon as it is known; a failed
/// one does not stop the others but makes the exit status 1.
fn sync(args: SyncArgs) -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    match sync::wire_and_memory() {
        Ok(r) => println!("{}", r.to_json()),
        Err(e) => {
            eprintln!("rvs-perf: sync wire: {e}");
            status = ExitCode::FAILURE;
        }
    }
    let mut opts = if args.quick { Options { seconds: 0.3, ..Options::quick() } } else { Options::default() };
    opts.runs = args.runs.map_or(opts.runs, |n| n as usize);
    opts.bursts = args.bursts;
    if let Some(s) = args.seconds {
        opts.seconds = s.max(opts.seconds);
    }
    match sync::emission_cost(&opts) {
        Ok(r) => println!("{}", r.to_json()),
        Err(e) => {
            eprintln!("rvs-perf: sync cost: {e}");
            status = ExitCode::FAILURE;
        }
    }
    let seconds = args.seconds.unwrap_or(if args.quick { 0.2 } else { 1.0 });
    let rates = if !args.rates.is_empty() {
        args.rates
    } else if args.quick {
        vec![sync::QUICK_RATE]
    } else {
        sync::DEFAULT_RATES.to_vec()
    };
    for offered in rates.into_iter().map(Some).chain([None]) {
        match sync::rate_step(offered, seconds, args.rcvbuf.map(|n| n as usize)) {
            Ok(r) => {
                println!("{}", r.to_json());
                if args.quick && offered == Some(sync::QUICK_RATE) && !r.lossless() {
                    eprintln!("rvs-perf: sync: records lost or not installed at {} records/s", sync::QUICK_RATE);
                    status = ExitCode::FAILURE;
                }
            }
            Err(e) => {
                eprintln!("rvs-perf: sync rate {offered:?}: {e}");
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}

/// `pipeline`'s options as the measurement options and the modes to run.
fn pipeline_options(args: PipelineArgs) -> (Options, Vec<Mode>) {
    let mut opts = if args.quick { Options::quick() } else { Options::default() };
    opts.seconds = args.seconds.unwrap_or(opts.seconds);
    opts.runs = args.runs.map_or(opts.runs, |n| n as usize);
    opts.bursts = args.bursts;
    opts.flows = args.flows.map_or(opts.flows, |n| n as usize);
    opts.pages = args.pages;
    let mut modes = args.modes;
    if modes.is_empty() {
        modes = Mode::ALL.to_vec();
    } else {
        // Output in the canonical order whatever order the filter named them in, once each.
        modes.sort_by_key(|m| Mode::ALL.iter().position(|a| a == m));
        modes.dedup();
    }
    (opts, modes)
}

fn mode(name: &str) -> Result<Mode, String> {
    Mode::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Mode::ALL.iter().map(|m| m.name()).collect();
        format!("unknown mode (one of {})", names.join(", "))
    })
}

fn positive(v: &str) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("must be a positive integer".to_string()),
    }
}

fn positive_seconds(v: &str) -> Result<f64, String> {
    let s: f64 = v.parse().map_err(|_| "not a number".to_string())?;
    if s.is_finite() && s > 0.0 {
        Ok(s)
    } else {
        Err("must be positive".to_string())
    }
}

fn table_size(v: &str) -> Result<usize, String> {
    let n = positive(v)? as usize;
    if n > MAX_CAPACITY {
        return Err(format!("at most {MAX_CAPACITY}"));
    }
    Ok(n)
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
