//! `rvsadm`: the ipvsadm-compatible operator CLI, speaking to rvsd's REST API.
//!
//! The `rvsadm` package builds without DPDK, libclang or bindgen (it does not depend on
//! the data path), so an operator's workstation can install it alone. It reads rvsd's
//! REST documents through its own serde view types ([`model`]): the JSON is the contract.
//!
//! Contract: ipvsadm 1.31's syntax, messages, exit statuses and listing layout, for the
//! verbs rvs has, over `http://127.0.0.1:8700` (or `--api URL`; `--token-file FILE` sends
//! the bearer token an rvsd with `api.token_file` requires):
//!
//! ```text
//! rvsadm -A|-E -t|-u VIP:PORT [-s SCHED] [-p [SECONDS]] [-M NETMASK] [--client-rate N] [--client-burst N]
//! rvsadm -D -t|-u VIP:PORT
//! rvsadm -C
//! rvsadm -R                      (reads -S lines from stdin and applies them)
//! rvsadm -S [-n]
//! rvsadm -a|-e -t|-u VIP:PORT -r RIP[:PORT] [-g|-m|-i|-b] [-w W] [-x UPPER] [-y LOWER]
//! rvsadm -d -t|-u VIP:PORT -r RIP[:PORT]
//! rvsadm -L|-l [-n] [-c] [--stats] [--rate] [--timeout] [--health] [-t|-u VIP:PORT]
//! rvsadm -Z [-t|-u VIP:PORT]
//! rvsadm --set TCP TCPFIN UDP
//! rvsadm status
//! rvsadm admin -t|-u VIP:PORT -r RIP[:PORT] ready|drain|maint
//! ```
//!
//! Exit status, as ipvsadm 1.31: 0 success; 255 rvsd refused the change (the kernel's
//! words, then rvsd's reason on stderr) or no command was given; 1 rvsd could not be
//! reached or `-L -t` named no service; 2 a usage error (ipvsadm's message on stderr).
//! `tests/rvsadm_compat.rs` in the controlplane compares rvsadm with ipvsadm 1.31 itself.
//!
//! Where rvsadm knowingly differs from ipvsadm, and why (the README lists them all):
//! * `-b` is Full-NAT (as in DPVS's ipvsadm), not `--sched-flags`.
//! * `-E`/`-e` change only what is given; `-E … -p 0` turns persistence off.
//! * Names are accepted on input (`-t web:http`) but output is always numeric; `-n` is
//!   accepted and changes nothing.
//! * `-S` adds ` -x N`/` -y N` for thresholds so a round trip keeps them.
//! * `-L -c -t VIP:PORT` filters connections by service; `-Z -t VIP:PORT` sends
//!   `POST /v1/stats/zero?service=tcp/VIP/PORT`.
//! * `--tun-type` is `ipip` only (rvs encapsulates in IPIP); `--persistent-conn` counts 0;
//!   `-M` must be contiguous.
//! * No IPVS sync daemon (rvs's sync is `[ha]`): `--daemon` lists nothing, `--stop-daemon`
//!   says none runs, `--start-daemon` is refused (255).
//! * `-R` checks every line first and exits 255 if any line was refused.
//! * `-L --health` (rvs's own) appends each server's health state, admin state, last probe
//!   latency in ms and last result in words to the plain listing; it is refused with every
//!   other listing option (`-c`, `--timeout`, `--daemon`, `--stats`, `--rate`,
//!   `--thresholds`, `--persistent-conn`, `--tun-info`).
//! * `-A`/`-E --client-rate N --client-burst M` (rvs's own) set the service's per-client
//!   rate of new connections (`client_rate`, `client_burst`; `--client-rate 0` lifts it);
//!   only `-L --health` and `-S` show them, and only when a rate is set.
//!
//! Modules: [`args`] (parsing), [`client`] (HTTP), [`model`] (REST documents), [`format`](mod@format)
//! (listings), [`exec`] (verbs → requests → output).

pub mod args;
pub mod client;
pub mod exec;
pub mod format;
pub mod model;

use std::io::{BufRead, Write};

use self::args::Command;
use self::client::{Client, Endpoint, DEFAULT_API};

/// Exit status of success.
pub const EXIT_OK: i32 = 0;
/// Exit status when rvsd refused a request or could not be reached.
pub const EXIT_FAILURE: i32 = 1;
/// Exit status when rvsd refused a change (ipvsadm's `return -1` from main).
pub const EXIT_REFUSED: i32 = 255;
/// Exit status of a usage error.
pub const EXIT_USAGE: i32 = 2;

/// The `-h` text.
pub const USAGE: &str = "\
Usage:
  rvsadm -A|E -t|u service-address [-s scheduler] [-p [timeout]] [-M netmask]
  rvsadm -D -t|u service-address
  rvsadm -C
  rvsadm -R
  rvsadm -S [-n]
  rvsadm -a|e -t|u service-address -r server-address [options]
  rvsadm -d -t|u service-address -r server-address
  rvsadm -L|l [options]
  rvsadm -Z [-t|u service-address]
  rvsadm --set tcp tcpfin udp
  rvsadm status
  rvsadm admin -t|u service-address -r server-address ready|drain|maint
  rvsadm -h

Commands:
Either long or short options are allowed.
  --add-service     -A        add virtual service with options
  --edit-service    -E        edit virtual service with options
  --delete-service  -D        delete virtual service
  --clear           -C        clear the whole table
  --restore         -R        restore rules from stdin
  --save            -S        save rules to stdout
  --add-server      -a        add real server with options
  --edit-server     -e        edit real server with options
  --delete-server   -d        delete real server
  --list            -L|-l     list the table
  --zero            -Z        zero counters in a service or all services
  --set tcp tcpfin udp        set connection timeout values (seconds, 0 = unchanged)
  --start-daemon    master|backup   refused: rvsd syncs connections itself ([ha])
  --stop-daemon     master|backup   answers as ipvsadm with no daemon running
  status                      ports, workers, VRRP instances and drops of rvsd
  ha step-down VRID [ipv4|ipv6]  the VRRP master of VRID resigns (priority 0; no preemption
                              for 300 s); the family picks a VRID's IPv4 or IPv6 instance
  admin ... ready|drain|maint  set a real server's admin state: drain = no new
                              connections (established ones continue), maint = out of
                              the table with its health probes paused, ready = normal
  --help            -h        display this help message
  --version         -v        display rvsadm's version

Options:
  --tcp-service  -t service-address   service-address is host[:port]
  --udp-service  -u service-address   service-address is host[:port]
  --scheduler    -s scheduler         one of rr|wrr|lc|wlc|sed|nq|sh|dh|lblc|lblcr|fo|ovf|mh|twos|...,
                                      the default scheduler is wlc.
  --persistent   -p [timeout]         persistent service (default 360 s; -E ... -p 0 turns it off)
  --netmask      -M netmask           persistent granularity mask
  --real-server  -r server-address    server-address is host (and port)
  --gatewaying   -g                   gatewaying (direct routing) (default)
  --ipip         -i                   ipip encapsulation (tunneling)
  --masquerading -m                   masquerading (NAT)
  --fullnat      -b                   full NAT (source rewritten to a local address)
  --weight       -w weight            capacity of real server
  --u-threshold  -x uthreshold        upper threshold of connections
  --l-threshold  -y lthreshold        lower threshold of connections
  --connection   -c                   output of current connections
  --timeout                           output of timeout (tcp tcpfin udp)
  --stats                             output of statistics information
  --rate                              output of rate information
  --exact        -X                   expand numbers (display exact values)
  --thresholds                        output of thresholds information
  --persistent-conn                   output of persistent connection info (0: rvs has no templates)
  --tun-info                          output of tunnel information
  --health                            output of each server's health (rvs's own): state,
                                      admin state, last probe latency in ms, last result
  --client-rate  N                    new connections per second per client (rvs's own,
                                      -A/-E; 0 lifts the limit)
  --client-burst N                    depth of each client's bucket (rvs's own, -A/-E;
                                      default: the rate)
  --nosort                            disable sorting output of service/server entries
  --sort                              does nothing, for backwards compatibility
  --daemon                            output of daemon information (none: rvs syncs through [ha])
  --tun-type     type                 one of ipip (rvs tunnels in IPIP only)
  --numeric      -n                   numeric output of addresses and ports (always on)
  --api URL                           rvsd's REST address (default http://127.0.0.1:8700)
  --token-file FILE                   file holding rvsd's bearer token (api.token_file)
";

/// Runs rvsadm with `args` (without the program name); returns the exit status.
pub fn run<S: AsRef<str>>(args: &[S], stdin: &mut dyn BufRead, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let inv = match args::parse(args) {
        Ok(inv) => inv,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return e.exit_status();
        }
    };
    match inv.command {
        Command::Help => {
            let _ = out.write_all(USAGE.as_bytes());
            return EXIT_OK;
        }
        Command::Version => {
            let _ = writeln!(
                out,
                "rvsadm v{} (ipvsadm 1.31 syntax, IPVS v1.2.1 listings, over rvsd's REST API)",
                env!("CARGO_PKG_VERSION")
            );
            return EXIT_OK;
        }
        _ => {}
    }
    let endpoint = match Endpoint::parse(inv.api.as_deref().unwrap_or(DEFAULT_API)) {
        Ok(e) => e,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return EXIT_USAGE;
        }
    };
    let token = match inv.token_file.as_deref().map(read_token).transpose() {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return EXIT_FAILURE;
        }
    };
    let client = Client::new(endpoint).with_token(token);
    exec::execute(&client, &inv.command, &mut exec::Io { stdin, out, err })
}

/// Reads the bearer token from `path` (surrounding whitespace removed, as rvsd does).
fn read_token(path: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("Can't read token file {path}: {e}"))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("token file {path} holds no token"));
    }
    Ok(token.to_string())
}
