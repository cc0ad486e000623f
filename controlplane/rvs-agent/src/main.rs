//! `rvs-agent`: see the library's documentation (`rvs_agent`).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match rvs_agent::parse_args(&args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{}", rvs_agent::USAGE);
            return;
        }
        Err(e) => {
            eprintln!("rvs-agent: {e}");
            std::process::exit(2);
        }
    };
    let listener = match std::net::TcpListener::bind(options.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("rvs-agent: cannot listen on {} (--listen): {e}", options.listen);
            std::process::exit(1);
        }
    };
    if let Err(e) = rvs_agent::serve(&listener, &options) {
        eprintln!("rvs-agent: stopped: {e}");
        std::process::exit(1);
    }
}
