//! rvsd(8): clap's definition rendered by `clap_mangen`, then what clap does not know.

use clap::CommandFactory;
use rvs_controlplane::cli::Args;

/// The sections after clap's: files, signals, exit status, environment, see also.
const EXTRA: &str = r#".SH FILES
.TP
\fI/etc/rvs/rvs.toml\fR
The configuration read by \fBrvsd.service\fR (a conffile of the Debian package; the example
shipped there uses the kernel-free \fBnet_null\fR ports until its \fBdevice\fR lines name
the server's NICs by PCI address).
.TP
\fI/usr/share/doc/rvs/examples/\fR
Example configurations, one per forwarding mode.
.SH SIGNALS
.TP
\fBSIGHUP\fR
Re-read the configuration file and apply it atomically, as \fBPUT /v1/config\fR does: a
file that cannot be read or is refused changes nothing, and the reason is logged
(\fBsystemctl reload rvsd\fR sends it).
.TP
\fBSIGTERM\fR, \fBSIGINT\fR
Orderly shutdown: VRRP masters resign (priority 0), the workers stop, the ports close.
.SH SYSTEMD
rvsd speaks the \fBsd_notify\fR(3) protocol when \fBNOTIFY_SOCKET\fR is set: \fBREADY=1\fR once
every worker polls and the REST port listens, \fBRELOADING=1\fR and then \fBREADY=1\fR with a
\fBSTATUS=\fR line around a SIGHUP reload, \fBSTOPPING=1\fR at shutdown.
.SH EXIT STATUS
0 after an orderly shutdown or a successful \fB\-\-check\fR; 1 for an invalid configuration
or a failed start\-up (the reason is printed as one paragraph on stderr: missing hugepages,
a port that DPDK cannot open, an address in use); 2 for bad command\-line usage.
.SH ENVIRONMENT
.TP
\fBRUST_LOG\fR
Log filter (default \fBinfo\fR), for example \fBrvs_controlplane=debug\fR.
.TP
\fBNOTIFY_SOCKET\fR
Set by systemd for \fBType=notify\fR services.
.SH SEE ALSO
\fBrvsadm\fR(8), \fBipvsadm\fR(8), \fBdpdk\-devbind\fR(8), \fBsystemctl\fR(1), \fBjournalctl\fR(1)
"#;

/// The whole page.
pub fn render(date: &str) -> String {
    let man = clap_mangen::Man::new(Args::command())
        .section("8")
        .manual("System Administration")
        .source(format!("rvs {}", env!("CARGO_PKG_VERSION")))
        .date(date);
    let mut out = Vec::new();
    man.render(&mut out).expect("rendering into memory does not fail");
    let mut page = String::from_utf8(out).expect("clap_mangen writes UTF-8");
    page.push_str(EXTRA);
    page
}

#[cfg(test)]
mod tests {
    #[test]
    fn page_names_every_option_and_section() {
        let page = super::render("2026-01-01");
        assert!(page.starts_with(".ie") || page.contains(".TH rvsd 8"), "{page}");
        for needle in ["\\-\\-config", "\\-\\-check", ".SH SIGNALS", ".SH EXIT STATUS", "READY=1"] {
            assert!(page.contains(needle), "missing {needle}:\n{page}");
        }
    }
}
