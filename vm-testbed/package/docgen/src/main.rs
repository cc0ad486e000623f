//! `rvs-docgen`: the Debian package's generated documentation.
//!
//! ```text
//! rvs-docgen man rvsd|rvsadm            the man page (roff) on stdout
//! rvs-docgen completion bash|zsh|fish   rvsadm's completion script on stdout
//! ```
//!
//! rvsd(8) is rendered by `clap_mangen` from rvsd's clap definition
//! ([`rvs_controlplane::cli::Args`]) plus the sections clap does not know (files,
//! signals, exit status). rvsadm parses ipvsadm's syntax by hand, so its page and its
//! completions come from the parser's own switch table ([`rvsadm::args::switches`]) and
//! the `-h` text ([`rvsadm::USAGE`]) that describes each switch: what the parser accepts,
//! the page lists. `SOURCE_DATE_EPOCH` (seconds) dates the pages, for reproducible builds.

mod completion;
mod roff;
mod rvsadm_page;
mod rvsd_page;

use std::io::Write;
use std::process::ExitCode;

const USAGE: &str = "usage: rvs-docgen man rvsd|rvsadm | completion bash|zsh|fish";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let date = roff::date_from_env();
    let text = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["man", "rvsd"] => rvsd_page::render(&date),
        ["man", "rvsadm"] => rvsadm_page::render(&date),
        ["completion", shell] => match completion::render(shell) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("rvs-docgen: {e}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = std::io::stdout().lock().write_all(text.as_bytes()) {
        eprintln!("rvs-docgen: cannot write: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
