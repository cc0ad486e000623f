//! rvsadm(8) from rvsadm's `-h` text and the parser's switch table.
//!
//! The `-h` text ([`rvsadm::USAGE`]) has three blocks: `Usage:` (the synopsis lines),
//! `Commands:` and `Options:` (one entry per line: the switch and its value, then after a
//! run of two or more spaces the description; deeper-indented lines continue it). Each
//! entry becomes a tagged paragraph. Switches the parser accepts that the help does not
//! describe (ipvsadm's sync-daemon and tunnel options, checked and then unused) are listed
//! in their own paragraph, computed from [`rvsadm::args::switches`], so the page always
//! covers every switch.

use crate::roff::escape;

/// One entry of a `Commands:` or `Options:` block.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry {
    /// The switch(es) and value as the help shows them: `--weight, -w weight`.
    pub head: String,
    /// The description, continuation lines joined with spaces.
    pub text: String,
}

/// The `-h` text, taken apart.
#[derive(Debug, Default)]
pub struct Help {
    /// The synopsis lines, without their indentation.
    pub usage: Vec<String>,
    /// The `Commands:` entries.
    pub commands: Vec<Entry>,
    /// The `Options:` entries.
    pub options: Vec<Entry>,
}

/// Takes `text` (shaped like [`rvsadm::USAGE`]) apart.
pub fn parse_help(text: &str) -> Help {
    #[derive(Clone, Copy)]
    enum Block {
        None,
        Usage,
        Commands,
        Options,
    }
    let mut help = Help::default();
    let mut block = Block::None;
    for line in text.lines() {
        match line {
            "Usage:" => block = Block::Usage,
            "Commands:" => block = Block::Commands,
            "Options:" => block = Block::Options,
            _ if line.trim().is_empty() => {}
            _ => {
                let list = match block {
                    Block::None => continue,
                    Block::Usage => {
                        help.usage.push(line.trim().to_string());
                        continue;
                    }
                    Block::Commands => &mut help.commands,
                    Block::Options => &mut help.options,
                };
                // Not indented: a remark such as "Either long or short options are allowed."
                if !line.starts_with(' ') {
                    continue;
                }
                let indent = line.len() - line.trim_start().len();
                if indent > 2 {
                    if let Some(last) = list.last_mut() {
                        last.text.push(' ');
                        last.text.push_str(line.trim());
                    }
                    continue;
                }
                let parts = split_columns(line.trim());
                let (text, head) =
                    parts.split_last().map_or((String::new(), Vec::new()), |(t, h)| (t.clone(), h.to_vec()));
                list.push(Entry { head: head.join(", "), text });
            }
        }
    }
    help
}

/// Splits at runs of two or more spaces.
fn split_columns(line: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("  ") {
        parts.push(rest[..i].to_string());
        rest = rest[i..].trim_start();
    }
    parts.push(rest.to_string());
    parts.retain(|p| !p.is_empty());
    parts
}

/// The long names (without `--`) of the switches the parser accepts and the help does not
/// describe, in table order.
pub fn undescribed(help: &Help) -> Vec<&'static str> {
    let described: Vec<&str> = help.commands.iter().chain(&help.options).map(|e| e.head.as_str()).collect();
    let mut out: Vec<&'static str> = Vec::new();
    for s in rvsadm::args::switches() {
        let long = format!("--{}", s.long);
        let named = described.iter().any(|h| h.split([' ', ',', '|']).any(|w| w == long));
        if !named && !out.contains(&s.long) {
            out.push(s.long);
        }
    }
    out
}

fn entries(out: &mut String, list: &[Entry]) {
    for e in list {
        out.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", escape(&e.head), escape(&e.text)));
    }
}

/// The whole page.
pub fn render(date: &str) -> String {
    let help = parse_help(rvsadm::USAGE);
    let version = env!("CARGO_PKG_VERSION");
    let mut out = format!(".TH RVSADM 8 \"{date}\" \"rvs {version}\" \"System Administration\"\n");
    out.push_str(".SH NAME\nrvsadm \\- administer rvs virtual services (ipvsadm syntax, over rvsd's REST API)\n");
    out.push_str(".SH SYNOPSIS\n.nf\n");
    for u in &help.usage {
        out.push_str(&escape(u).replacen("rvsadm", "\\fBrvsadm\\fR", 1));
        out.push('\n');
    }
    out.push_str(".fi\n");
    out.push_str(concat!(
        ".SH DESCRIPTION\n",
        "\\fBrvsadm\\fR sets up, maintains and inspects the virtual service table of \\fBrvsd\\fR(8)\n",
        "with the verbs, options and listing format of \\fBipvsadm\\fR(8). It talks to rvsd's REST\n",
        "API (by default http://127.0.0.1:8700, see \\fB\\-\\-api\\fR) and changes nothing on the host's\n",
        "kernel. Changes made with rvsadm last until rvsd restarts or reloads its configuration\n",
        "file; \\fBrvsadm \\-S\\fR prints the table in a form \\fBrvsadm \\-R\\fR reads back.\n",
        "Forwarding methods: \\fB\\-g\\fR direct routing, \\fB\\-m\\fR NAT, \\fB\\-i\\fR IPIP tunnel,\n",
        "\\fB\\-b\\fR Full\\-NAT (rvs's own, as in DPVS).\n",
    ));
    out.push_str(".SH COMMANDS\nEither long or short options are allowed.\n");
    entries(&mut out, &help.commands);
    out.push_str(".SH OPTIONS\n");
    entries(&mut out, &help.options);
    let compat = undescribed(&help);
    if !compat.is_empty() {
        let names: Vec<String> = compat.iter().map(|l| format!("\\fB\\-\\-{}\\fR", escape(l))).collect();
        out.push_str(&format!(
            ".PP\nAccepted and checked as \\fBipvsadm\\fR(8) checks them, for scripts written for it, \
             then unused (rvs syncs connections through rvsd's [ha] section and tunnels in IPIP only): {}.\n",
            names.join(", ")
        ));
    }
    out.push_str(concat!(
        ".SH EXIT STATUS\n",
        "0 on success; 1 when rvsd could not be reached or a request failed; 2 for a usage error;\n",
        "255 when rvsd refused a change (as ipvsadm).\n",
        ".SH FILES\n",
        ".TP\n\\fI/etc/rvs/rvs.toml\\fR\nrvsd's configuration; \\fBsystemctl reload rvsd\\fR re\\-applies it.\n",
        ".SH EXAMPLES\n",
        ".nf\n",
        "rvsadm \\-A \\-t 10.10.0.100:80 \\-s rr\n",
        "rvsadm \\-a \\-t 10.10.0.100:80 \\-r 10.20.0.11:80 \\-m \\-w 1\n",
        "rvsadm \\-Ln \\-\\-stats\n",
        ".fi\n",
        ".SH SEE ALSO\n\\fBrvsd\\fR(8), \\fBipvsadm\\fR(8)\n",
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_blocks_are_parsed() {
        let help = parse_help(rvsadm::USAGE);
        assert!(help.usage.iter().any(|u| u.starts_with("rvsadm -A|E")), "{:?}", help.usage);
        let add = help.commands.iter().find(|e| e.head == "--add-service, -A").expect("add-service");
        assert_eq!(add.text, "add virtual service with options");
        let sched = help.options.iter().find(|e| e.head.starts_with("--scheduler")).expect("scheduler");
        assert!(sched.text.ends_with("the default scheduler is wlc."), "continuation lines: {}", sched.text);
        let admin = help.commands.iter().find(|e| e.head.starts_with("admin")).expect("admin");
        assert!(admin.text.contains("maint = out of the table"), "{}", admin.text);
    }

    /// Every switch the parser accepts is described by the help, except ipvsadm's
    /// compatibility switches that rvs checks and ignores. A new switch without a line in
    /// `rvsadm -h` fails here: add the line (the man page and completion follow).
    #[test]
    fn help_describes_every_switch_but_the_compat_ones() {
        let help = parse_help(rvsadm::USAGE);
        assert_eq!(
            undescribed(&help),
            [
                "mcast-interface",
                "syncid",
                "mcast-group",
                "mcast-port",
                "mcast-ttl",
                "sync-maxlen",
                "tun-port",
                "tun-nocsum",
                "tun-csum",
                "tun-remcsum"
            ]
        );
    }

    #[test]
    fn page_is_roff_with_every_section() {
        let page = render("2026-01-01");
        assert!(page.starts_with(".TH RVSADM 8 \"2026-01-01\""));
        for s in [".SH NAME", ".SH SYNOPSIS", ".SH COMMANDS", ".SH OPTIONS", ".SH EXIT STATUS", ".SH SEE ALSO"] {
            assert!(page.contains(s), "missing {s}");
        }
        assert!(page.contains("\\fB\\-\\-weight, \\-w weight\\fR"), "{page}");
        assert!(page.contains("\\fB\\-\\-mcast\\-interface\\fR"));
        // No unescaped hyphen starts an option.
        assert!(!page.contains(" --"), "unescaped option in:\n{page}");
    }
}
