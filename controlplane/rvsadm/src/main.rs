//! `rvsadm`, the ipvsadm-compatible operator CLI of rvs; see the `rvsadm` library for the
//! syntax, the exit statuses and the differences from ipvsadm.

use std::io;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
    let code = rvsadm::run(&args, &mut io::stdin().lock(), &mut io::stdout().lock(), &mut io::stderr());
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
