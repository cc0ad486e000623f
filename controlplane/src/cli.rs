//! `rvsd`'s command line, in the library so that the man page generator
//! (`vm-testbed/package/docgen`) renders rvsd(8) from the same definition clap parses.

use std::path::PathBuf;

use clap::Parser;

/// rvs appliance daemon: a userspace L4 load balancer on DPDK.
#[derive(Debug, Parser)]
#[command(
    name = "rvsd",
    version,
    long_about = "rvsd is the rvs appliance daemon: a userspace layer-4 load balancer on DPDK. \
It reads one TOML configuration file, brings up DPDK's EAL and the configured ports, starts \
one poll-mode worker per worker lcore, and serves the REST API (rvsadm talks to it) until \
SIGTERM or SIGINT. SIGHUP re-reads the configuration file and applies it atomically: a file \
that is not valid changes nothing and the error is logged. Under systemd (Type=notify) rvsd \
signals readiness once every worker polls and the REST port listens."
)]
pub struct Args {
    /// The configuration file (TOML).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// Validate the configuration, print every error, and exit (0: valid, 1: invalid).
    #[arg(long)]
    pub check: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn config_is_required_and_check_is_a_flag() {
        assert!(Args::try_parse_from(["rvsd"]).is_err());
        let a = Args::try_parse_from(["rvsd", "-c", "/etc/rvs/rvs.toml", "--check"]).unwrap();
        assert_eq!(a.config, PathBuf::from("/etc/rvs/rvs.toml"));
        assert!(a.check);
    }
}
