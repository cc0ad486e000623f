//! rvsadm's shell completions, rendered by `clap_complete` from a clap command built out
//! of the parser's switch table ([`rvsadm::args::switches`]); clap never parses rvsadm's
//! arguments, it only describes them to the shell.

use clap::{Arg, ArgAction, Command, ValueHint};
use clap_complete::Shell;
use rvs_dataplane::types::SchedulerKind;

/// The schedulers the data path knows (`-s`), offered as values.
fn schedulers() -> Vec<&'static str> {
    SchedulerKind::ALL.iter().map(|k| k.name()).collect()
}

/// The clap command describing rvsadm's switches (and its bare-word commands).
pub fn command() -> Command {
    let mut cmd = Command::new("rvsadm")
        .about("administer rvs virtual services (ipvsadm syntax)")
        .disable_help_flag(true)
        .disable_version_flag(true);
    let mut longs: Vec<&str> = Vec::new();
    for s in rvsadm::args::switches() {
        if longs.contains(&s.long) {
            // `-l` is `--list` again: one more short name for the same switch.
            if let Some(c) = s.short {
                cmd = cmd.mut_arg(s.long, |a| a.short_alias(c));
            }
            continue;
        }
        longs.push(s.long);
        let mut arg = Arg::new(s.long).long(s.long);
        if let Some(c) = s.short {
            arg = arg.short(c);
        }
        arg = match s.value {
            None => arg.action(ArgAction::SetTrue),
            Some(optional) => {
                let a = arg.action(ArgAction::Set).num_args(if optional { 0..=1 } else { 1..=1 });
                match s.long {
                    "scheduler" => a.value_parser(schedulers()),
                    "token-file" => a.value_hint(ValueHint::FilePath),
                    "api" => a.value_hint(ValueHint::Url),
                    "start-daemon" | "stop-daemon" => a.value_parser(["master", "backup"]),
                    "tun-type" => a.value_parser(["ipip"]),
                    _ => a.value_hint(ValueHint::Other),
                }
            }
        };
        cmd = cmd.arg(arg);
    }
    cmd.arg(
        Arg::new("command")
            .value_parser(["status", "admin", "ha", "ready", "drain", "maint", "step-down", "ipv4", "ipv6"])
            .num_args(0..)
            .action(ArgAction::Append),
    )
}

/// The completion script for `shell` (`bash`, `zsh` or `fish`).
pub fn render(shell: &str) -> Result<String, String> {
    let shell = match shell {
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        "fish" => Shell::Fish,
        other => return Err(format!("no completion for shell `{other}` (bash, zsh or fish)")),
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command(), "rvsadm", &mut out);
    String::from_utf8(out).map_err(|e| format!("completion is not UTF-8: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_is_consistent_and_complete() {
        command().debug_assert();
        let bash = render("bash").unwrap();
        for s in rvsadm::args::switches() {
            assert!(bash.contains(&format!("--{}", s.long)), "--{} missing", s.long);
            if let Some(c) = s.short {
                assert!(bash.contains(&format!("-{c}")), "-{c} missing");
            }
        }
        assert!(bash.contains("lblcr") && bash.contains("user-hash"), "schedulers offered");
        assert!(render("zsh").unwrap().contains("#compdef rvsadm"));
        assert!(render("fish").unwrap().contains("complete -c rvsadm"));
        assert!(render("tcsh").is_err());
    }
}
