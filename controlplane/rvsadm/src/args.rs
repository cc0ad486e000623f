//! ipvsadm's command line, parsed into a [`Command`].
//!
//! Contract: [`parse`] accepts exactly the ipvsadm 1.31 verbs and options that rvs supports
//! (see the crate's `rvsadm` module documentation), in any order, with ipvsadm's spellings:
//! bundled short flags (`-Lnc`), attached values (`-w3`, `--weight=3`), `-p` with an
//! optional value (`-p`, `-p 600`, `-p600`: a following word is taken when it does not
//! start with `-`). Errors are [`UsageError`]s whose text is ipvsadm's message for the same
//! mistake (`multiple commands specified`, `Illegal 'weight' option with the 'list'
//! command`, `illegal weight specified`, …); the caller prints it and exits 2.
//!
//! Parsing never touches the network and never panics, whatever the input.
//!
//! Deliberate differences from ipvsadm, each for a reason written where it is decided:
//! * `-E` and `-e` send only the attributes given (ipvsadm resets the others to their
//!   defaults, which silently turns a Masq server into Route on `-e … -w 5`); `-E … -p 0`
//!   makes a service non-persistent.
//! * `-L -c -t VIP:PORT` lists the connections of one service (ipvsadm refuses the
//!   combination; the REST API can filter, so rvsadm does).
//! * `-b` is Full-NAT (DPVS's meaning), not ipvsadm's `--sched-flags`.
//! * `--health` (rvs's own) adds each server's health to the plain `-L` listing; with any
//!   other listing (`-c`, `--timeout`, `--daemon`, `--stats`, `--rate`, `--thresholds`,
//!   `--persistent-conn`, `--tun-info`) it is refused in ipvsadm's words for conflicting
//!   options, since each of those has its own columns.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

/// ipvsadm's largest timeout, 31 days in seconds (`MAX_TIMEOUT`).
pub const MAX_TIMEOUT: u32 = 86_400 * 31;
/// ipvsadm's persistence timeout when `-p` has no value (`DEF_PERSISTENT_TIMEOUT`).
pub const DEFAULT_PERSISTENCE: u32 = 360;
/// ipvsadm's scheduler when `-A` has no `-s` (`DEF_SCHED`).
pub const DEFAULT_SCHEDULER: &str = "wlc";

/// A usage mistake: the message ipvsadm prints for it. The caller exits 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

impl UsageError {
    /// ipvsadm's exit status for this mistake: 255 for its `tryhelp_exit(-1)` (no command,
    /// or an unknown option before it) and for popt's errors (`-t: missing argument`,
    /// which `process_options` returns as -1); 2 for the rest (`fail(2, ...)`).
    pub fn exit_status(&self) -> i32 {
        if self.0 == TRY_HELP || self.0.ends_with(": missing argument") {
            255
        } else {
            2
        }
    }
}

fn fail<T>(msg: impl Into<String>) -> Result<T, UsageError> {
    Err(UsageError(msg.into()))
}

/// `-t` (TCP) or `-u` (UDP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// `-t`, `--tcp-service`.
    Tcp,
    /// `-u`, `--udp-service`.
    Udp,
}

impl Protocol {
    /// The REST name: `tcp` or `udp`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    /// The protocol called `name` in the REST API (case-insensitive).
    pub fn from_name(name: &str) -> Option<Protocol> {
        match name.to_ascii_lowercase().as_str() {
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            _ => None,
        }
    }

    /// The ipvsadm switch: `-t` or `-u`.
    pub fn switch(self) -> &'static str {
        match self {
            Protocol::Tcp => "-t",
            Protocol::Udp => "-u",
        }
    }
}

/// A virtual service: protocol, VIP and port (`-t 10.10.0.100:80`, `-t [2001:db8::1]:80`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceAddr {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The VIP, either family.
    pub address: IpAddr,
    /// The virtual port; 0 when the operator gave none.
    pub port: u16,
}

impl ServiceAddr {
    /// The REST path segment `tcp/10.10.0.100/80` (`tcp/2001:db8::1/80`: a path segment
    /// needs no brackets).
    pub fn path(&self) -> String {
        format!("{}/{}/{}", self.protocol.name(), self.address, self.port)
    }
}

/// How a real server is reached: ipvsadm's `-g`, `-m`, `-i`, plus DPVS's `-b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Forward {
    /// `-g`, direct routing (ipvsadm's default).
    Dr,
    /// `-m`, masquerading.
    Nat,
    /// `-b`, Full-NAT.
    FullNat,
    /// `-i`, IPIP tunnel.
    Tunnel,
}

impl Forward {
    /// Every method.
    pub const ALL: [Forward; 4] = [Forward::Dr, Forward::Nat, Forward::FullNat, Forward::Tunnel];

    /// The REST name: `dr`, `nat`, `fullnat`, `tunnel`.
    pub fn name(self) -> &'static str {
        match self {
            Forward::Dr => "dr",
            Forward::Nat => "nat",
            Forward::FullNat => "fullnat",
            Forward::Tunnel => "tunnel",
        }
    }

    /// The method called `name` in the REST API (case-insensitive).
    pub fn from_name(name: &str) -> Option<Forward> {
        Forward::ALL.into_iter().find(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// The ipvsadm switch (`-g`, `-m`, `-b`, `-i`), as `-S` prints it.
    pub fn switch(self) -> &'static str {
        match self {
            Forward::Dr => "-g",
            Forward::Nat => "-m",
            Forward::FullNat => "-b",
            Forward::Tunnel => "-i",
        }
    }

    /// The word of ipvsadm's listing (`Route`, `Masq`, `FullNat`, `Tunnel`).
    pub fn word(self) -> &'static str {
        match self {
            Forward::Dr => "Route",
            Forward::Nat => "Masq",
            Forward::FullNat => "FullNat",
            Forward::Tunnel => "Tunnel",
        }
    }
}

/// `-A` / `-E`: a service and the attributes given for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// The service.
    pub service: ServiceAddr,
    /// `-s`; `-A` without it means [`DEFAULT_SCHEDULER`].
    pub scheduler: Option<String>,
    /// `-p` in seconds; `Some(0)` (only accepted with `-E`) turns persistence off.
    pub persistence: Option<u32>,
    /// `-M`: a netmask on an IPv4 service, a prefix length on an IPv6 one.
    pub netmask: Option<Netmask>,
    /// `--client-rate` (rvs's own): new connections per second per client; `Some(0)`
    /// lifts the limit.
    pub client_rate: Option<u32>,
    /// `--client-burst` (rvs's own): the depth of each client's bucket.
    pub client_burst: Option<u32>,
}

/// `-M`'s value: which clients share a persistent server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Netmask {
    /// An IPv4 service's netmask (`255.255.255.0`).
    V4(Ipv4Addr),
    /// An IPv6 service's prefix length (`64`).
    V6(u8),
}

impl std::fmt::Display for Netmask {
    /// As the REST API's `persistence_netmask` and ipvsadm write it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Netmask::V4(m) => m.fmt(f),
            Netmask::V6(n) => n.fmt(f),
        }
    }
}

/// `-a` / `-e`: a real server of a service and the attributes given for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// The service.
    pub service: ServiceAddr,
    /// `-r`; the port defaults to the service's.
    pub server: SocketAddr,
    /// `-g|-m|-i|-b`; `-a` without one means [`Forward::Dr`].
    pub forward: Option<Forward>,
    /// `-w`; `-a` without it means 1.
    pub weight: Option<u32>,
    /// `-x`.
    pub upper_threshold: Option<u32>,
    /// `-y`.
    pub lower_threshold: Option<u32>,
}

/// What `-L` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListKind {
    /// Services and servers (`-L`), with the counters of `--stats` or the rates of `--rate`.
    #[default]
    Services,
    /// The connection table (`-c`).
    Connections,
    /// The timeouts (`--timeout`).
    Timeouts,
    /// `--daemon`: ipvsadm's sync daemons. rvs's sync is `[ha]` in the configuration, so
    /// this lists nothing, as ipvsadm does when no daemon runs.
    Daemon,
}

/// `-L` and its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListOpts {
    /// What to list.
    pub kind: ListKind,
    /// `-n`. Accepted for compatibility: rvsadm always prints numbers.
    pub numeric: bool,
    /// `--stats`.
    pub stats: bool,
    /// `--rate` (`--stats` wins when both are given, as in ipvsadm).
    pub rate: bool,
    /// `--thresholds`: upper and lower thresholds instead of forward and weight.
    pub thresholds: bool,
    /// `--persistent-conn`: weight and persistent connections (rvs keeps no persistence
    /// templates to count, so that column is 0).
    pub persistent_conn: bool,
    /// `--tun-info`: the tunnel type beside the forwarding method.
    pub tun_info: bool,
    /// `--health` (rvs's own): each server's health and admin states, last probe latency
    /// and last result after the plain columns. Only with the plain services listing.
    pub health: bool,
    /// `-X`/`--exact`: numbers unscaled.
    pub exact: bool,
    /// `--nosort`: rvsd's order instead of ipvsadm's sort.
    pub nosort: bool,
    /// `-t|-u`: only this service.
    pub service: Option<ServiceAddr>,
}

/// One rvsadm invocation's verb and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `-A`.
    AddService(ServiceSpec),
    /// `-E`.
    EditService(ServiceSpec),
    /// `-D`.
    DeleteService(ServiceAddr),
    /// `-a`.
    AddServer(ServerSpec),
    /// `-e`.
    EditServer(ServerSpec),
    /// `-d`.
    DeleteServer {
        /// The service.
        service: ServiceAddr,
        /// The real server.
        server: SocketAddr,
    },
    /// `-L`, `-l`, or no verb.
    List(ListOpts),
    /// `-Z`, optionally for one service.
    Zero(Option<ServiceAddr>),
    /// `-C`.
    Clear,
    /// `-S`.
    Save {
        /// `-n` (accepted; output is always numeric).
        numeric: bool,
    },
    /// `-R`.
    Restore,
    /// `--start-daemon master|backup`: rvs has no IPVS sync daemon to start (its
    /// connection sync is `[ha]` in rvsd's configuration); refused, with that reason.
    StartDaemon,
    /// `--stop-daemon master|backup`: "No daemon is running", as ipvsadm when none runs.
    StopDaemon,
    /// `--set TCP TCPFIN UDP` in seconds; 0 leaves a value unchanged.
    SetTimeouts {
        /// TCP established.
        tcp: u32,
        /// TCP after FIN.
        tcp_fin: u32,
        /// UDP.
        udp: u32,
    },
    /// `rvsadm status`.
    Status,
    /// `rvsadm ha step-down VRID [ipv4|ipv6]`: the VRRP master of VRID resigns (rvs's own
    /// verb); the family of its adverts picks one of a VRID that has an IPv4 and an IPv6
    /// instance.
    HaStepDown {
        /// The instance's VRID, 1..=255.
        vrid: u8,
        /// `ipv4` or `ipv6`, when given.
        family: Option<&'static str>,
    },
    /// `rvsadm admin -t|-u VIP:PORT -r RIP[:PORT] ready|drain|maint`: a server's
    /// administrative state (rvs's own verb; not an `-R` line).
    Admin {
        /// The service.
        service: ServiceAddr,
        /// The real server (its port defaults to the service's).
        server: SocketAddr,
        /// `ready`, `drain` or `maint`.
        state: AdminState,
    },
    /// `-h`.
    Help,
    /// `-v`.
    Version,
}

impl Command {
    /// True for the verbs that change rvsd's state (the ones `-R` accepts).
    pub fn is_change(&self) -> bool {
        matches!(
            self,
            Command::AddService(_)
                | Command::EditService(_)
                | Command::DeleteService(_)
                | Command::AddServer(_)
                | Command::EditServer(_)
                | Command::DeleteServer { .. }
                | Command::Zero(_)
                | Command::Clear
                | Command::SetTimeouts { .. }
        )
    }
}

/// A server's administrative state, as `rvsadm admin` sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminState {
    /// Normal: the health checks decide.
    Ready,
    /// Weight 0 in effect: no new connections, established ones continue.
    Drain,
    /// Out of scheduling, health probes paused.
    Maint,
}

impl AdminState {
    /// The word rvsd's API takes.
    pub fn name(self) -> &'static str {
        match self {
            AdminState::Ready => "ready",
            AdminState::Drain => "drain",
            AdminState::Maint => "maint",
        }
    }
}

/// Parses the words after `admin`: `-t|-u VIP:PORT`, `-r RIP[:PORT]`, the state, and
/// `--api`/`--token-file`.
fn parse_admin(words: &[&str]) -> Result<Invocation, UsageError> {
    let (mut api, mut token_file, mut service, mut server, mut state) = (None, None, None, None, None);
    let mut i = 0;
    while i < words.len() {
        let word = words[i];
        i += 1;
        let (name, attached) = match word.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (word, None),
        };
        let takes_value = matches!(
            name,
            "-t" | "--tcp-service" | "-u" | "--udp-service" | "-r" | "--real-server" | "--api" | "--token-file"
        );
        if !takes_value {
            if word.starts_with('-') {
                return fail(format!("admin: unknown option {word}"));
            }
            let parsed = match word {
                "ready" => AdminState::Ready,
                "drain" => AdminState::Drain,
                "maint" => AdminState::Maint,
                _ => return fail(format!("admin: unknown state `{word}'; use ready, drain or maint")),
            };
            if state.replace(parsed).is_some() {
                return fail(format!("admin: unexpected argument {word}"));
            }
            continue;
        }
        let value = match attached {
            Some(v) => v,
            None => match words.get(i) {
                Some(v) => {
                    i += 1;
                    v.to_string()
                }
                None => return fail(format!("{word}: missing argument")),
            },
        };
        let twice = |what: &str| UsageError(format!("multiple '{what}' options specified"));
        match name {
            "-t" | "--tcp-service" | "-u" | "--udp-service" => {
                let protocol = if matches!(name, "-u" | "--udp-service") { Protocol::Udp } else { Protocol::Tcp };
                let Some((address, Some(port))) = parse_addr_port(&value, protocol) else {
                    return fail(illegal("virtual server", &value));
                };
                if service.replace(ServiceAddr { protocol, address, port }).is_some() {
                    return Err(twice("service-address"));
                }
            }
            "-r" | "--real-server" => {
                let proto = service.map_or(Protocol::Tcp, |s: ServiceAddr| s.protocol);
                let Some(a) = parse_addr_port(&value, proto) else {
                    return fail(illegal("real server", &value));
                };
                if server.replace(a).is_some() {
                    return Err(twice("real-server"));
                }
            }
            "--api" => {
                if api.replace(value).is_some() {
                    return Err(twice("api"));
                }
            }
            _ => {
                if token_file.replace(value).is_some() {
                    return Err(twice("token-file"));
                }
            }
        }
    }
    let Some(service) = service else {
        return fail("You need to supply the 'service-address' option for the 'admin' command");
    };
    let Some((address, port)) = server else {
        return fail("You need to supply the 'real-server' option for the 'admin' command");
    };
    let Some(state) = state else {
        return fail("admin: give the state: ready, drain or maint");
    };
    let server = SocketAddr::new(address, port.unwrap_or(service.port));
    Ok(Invocation { api, token_file, command: Command::Admin { service, server, state } })
}

/// A parsed command line: the verb, and the REST address and token file when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// `--api URL`.
    pub api: Option<String>,
    /// `--token-file FILE`: a file holding rvsd's bearer token (`api.token_file`).
    pub token_file: Option<String>,
    /// The verb.
    pub command: Command,
}

// ---------------------------------------------------------------------------------------
// The option table.

/// Verbs, in ipvsadm's `cmdnames` order (rows of [`RULES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    AddService,
    EditService,
    DeleteService,
    Flush,
    List,
    AddServer,
    DeleteServer,
    EditServer,
    Set,
    StartDaemon,
    StopDaemon,
    Restore,
    Save,
    Zero,
}

impl Verb {
    /// ipvsadm's name for the verb, as its messages print it.
    fn name(self) -> &'static str {
        match self {
            Verb::AddService => "add-service",
            Verb::EditService => "edit-service",
            Verb::DeleteService => "delete-service",
            Verb::Flush => "flush",
            Verb::List => "list",
            Verb::AddServer => "add-server",
            Verb::DeleteServer => "delete-server",
            Verb::EditServer => "edit-server",
            Verb::Set => "set",
            Verb::StartDaemon => "start-daemon",
            Verb::StopDaemon => "stop-daemon",
            Verb::Restore => "restore",
            Verb::Save => "save",
            Verb::Zero => "zero",
        }
    }
}

/// Options, in ipvsadm's `optnames` order (columns of [`RULES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Numeric,
    Connection,
    Service,
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Forward,
    Weight,
    UThreshold,
    LThreshold,
    McastInterface,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    SyncId,
    Exact,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
    /// `--health`, rvs's own: after ipvsadm's options, so ipvsadm's complaints come first.
    Health,
    /// `--client-rate N`, rvs's own (a service's per-client rate of new connections).
    ClientRate,
    /// `--client-burst N`, rvs's own (the depth of each client's bucket).
    ClientBurst,
}

impl Opt {
    const COUNT: usize = 34;
    const ALL: [Opt; Opt::COUNT] = [
        Opt::Numeric,
        Opt::Connection,
        Opt::Service,
        Opt::Scheduler,
        Opt::Persistent,
        Opt::Netmask,
        Opt::RealServer,
        Opt::Forward,
        Opt::Weight,
        Opt::UThreshold,
        Opt::LThreshold,
        Opt::McastInterface,
        Opt::Timeout,
        Opt::Daemon,
        Opt::Stats,
        Opt::Rate,
        Opt::Thresholds,
        Opt::PersistentConn,
        Opt::NoSort,
        Opt::SyncId,
        Opt::Exact,
        Opt::McastGroup,
        Opt::McastPort,
        Opt::McastTtl,
        Opt::SyncMaxlen,
        Opt::TunInfo,
        Opt::TunType,
        Opt::TunPort,
        Opt::TunNocsum,
        Opt::TunCsum,
        Opt::TunRemcsum,
        Opt::Health,
        Opt::ClientRate,
        Opt::ClientBurst,
    ];

    /// ipvsadm's name for the option, as its messages print it.
    fn name(self) -> &'static str {
        match self {
            Opt::Numeric => "numeric",
            Opt::Connection => "connection",
            Opt::Service => "service-address",
            Opt::Scheduler => "scheduler",
            Opt::Persistent => "persistent",
            Opt::Netmask => "netmask",
            Opt::RealServer => "real-server",
            Opt::Forward => "forwarding-method",
            Opt::Weight => "weight",
            Opt::UThreshold => "u-threshold",
            Opt::LThreshold => "l-threshold",
            Opt::Timeout => "timeout",
            Opt::McastInterface => "mcast-interface",
            Opt::SyncId => "syncid",
            Opt::McastGroup => "mcast-group",
            Opt::McastPort => "mcast-port",
            Opt::McastTtl => "mcast-ttl",
            Opt::SyncMaxlen => "sync-maxlen",
            Opt::Daemon => "daemon",
            Opt::Stats => "stats",
            Opt::Rate => "rate",
            Opt::Thresholds => "thresholds",
            Opt::PersistentConn => "persistent-conn",
            Opt::NoSort => "nosort",
            Opt::Exact => "exact",
            Opt::TunInfo => "tun-info",
            Opt::TunType => "tun-type",
            Opt::TunPort => "tun-port",
            Opt::TunNocsum => "tun-nocsum",
            Opt::TunCsum => "tun-csum",
            Opt::TunRemcsum => "tun-remcsum",
            Opt::Health => "health",
            Opt::ClientRate => "client-rate",
            Opt::ClientBurst => "client-burst",
        }
    }
}

/// ipvsadm's `commands_v_options`, restricted to rvs's options: `x` illegal, `+` required,
/// `1` at most one of the `1`s, ` ` optional. One difference, on purpose: `list` allows
/// `-c` together with `-t|-u` (see the module documentation); `--timeout` still excludes both.
// ipvsadm 1.31's commands_v_options, without the columns of options rvs does not have
// (ops, pe, sched-flags), in ipvsadm's order so that the first complaint is ipvsadm's;
// then rvs's own `--health`, legal with `list` only (its conflicts are checked in `build`),
// and `--client-rate`/`--client-burst`, legal with `-A` and `-E` only.
const RULES: [(Verb, &[u8; Opt::COUNT]); 14] = [
    //                   n  c  svc s  p  M  r  fwd w  x  y  mcif tot dmn st rt thr pc srt sid ex grp port ttl size tinf type tprt nocs csum remc hlth crt cbu
    (Verb::AddService, b"xx+   xxxxxxxxxxxxxxxxxxxxxxxxxx  "),
    (Verb::EditService, b"xx+   xxxxxxxxxxxxxxxxxxxxxxxxxx  "),
    (Verb::DeleteService, b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
    (Verb::Flush, b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
    // The service column is ' ' (ipvsadm: '1'): rvs lists one service's connections
    // (`-L -c -t VIP:PORT`); `--timeout`/`--daemon` with a service are refused in `build`.
    (Verb::List, b" 1 xxxxxxxxx11       xxxx xxxxx xx"),
    (Verb::AddServer, b"xx+xxx+    xxxxxxxxxxxxxxx     xxx"),
    (Verb::DeleteServer, b"xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxx"),
    (Verb::EditServer, b"xx+xxx+    xxxxxxxxxxxxxxx     xxx"),
    (Verb::Set, b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
    (Verb::StartDaemon, b"xxxxxxxxxxx xxxxxxx x    xxxxxxxxx"),
    (Verb::StopDaemon, b"xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxx"),
    (Verb::Restore, b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
    (Verb::Save, b" xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
    (Verb::Zero, b"xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
];

/// Whether an option takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arity {
    Flag,
    Value,
    OptionalValue,
}

/// What a switch does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Verb(Verb),
    Opt(Opt),
    Tcp,
    Udp,
    Fwd(Forward),
    Help,
    Version,
    Api,
    TokenFile,
    /// Accepted and ignored (`--sort`, ipvsadm's default).
    Nothing,
}

/// One switch: its short letter, its long name, what it does and its arity.
struct Switch {
    short: Option<char>,
    long: &'static str,
    action: Action,
    arity: Arity,
}

const fn sw(short: Option<char>, long: &'static str, action: Action, arity: Arity) -> Switch {
    Switch { short, long, action, arity }
}

const SWITCHES: &[Switch] = &[
    sw(Some('A'), "add-service", Action::Verb(Verb::AddService), Arity::Flag),
    sw(Some('E'), "edit-service", Action::Verb(Verb::EditService), Arity::Flag),
    sw(Some('D'), "delete-service", Action::Verb(Verb::DeleteService), Arity::Flag),
    sw(Some('C'), "clear", Action::Verb(Verb::Flush), Arity::Flag),
    sw(Some('L'), "list", Action::Verb(Verb::List), Arity::Flag),
    sw(Some('l'), "list", Action::Verb(Verb::List), Arity::Flag),
    sw(Some('a'), "add-server", Action::Verb(Verb::AddServer), Arity::Flag),
    sw(Some('d'), "delete-server", Action::Verb(Verb::DeleteServer), Arity::Flag),
    sw(Some('e'), "edit-server", Action::Verb(Verb::EditServer), Arity::Flag),
    sw(None, "set", Action::Verb(Verb::Set), Arity::Value),
    sw(None, "start-daemon", Action::Verb(Verb::StartDaemon), Arity::Value),
    sw(None, "stop-daemon", Action::Verb(Verb::StopDaemon), Arity::Value),
    // The sync daemon's options: checked as ipvsadm checks them, then unused (rvs syncs
    // connections through `[ha]` in rvsd's configuration).
    sw(None, "mcast-interface", Action::Opt(Opt::McastInterface), Arity::Value),
    sw(None, "syncid", Action::Opt(Opt::SyncId), Arity::Value),
    sw(None, "mcast-group", Action::Opt(Opt::McastGroup), Arity::Value),
    sw(None, "mcast-port", Action::Opt(Opt::McastPort), Arity::Value),
    sw(None, "mcast-ttl", Action::Opt(Opt::McastTtl), Arity::Value),
    sw(None, "sync-maxlen", Action::Opt(Opt::SyncMaxlen), Arity::Value),
    sw(Some('R'), "restore", Action::Verb(Verb::Restore), Arity::Flag),
    sw(Some('S'), "save", Action::Verb(Verb::Save), Arity::Flag),
    sw(Some('Z'), "zero", Action::Verb(Verb::Zero), Arity::Flag),
    sw(Some('t'), "tcp-service", Action::Tcp, Arity::Value),
    sw(Some('u'), "udp-service", Action::Udp, Arity::Value),
    sw(Some('s'), "scheduler", Action::Opt(Opt::Scheduler), Arity::Value),
    sw(Some('p'), "persistent", Action::Opt(Opt::Persistent), Arity::OptionalValue),
    sw(Some('M'), "netmask", Action::Opt(Opt::Netmask), Arity::Value),
    sw(Some('r'), "real-server", Action::Opt(Opt::RealServer), Arity::Value),
    sw(Some('g'), "gatewaying", Action::Fwd(Forward::Dr), Arity::Flag),
    sw(Some('m'), "masquerading", Action::Fwd(Forward::Nat), Arity::Flag),
    sw(Some('i'), "ipip", Action::Fwd(Forward::Tunnel), Arity::Flag),
    sw(Some('b'), "fullnat", Action::Fwd(Forward::FullNat), Arity::Flag),
    sw(Some('w'), "weight", Action::Opt(Opt::Weight), Arity::Value),
    sw(Some('x'), "u-threshold", Action::Opt(Opt::UThreshold), Arity::Value),
    sw(Some('y'), "l-threshold", Action::Opt(Opt::LThreshold), Arity::Value),
    sw(Some('n'), "numeric", Action::Opt(Opt::Numeric), Arity::Flag),
    sw(Some('c'), "connection", Action::Opt(Opt::Connection), Arity::Flag),
    sw(None, "timeout", Action::Opt(Opt::Timeout), Arity::Flag),
    sw(None, "stats", Action::Opt(Opt::Stats), Arity::Flag),
    sw(None, "rate", Action::Opt(Opt::Rate), Arity::Flag),
    sw(None, "daemon", Action::Opt(Opt::Daemon), Arity::Flag),
    sw(None, "thresholds", Action::Opt(Opt::Thresholds), Arity::Flag),
    sw(None, "persistent-conn", Action::Opt(Opt::PersistentConn), Arity::Flag),
    sw(None, "nosort", Action::Opt(Opt::NoSort), Arity::Flag),
    // ipvsadm: "Sort is the default, this is a no-op for compatibility".
    sw(None, "sort", Action::Nothing, Arity::Flag),
    sw(Some('X'), "exact", Action::Opt(Opt::Exact), Arity::Flag),
    sw(None, "tun-info", Action::Opt(Opt::TunInfo), Arity::Flag),
    sw(None, "tun-type", Action::Opt(Opt::TunType), Arity::Value),
    sw(None, "tun-port", Action::Opt(Opt::TunPort), Arity::Value),
    sw(None, "tun-nocsum", Action::Opt(Opt::TunNocsum), Arity::Flag),
    sw(None, "tun-csum", Action::Opt(Opt::TunCsum), Arity::Flag),
    sw(None, "tun-remcsum", Action::Opt(Opt::TunRemcsum), Arity::Flag),
    sw(None, "health", Action::Opt(Opt::Health), Arity::Flag),
    sw(None, "client-rate", Action::Opt(Opt::ClientRate), Arity::Value),
    sw(None, "client-burst", Action::Opt(Opt::ClientBurst), Arity::Value),
    sw(Some('h'), "help", Action::Help, Arity::Flag),
    sw(Some('v'), "version", Action::Version, Arity::Flag),
    sw(None, "api", Action::Api, Arity::Value),
    sw(None, "token-file", Action::TokenFile, Arity::Value),
];

/// One switch of the parser's table, as documentation sees it: the man page and the
/// shell completion (`vm-testbed/package/docgen`) are generated from [`switches`], so
/// they list exactly what [`parse`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwitchDoc {
    /// The short letter (`-A`), if any.
    pub short: Option<char>,
    /// The long name without `--`.
    pub long: &'static str,
    /// Whether it takes a value: `Some(false)` required, `Some(true)` optional, `None` none.
    pub value: Option<bool>,
}

/// Every switch [`parse`] accepts, in the parser's table order.
pub fn switches() -> impl Iterator<Item = SwitchDoc> {
    SWITCHES.iter().map(|s| SwitchDoc {
        short: s.short,
        long: s.long,
        value: match s.arity {
            Arity::Flag => None,
            Arity::Value => Some(false),
            Arity::OptionalValue => Some(true),
        },
    })
}

// ---------------------------------------------------------------------------------------
// Parsing.

/// Which options were given, by [`Opt`] (`[bool; N]` has no `Default` past 32 entries).
struct Seen([bool; Opt::COUNT]);

impl Default for Seen {
    fn default() -> Self {
        Seen([false; Opt::COUNT])
    }
}

impl std::ops::Deref for Seen {
    type Target = [bool; Opt::COUNT];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Seen {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// Everything collected from the words before the verb is built.
#[derive(Default)]
struct Collected {
    verb: Option<Verb>,
    seen: Seen,
    api: Option<String>,
    token_file: Option<String>,
    help: bool,
    version: bool,
    status: bool,
    ha_step_down: Option<(u8, Option<&'static str>)>,
    service: Option<ServiceAddr>,
    scheduler: Option<String>,
    persistence: Option<u32>,
    /// `-M`'s text: which form it must take depends on the service's family, which may
    /// come later on the line.
    netmask: Option<String>,
    server: Option<(IpAddr, Option<u16>)>,
    forward: Option<Forward>,
    weight: Option<u32>,
    upper: Option<u32>,
    lower: Option<u32>,
    timeouts: Option<(u32, u32, u32)>,
    tun_type: Option<String>,
    client_rate: Option<u32>,
    client_burst: Option<u32>,
}

impl Collected {
    fn set_verb(&mut self, verb: Verb, word: &str) -> Result<(), UsageError> {
        // ipvsadm takes the command from the first option and parses the rest without the
        // command options, so popt calls a second command an invalid option.
        if self.verb.is_some() {
            return fail(format!("invalid option `{word}'"));
        }
        if self.status {
            return fail("multiple commands specified");
        }
        self.verb = Some(verb);
        Ok(())
    }

    fn set_opt(&mut self, opt: Opt) -> Result<(), UsageError> {
        let i = opt as usize;
        if self.seen[i] {
            return fail(format!("multiple '{}' options specified", opt.name()));
        }
        self.seen[i] = true;
        Ok(())
    }

    fn has(&self, opt: Opt) -> bool {
        self.seen[opt as usize]
    }
}

/// ipvsadm's answer to a line without a verb (`tryhelp_exit`).
pub const TRY_HELP: &str = "Try `rvsadm -h' or 'rvsadm --help' for more information.";

/// Parses one command line (without the program name).
///
/// An empty line is `-L`, as for ipvsadm. Options without a verb get [`TRY_HELP`]. Unlike
/// ipvsadm (whose first option must be the verb), the verb may come anywhere.
pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Invocation, UsageError> {
    let words: Vec<&str> = args.iter().map(|s| s.as_ref()).collect();
    // `admin` comes first, after `--api`/`--token-file` if any.
    let mut j = 0;
    while let Some(w) = words.get(j) {
        match *w {
            "--api" | "--token-file" => j += 2,
            w if w.starts_with("--api=") || w.starts_with("--token-file=") => j += 1,
            _ => break,
        }
    }
    if words.get(j) == Some(&"admin") {
        let rest: Vec<&str> = words[..j].iter().chain(&words[j + 1..]).copied().collect();
        return parse_admin(&rest);
    }
    let mut c = Collected::default();
    let mut i = 0;
    let mut only_positionals = false;
    while i < words.len() {
        let word = words[i];
        i += 1;
        if only_positionals || !word.starts_with('-') || word == "-" {
            if word == "status" && c.verb.is_none() && !c.status && c.seen.iter().all(|s| !s) {
                c.status = true;
                continue;
            }
            if word == "ha" && c.verb.is_none() && !c.status && c.ha_step_down.is_none() && c.seen.iter().all(|s| !s) {
                if words.get(i) != Some(&"step-down") {
                    return fail("ha takes: step-down VRID [ipv4|ipv6]");
                }
                let vrid = words.get(i + 1).ok_or_else(|| UsageError("ha step-down: missing VRID".into()))?;
                let vrid = match vrid.parse::<u8>() {
                    Ok(v) if v > 0 => v,
                    _ => return fail(format!("ha step-down: `{vrid}` is not a VRID (1..255)")),
                };
                // The family of the instance's adverts, for a VRID with one of each.
                let family = match words.get(i + 2).copied() {
                    Some("ipv4") => Some("ipv4"),
                    Some("ipv6") => Some("ipv6"),
                    _ => None,
                };
                c.ha_step_down = Some((vrid, family));
                // Marks the line as taken, like status: only --api and --token-file may follow.
                c.status = true;
                i += if family.is_some() { 3 } else { 2 };
                continue;
            }
            return fail(format!("unexpected argument {word}"));
        }
        if word == "--" {
            only_positionals = true;
            continue;
        }
        if let Some(long) = word.strip_prefix("--") {
            let (name, attached) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            let Some(s) = SWITCHES.iter().find(|s| s.long == name) else {
                return fail(unknown(&c, word));
            };
            let value = match (s.arity, attached) {
                (Arity::Flag, Some(_)) => return fail(format!("{word}: option does not take an argument")),
                (Arity::Flag, None) => None,
                (_, Some(v)) => Some(v.to_string()),
                (Arity::Value, None) => match words.get(i) {
                    Some(v) => {
                        i += 1;
                        Some(v.to_string())
                    }
                    None if s.action == Action::Verb(Verb::Set) => {
                        return fail("--set option requires 3 timeout values")
                    }
                    None => return fail(format!("{word}: missing argument")),
                },
                (Arity::OptionalValue, None) => take_optional(&words, &mut i),
            };
            apply(&mut c, s, value, word, &words, &mut i)?;
            continue;
        }
        // A bundle of short switches: `-Lnc`, `-w3`, `-p600`.
        let body = &word[1..];
        for (pos, ch) in body.char_indices() {
            let Some(s) = SWITCHES.iter().find(|s| s.short == Some(ch)) else {
                return fail(unknown(&c, word));
            };
            let rest = &body[pos + ch.len_utf8()..];
            let value = match s.arity {
                Arity::Flag => None,
                _ if !rest.is_empty() => Some(rest.to_string()),
                Arity::Value => match words.get(i) {
                    Some(v) => {
                        i += 1;
                        Some(v.to_string())
                    }
                    None => return fail(format!("-{ch}: missing argument")),
                },
                Arity::OptionalValue => take_optional(&words, &mut i),
            };
            let takes_rest = s.arity != Arity::Flag && !rest.is_empty();
            apply(&mut c, s, value, word, &words, &mut i)?;
            if takes_rest {
                break;
            }
        }
    }
    build(c)
}

/// ipvsadm's answer to an option it does not know: before the command, `tryhelp_exit`
/// (exit 255); after it, popt's `invalid option` (exit 2).
fn unknown(c: &Collected, word: &str) -> String {
    if c.verb.is_none() {
        TRY_HELP.to_string()
    } else {
        format!("invalid option `{word}'")
    }
}

/// The value of an option whose value is optional: the next word unless it is an option.
fn take_optional(words: &[&str], i: &mut usize) -> Option<String> {
    match words.get(*i) {
        Some(v) if !v.starts_with('-') => {
            *i += 1;
            Some(v.to_string())
        }
        _ => None,
    }
}

/// Records one switch and its value, checking the value as ipvsadm does.
fn apply(
    c: &mut Collected,
    s: &Switch,
    value: Option<String>,
    word: &str,
    words: &[&str],
    i: &mut usize,
) -> Result<(), UsageError> {
    if c.status && !matches!(s.action, Action::Api) {
        return fail(format!("unexpected argument {word} after status"));
    }
    let value = value.unwrap_or_default();
    match s.action {
        Action::Verb(Verb::Set) => {
            c.set_verb(Verb::Set, word)?;
            let mut vals = [0u32; 3];
            for (k, v) in vals.iter_mut().enumerate() {
                let text = if k == 0 {
                    value.as_str()
                } else {
                    let Some(w) = words.get(*i) else {
                        return fail("--set option requires 3 timeout values");
                    };
                    *i += 1;
                    w
                };
                *v = parse_timeout(text, 0)?;
            }
            c.timeouts = Some((vals[0], vals[1], vals[2]));
        }
        Action::Verb(v @ (Verb::StartDaemon | Verb::StopDaemon)) => {
            c.set_verb(v, word)?;
            if !matches!(value.as_str(), "master" | "backup") {
                // Sic: ipvsadm's words for each.
                return fail(if v == Verb::StartDaemon {
                    "illegal start-daemon parameter specified"
                } else {
                    "illegal start_daemon specified"
                });
            }
        }
        Action::Verb(v) => c.set_verb(v, word)?,
        Action::Opt(o @ (Opt::SyncId | Opt::McastPort | Opt::McastTtl | Opt::SyncMaxlen)) => {
            c.set_opt(o)?;
            let (min, max) = match o {
                Opt::SyncId => (0, 255),
                Opt::McastPort => (1, 65_535),
                Opt::McastTtl => (1, 255),
                _ => (1, 65_535 - 20 - 8),
            };
            if parse_number(&value, max).is_none_or(|n| n < min) {
                return fail(format!("illegal {} specified", o.name()));
            }
        }
        Action::Opt(Opt::McastGroup) => {
            c.set_opt(Opt::McastGroup)?;
            if !value.parse::<Ipv4Addr>().is_ok_and(|a| a.is_multicast()) {
                return fail(format!("invalid IPv4 mcast-group `{value}'"));
            }
        }
        Action::Tcp | Action::Udp => {
            c.set_opt(Opt::Service)?;
            let protocol = if s.action == Action::Tcp { Protocol::Tcp } else { Protocol::Udp };
            // `VIP:0` is a port-less service address, refused later unless persistent
            // ("Zero port specified for non-persistent service"), as ipvsadm does.
            let parsed = match value.strip_suffix(":0") {
                Some(host) if !host.starts_with('[') => parse_addr_port(host, protocol).filter(|(_, p)| p.is_none()),
                _ => split_addr_port(&value, protocol).map(|(a, p)| (a, p.filter(|&p| p != 0))),
            };
            let Some((address, port)) = parsed else {
                return fail(illegal("virtual server", &value));
            };
            c.service = Some(ServiceAddr { protocol, address, port: port.unwrap_or(0) });
        }
        Action::Opt(Opt::Scheduler) => {
            c.set_opt(Opt::Scheduler)?;
            // ipvsadm copies the name into a 16-byte field; rvsd validates the name itself.
            if value.is_empty() || value.len() > 15 || !value.chars().all(|ch| ch.is_ascii_graphic()) {
                return fail(format!("illegal scheduler `{value}' specified"));
            }
            c.scheduler = Some(value);
        }
        Action::Opt(Opt::Persistent) => {
            c.set_opt(Opt::Persistent)?;
            c.persistence = Some(if value.is_empty() { DEFAULT_PERSISTENCE } else { parse_timeout(&value, 0)? });
        }
        Action::Opt(Opt::Netmask) => {
            c.set_opt(Opt::Netmask)?;
            c.netmask = Some(value);
        }
        Action::Opt(Opt::RealServer) => {
            c.set_opt(Opt::RealServer)?;
            let proto = c.service.map_or(Protocol::Tcp, |s| s.protocol);
            match parse_addr_port(&value, proto) {
                Some(a) => c.server = Some(a),
                None => return fail(illegal("real server", &value)),
            }
        }
        Action::Fwd(f) => {
            c.set_opt(Opt::Forward)?;
            c.forward = Some(f);
        }
        Action::Opt(Opt::Weight) => {
            c.set_opt(Opt::Weight)?;
            c.weight = Some(parse_number(&value, 65_535).ok_or_else(|| UsageError("illegal weight specified".into()))?);
        }
        Action::Opt(Opt::UThreshold) => {
            c.set_opt(Opt::UThreshold)?;
            c.upper = Some(
                parse_number(&value, i32::MAX as u32)
                    .ok_or_else(|| UsageError("illegal u_threshold specified".into()))?,
            );
        }
        Action::Opt(Opt::LThreshold) => {
            c.set_opt(Opt::LThreshold)?;
            c.lower = Some(
                parse_number(&value, i32::MAX as u32)
                    .ok_or_else(|| UsageError("illegal l_threshold specified".into()))?,
            );
        }
        Action::Opt(o @ (Opt::ClientRate | Opt::ClientBurst)) => {
            c.set_opt(o)?;
            // Syntax only: rvsd checks the range (`client_rate` 0 to 1,000,000, a burst of at
            // least 1 and only with a rate) and names the field when it refuses.
            let n =
                parse_number(&value, u32::MAX).ok_or_else(|| UsageError(format!("illegal {} specified", o.name())))?;
            if o == Opt::ClientRate {
                c.client_rate = Some(n);
            } else {
                c.client_burst = Some(n);
            }
        }
        Action::Opt(Opt::TunType) => {
            c.set_opt(Opt::TunType)?;
            // ipvsadm's tunnel types; rvs encapsulates in IPIP only (checked in `build`).
            if !matches!(value.as_str(), "ipip" | "gue" | "gre") {
                return fail("illegal tunnel type specified");
            }
            c.tun_type = Some(value);
        }
        Action::Opt(Opt::TunPort) => {
            c.set_opt(Opt::TunPort)?;
            if parse_number(&value, 65_535).is_none_or(|p| p == 0) {
                return fail("illegal tunnel port specified");
            }
        }
        Action::Opt(o) => c.set_opt(o)?,
        Action::Nothing => {}
        Action::Help => c.help = true,
        Action::Version => c.version = true,
        Action::Api => {
            if c.api.is_some() {
                return fail("multiple 'api' options specified");
            }
            if value.is_empty() {
                return fail("--api: missing argument");
            }
            c.api = Some(value);
        }
        Action::TokenFile => {
            if c.token_file.is_some() {
                return fail("multiple 'token-file' options specified");
            }
            if value.is_empty() {
                return fail("--token-file: missing argument");
            }
            c.token_file = Some(value);
        }
    }
    Ok(())
}

/// Checks the verb against its options (ipvsadm's `generic_opt_check`) and builds it.
fn build(c: Collected) -> Result<Invocation, UsageError> {
    let (api, token_file) = (c.api.clone(), c.token_file.clone());
    let done = |command| Ok(Invocation { api: api.clone(), token_file: token_file.clone(), command });
    if c.help {
        return done(Command::Help);
    }
    if c.version {
        return done(Command::Version);
    }
    if let Some((vrid, family)) = c.ha_step_down {
        return done(Command::HaStepDown { vrid, family });
    }
    if c.status {
        return done(Command::Status);
    }
    let verb = match c.verb {
        Some(v) => v,
        None if c.seen.iter().any(|s| *s) => return fail(TRY_HELP),
        None => Verb::List,
    };
    let rules = RULES.iter().find(|(v, _)| *v == verb).map(|(_, r)| *r).unwrap_or(&[b'x'; Opt::COUNT]);
    let mut exclusive: Option<Opt> = None;
    for (opt, rule) in Opt::ALL.into_iter().zip(rules.iter()) {
        match (c.has(opt), rule) {
            (false, b'+') => {
                return fail(format!(
                    "You need to supply the '{}' option for the '{}' command",
                    opt.name(),
                    verb.name()
                ))
            }
            (true, b'x') => return fail(format!("Illegal '{}' option with the '{}' command", opt.name(), verb.name())),
            (true, b'1') => match exclusive {
                None => exclusive = Some(opt),
                Some(last) => {
                    return fail(format!(
                        "The option '{}' conflicts with the '{}' option in the '{}' command",
                        opt.name(),
                        last.name(),
                        verb.name()
                    ))
                }
            },
            _ => {}
        }
    }
    let tun_opts = [Opt::TunType, Opt::TunPort, Opt::TunNocsum, Opt::TunCsum, Opt::TunRemcsum];
    if tun_opts.iter().any(|&o| c.has(o)) {
        let fwd = if verb == Verb::AddServer { Some(c.forward.unwrap_or(Forward::Dr)) } else { c.forward };
        if fwd != Some(Forward::Tunnel) {
            return fail("Tunnel options conflict with forward method");
        }
        // ipvsadm's tunnel_types_v_options for ipip: no port, no checksum options.
        if c.tun_type.as_deref().unwrap_or("ipip") == "ipip" {
            if let Some(o) = tun_opts[1..].iter().find(|&&o| c.has(o)) {
                return fail(format!("Illegal '{}' option with the 'ipip' tunnel type", o.name()));
            }
        } else {
            // Deliberate: rvs encapsulates in IPIP only (DESIGN.md), so GUE and GRE servers
            // are refused here rather than silently sent as IPIP.
            return fail(format!(
                "tunnel type `{}' is not supported by rvs (ipip only)",
                c.tun_type.as_deref().unwrap_or("")
            ));
        }
    }
    let has_any = |opts: &[Opt]| opts.iter().any(|&o| c.has(o));
    if verb == Verb::List
        && ((has_any(&[Opt::Connection, Opt::Timeout, Opt::Daemon])
            && has_any(&[Opt::Stats, Opt::Rate, Opt::Thresholds]))
            || (has_any(&[Opt::Timeout, Opt::Daemon]) && c.has(Opt::PersistentConn)))
    {
        return fail("options conflicts in the list command");
    }
    // `--health` is Plain's listing with more columns: no other listing takes it.
    if verb == Verb::List && c.has(Opt::Health) {
        let others = [
            Opt::Connection,
            Opt::Timeout,
            Opt::Daemon,
            Opt::Stats,
            Opt::Rate,
            Opt::Thresholds,
            Opt::PersistentConn,
            Opt::TunInfo,
        ];
        if let Some(o) = others.into_iter().find(|&o| c.has(o)) {
            return fail(format!(
                "The option '{}' conflicts with the '{}' option in the '{}' command",
                Opt::Health.name(),
                o.name(),
                verb.name()
            ));
        }
    }
    if verb == Verb::List && c.has(Opt::Service) {
        if let Some(o) = [Opt::Timeout, Opt::Daemon].into_iter().find(|&o| c.has(o)) {
            return fail(format!(
                "The option '{}' conflicts with the '{}' option in the '{}' command",
                o.name(),
                Opt::Service.name(),
                verb.name()
            ));
        }
    }

    // Options required by the verb were checked above, so these are present when needed.
    let service =
        c.service.unwrap_or(ServiceAddr { protocol: Protocol::Tcp, address: Ipv4Addr::UNSPECIFIED.into(), port: 0 });
    let server = c.server.map(|(a, p)| SocketAddr::new(a, p.unwrap_or(service.port)));
    let command = match verb {
        Verb::AddService | Verb::EditService => {
            if service.port == 0 && c.persistence.is_none_or(|p| p == 0) {
                return fail("Zero port specified for non-persistent service");
            }
            if verb == Verb::AddService && c.persistence == Some(0) {
                return fail("invalid timeout value `0' specified");
            }
            // As ipvsadm: a dotted netmask for an IPv4 service, a prefix length 1-128 for an
            // IPv6 one, each refused with ipvsadm's words.
            let netmask = match c.netmask.as_deref() {
                None => None,
                Some(m) if service.address.is_ipv6() => match parse_prefix_len(m) {
                    Some(n) => Some(Netmask::V6(n)),
                    None => return fail("illegal ipv6 netmask specified"),
                },
                Some(m) => match parse_netmask(m) {
                    Some(a) => Some(Netmask::V4(a)),
                    None => return fail("illegal virtual server persistent mask specified"),
                },
            };
            let spec = ServiceSpec {
                service,
                scheduler: c.scheduler,
                persistence: c.persistence,
                netmask,
                client_rate: c.client_rate,
                client_burst: c.client_burst,
            };
            if verb == Verb::AddService {
                Command::AddService(ServiceSpec {
                    scheduler: Some(spec.scheduler.clone().unwrap_or_else(|| DEFAULT_SCHEDULER.to_string())),
                    ..spec
                })
            } else {
                Command::EditService(spec)
            }
        }
        Verb::DeleteService => Command::DeleteService(service),
        Verb::AddServer | Verb::EditServer => {
            let mut server = server.unwrap_or(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0));
            // As ipvsadm: DR and IPIP cannot change the port, so the server's port is the
            // service's whatever was written (`-a` defaults to DR).
            let fwd = if verb == Verb::AddServer { Some(c.forward.unwrap_or(Forward::Dr)) } else { c.forward };
            if matches!(fwd, Some(Forward::Dr | Forward::Tunnel)) {
                server.set_port(service.port);
            }
            if server.port() == 0 {
                return fail("illegal real server address[:port] specified");
            }
            let spec = ServerSpec {
                service,
                server,
                forward: c.forward,
                weight: c.weight,
                upper_threshold: c.upper,
                lower_threshold: c.lower,
            };
            if verb == Verb::AddServer {
                Command::AddServer(ServerSpec {
                    forward: Some(spec.forward.unwrap_or(Forward::Dr)),
                    weight: Some(spec.weight.unwrap_or(1)),
                    ..spec
                })
            } else {
                Command::EditServer(spec)
            }
        }
        Verb::DeleteServer => Command::DeleteServer {
            service,
            server: server.unwrap_or(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0)),
        },
        Verb::List => {
            let kind = if c.has(Opt::Connection) {
                ListKind::Connections
            } else if c.has(Opt::Timeout) {
                ListKind::Timeouts
            } else if c.has(Opt::Daemon) {
                ListKind::Daemon
            } else {
                ListKind::Services
            };
            Command::List(ListOpts {
                kind,
                numeric: c.has(Opt::Numeric),
                stats: c.has(Opt::Stats),
                rate: c.has(Opt::Rate),
                thresholds: c.has(Opt::Thresholds),
                persistent_conn: c.has(Opt::PersistentConn),
                tun_info: c.has(Opt::TunInfo),
                health: c.has(Opt::Health),
                exact: c.has(Opt::Exact),
                nosort: c.has(Opt::NoSort),
                service: c.service,
            })
        }
        Verb::Zero => Command::Zero(c.service),
        Verb::Flush => Command::Clear,
        Verb::Save => Command::Save { numeric: c.has(Opt::Numeric) },
        Verb::Restore => Command::Restore,
        Verb::StartDaemon => Command::StartDaemon,
        Verb::StopDaemon => Command::StopDaemon,
        Verb::Set => {
            let (tcp, tcp_fin, udp) = c.timeouts.unwrap_or((0, 0, 0));
            Command::SetTimeouts { tcp, tcp_fin, udp }
        }
    };
    done(command)
}

// ---------------------------------------------------------------------------------------
// Values.

/// A decimal number in `0..=max` (ipvsadm's `string_to_number`).
fn parse_number(text: &str, max: u32) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u32>().ok().filter(|&n| n <= max)
}

/// A timeout in seconds, `min..=MAX_TIMEOUT` (ipvsadm's `parse_timeout`).
fn parse_timeout(text: &str, min: u32) -> Result<u32, UsageError> {
    match parse_number(text, MAX_TIMEOUT) {
        Some(n) if n >= min => Ok(n),
        _ => fail(format!("invalid timeout value `{text}' specified")),
    }
}

/// An IPv6 prefix length as ipvsadm's `-M` takes it for an IPv6 service: 1 to 128, digits
/// only.
fn parse_prefix_len(text: &str) -> Option<u8> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u8>().ok().filter(|n| (1..=128).contains(n))
}

/// A contiguous IPv4 netmask in dotted quad (`255.255.255.0`).
fn parse_netmask(text: &str) -> Option<Ipv4Addr> {
    let m: Ipv4Addr = text.parse().ok()?;
    let bits = u32::from(m);
    (bits.leading_ones() + bits.trailing_zeros() == 32).then_some(m)
}

/// `ADDR[:PORT]`, where ADDR is an IPv4 address or a host name and PORT a number or a
/// service name from `/etc/services`; or `[IPV6]:PORT`, an IPv6 address in brackets as
/// ipvsadm takes it. `None` when either part is bad or PORT is 0. A bare IPv6 address is
/// refused: `2001:db8::1:80` could be an address or an address and a port (ipvsadm reads
/// it as an address without a port); [`illegal`] says how to write it.
pub fn parse_addr_port(text: &str, protocol: Protocol) -> Option<(IpAddr, Option<u16>)> {
    split_addr_port(text, protocol).filter(|(_, p)| *p != Some(0))
}

/// [`parse_addr_port`] with port 0 allowed (`-t VIP:0`, a port-less service).
fn split_addr_port(text: &str, protocol: Protocol) -> Option<(IpAddr, Option<u16>)> {
    if let Some(rest) = text.strip_prefix('[') {
        // As ipvsadm's parse_service: `]` then `:` must follow the address.
        let (host, after) = rest.split_once(']')?;
        let address = host.parse::<Ipv6Addr>().ok().filter(|a| a.to_ipv4_mapped().is_none())?;
        let port = resolve_port(after.strip_prefix(':')?, protocol)?;
        return Some((IpAddr::V6(address), Some(port)));
    }
    if text.contains('[') || text.contains(']') || text.parse::<Ipv6Addr>().is_ok() {
        return None;
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (text, None),
    };
    let address = resolve_host(host)?;
    let port = match port {
        None => None,
        Some(p) => Some(resolve_port(p, protocol)?),
    };
    Some((IpAddr::V4(address), port))
}

/// ipvsadm's `illegal virtual server address[:port] specified` (`what` = "virtual
/// server" or "real server") for `text`, with a second line saying how to write an IPv6
/// address when `text` looks like one.
pub fn illegal(what: &str, text: &str) -> String {
    let first = format!("illegal {what} address[:port] specified");
    match ipv6_hint(text) {
        Some(hint) => format!("{first}\nrvsadm: {hint}"),
        None => first,
    }
}

/// How to write `text` when it is a mis-spelt IPv6 address and port.
fn ipv6_hint(text: &str) -> Option<String> {
    const HOW: &str = "write an IPv6 address in brackets with the port after them, like [2001:db8::1]:80";
    if let Some(rest) = text.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Some(format!("`{text}` has no closing `]`; {HOW}"));
        };
        if host.contains('%') {
            return Some(format!("`{text}`: zone ids (`%...`) are not taken; {HOW}"));
        }
        return match host.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => Some(format!("`{text}`: brackets are for IPv6 only; write {a}{after}")),
            Ok(IpAddr::V6(a)) => match a.to_ipv4_mapped() {
                Some(v4) => Some(format!("`{text}` is IPv4-mapped; write the IPv4 address: {v4}{after}")),
                None if !after.starts_with(':') => Some(format!("`{text}` has no port; write it as [{a}]:PORT")),
                None => None,
            },
            Err(_) => None,
        };
    }
    if text.contains('%') && text.contains(':') {
        return Some(format!("`{text}`: zone ids (`%...`) are not taken; {HOW}"));
    }
    if text.parse::<Ipv6Addr>().is_ok() {
        return Some(format!("`{text}` is an IPv6 address without brackets, so its port cannot be told apart; {HOW}"));
    }
    None
}

/// An IPv4 address, or the first IPv4 address a host name resolves to.
fn resolve_host(host: &str) -> Option<Ipv4Addr> {
    if host.is_empty() {
        return None;
    }
    if let Ok(a) = host.parse::<Ipv4Addr>() {
        return Some(a);
    }
    // Only names that could be host names go to the resolver.
    if !host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') || host.len() > 253 {
        return None;
    }
    // The fuzz targets (controlplane/fuzz) must not wait on DNS: there, only `localhost`
    // resolves, without asking anyone.
    if cfg!(fuzzing) {
        return (host == "localhost").then_some(Ipv4Addr::LOCALHOST);
    }
    (host, 0u16).to_socket_addrs().ok()?.find_map(|a| match a.ip() {
        std::net::IpAddr::V4(v4) => Some(v4),
        std::net::IpAddr::V6(_) => None,
    })
}

/// A port number, or a service name looked up in `/etc/services`.
fn resolve_port(text: &str, protocol: Protocol) -> Option<u16> {
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<u16>().ok();
    }
    if text.is_empty() || !text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return None;
    }
    let services = std::fs::read_to_string("/etc/services").ok()?;
    lookup_service(&services, text, protocol)
}

/// The port of service `name` for `protocol` in the text of an `/etc/services` file.
fn lookup_service(services: &str, name: &str, protocol: Protocol) -> Option<u16> {
    services.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let primary = fields.next()?;
        let (port, proto) = fields.next()?.split_once('/')?;
        let matches = primary == name || fields.any(|alias| alias == name);
        (matches && proto == protocol.name()).then(|| port.parse().ok()).flatten()
    })
}

/// Splits one line of `-R` input into words. Blank lines and `#` comments give nothing.
pub fn split_line(line: &str) -> Vec<String> {
    let line = line.trim();
    if line.starts_with('#') {
        return Vec::new();
    }
    line.split_whitespace().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Command {
        match parse(&split_line(line)) {
            Ok(inv) => inv.command,
            Err(e) => panic!("{line:?}: {e}"),
        }
    }

    fn err(line: &str) -> String {
        match parse(&split_line(line)) {
            Ok(inv) => panic!("{line:?} parsed as {inv:?}"),
            Err(e) => e.0,
        }
    }

    fn vip(port: u16) -> ServiceAddr {
        ServiceAddr { protocol: Protocol::Tcp, address: Ipv4Addr::new(10, 10, 0, 100).into(), port }
    }

    fn vip6(port: u16) -> ServiceAddr {
        ServiceAddr { protocol: Protocol::Tcp, address: "2001:db8::1".parse().unwrap(), port }
    }

    #[test]
    fn ipv6_services_and_servers_as_ipvsadm_writes_them() {
        assert_eq!(
            ok("-A -t [2001:db8::1]:80 -s rr"),
            Command::AddService(ServiceSpec {
                service: vip6(80),
                scheduler: Some("rr".into()),
                persistence: None,
                netmask: None,
                client_rate: None,
                client_burst: None,
            })
        );
        assert_eq!(vip6(80).path(), "tcp/2001:db8::1/80");
        let Command::AddServer(spec) = ok("-a -t [2001:db8::1]:80 -r [2001:db8::11]:8080 -m -w 2") else {
            panic!("not an add-server")
        };
        assert_eq!((spec.service, spec.server), (vip6(80), "[2001:db8::11]:8080".parse().unwrap()));
        // DR keeps the service's port, as for IPv4.
        let Command::AddServer(spec) = ok("-a -t [2001:db8::1]:80 -r [2001:db8::11]:8080 -g") else {
            panic!("not an add-server")
        };
        assert_eq!(spec.server, "[2001:db8::11]:80".parse().unwrap());
        assert_eq!(
            ok("-d -u [2001:db8::1]:53 -r [2001:db8::12]:53"),
            Command::DeleteServer {
                service: ServiceAddr { protocol: Protocol::Udp, ..vip6(53) },
                server: "[2001:db8::12]:53".parse().unwrap()
            }
        );
        assert_eq!(ok("-D -t [2001:db8::1]:http"), Command::DeleteService(vip6(80)));
        assert_eq!(ok("-L -n -t [2001:db8::1]:80"), ok("-Ln -t [2001:db8::1]:80"));
        // IPv4 spellings are unchanged.
        assert_eq!(ok("-D -t 10.10.0.100:80"), Command::DeleteService(vip(80)));
    }

    #[test]
    fn misspelt_ipv6_is_refused_with_the_right_spelling() {
        let cases = [
            ("-A -t 2001:db8::1:80", "virtual server", "without brackets"),
            ("-A -t 2001:db8::1", "virtual server", "without brackets"),
            ("-A -t [2001:db8::1:80", "virtual server", "no closing"),
            ("-A -t [2001:db8::1]", "virtual server", "no port"),
            ("-A -t [2001:db8::1]80", "virtual server", "no port"),
            ("-A -t [10.10.0.100]:80", "virtual server", "write 10.10.0.100:80"),
            ("-A -t [fe80::1%eth0]:80", "virtual server", "zone ids"),
            ("-A -t fe80::1%eth0:80", "virtual server", "zone ids"),
            ("-A -t [::ffff:10.10.0.100]:80", "virtual server", "write the IPv4 address: 10.10.0.100:80"),
            ("-a -t [2001:db8::1]:80 -r 2001:db8::11:80", "real server", "without brackets"),
            ("-a -t [2001:db8::1]:80 -r [2001:db8::11", "real server", "no closing"),
            ("-a -t [2001:db8::1]:80 -r [2001:db8::11]:0", "real server", ""),
            ("-a -t [2001:db8::1]:80 -r [2001:db8::11]:99999", "real server", ""),
            ("-a -t [2001:db8::1]:80 -r []:80", "real server", ""),
            ("-a -t [2001:db8::1]:80 -r ]:80", "real server", ""),
            ("admin -t 2001:db8::1:80 -r 10.20.0.12 drain", "virtual server", "without brackets"),
        ];
        for (line, what, hint) in cases {
            let e = err(line);
            assert!(e.starts_with(&format!("illegal {what} address[:port] specified")), "{line}: {e}");
            if hint.is_empty() {
                assert!(!e.contains('\n'), "{line}: {e}");
            } else {
                assert!(e.contains("\nrvsadm: ") && e.contains(hint), "{line}: {e}");
            }
        }
    }

    #[test]
    fn addresses_never_panic() {
        for text in [
            "[",
            "]",
            "[]",
            "[:",
            "[::]:",
            "[::1]:",
            ":::",
            "[[::1]]:80",
            "[::1]]:80",
            "%",
            "[%]:1",
            "1.2.3.4:",
            ":80",
            "[1:2:3:4:5:6:7:8:9]:80",
        ] {
            let _ = parse_addr_port(text, Protocol::Tcp);
            let _ = illegal("real server", text);
        }
    }

    #[test]
    fn add_service_defaults_like_ipvsadm() {
        assert_eq!(
            ok("-A -t 10.10.0.100:80"),
            Command::AddService(ServiceSpec {
                service: vip(80),
                scheduler: Some("wlc".into()),
                persistence: None,
                netmask: None,
                client_rate: None,
                client_burst: None,
            })
        );
        assert_eq!(
            ok("--add-service --udp-service 10.10.0.100:53 --scheduler rr --persistent --netmask 255.255.255.0"),
            Command::AddService(ServiceSpec {
                service: ServiceAddr { protocol: Protocol::Udp, ..vip(53) },
                scheduler: Some("rr".into()),
                persistence: Some(360),
                netmask: Some(Netmask::V4(Ipv4Addr::new(255, 255, 255, 0))),
                client_rate: None,
                client_burst: None,
            })
        );
    }

    #[test]
    fn persistent_value_is_optional() {
        let p = |line: &str| match ok(line) {
            Command::AddService(s) | Command::EditService(s) => s.persistence,
            c => panic!("{c:?}"),
        };
        assert_eq!(p("-A -t 10.10.0.100:80 -s rr -p"), Some(360));
        assert_eq!(p("-A -t 10.10.0.100:80 -p -s rr"), Some(360));
        assert_eq!(p("-A -t 10.10.0.100:80 -p 600 -s rr"), Some(600));
        assert_eq!(p("-A -t 10.10.0.100:80 -p600"), Some(600));
        assert_eq!(p("-A -t 10.10.0.100:80 --persistent=60"), Some(60));
        assert_eq!(p("-E -t 10.10.0.100:80 -p 0"), Some(0));
        assert_eq!(p("-E -t 10.10.0.100:80 -s rr"), None);
        // A persistent service may have port 0, like ipvsadm's "all ports" services.
        assert_eq!(p("-A -t 10.10.0.100 -p"), Some(360));
    }

    #[test]
    fn add_server_defaults_and_port() {
        assert_eq!(
            ok("-a -t 10.10.0.100:80 -r 10.20.0.11"),
            Command::AddServer(ServerSpec {
                service: vip(80),
                server: "10.20.0.11:80".parse().unwrap(),
                forward: Some(Forward::Dr),
                weight: Some(1),
                upper_threshold: None,
                lower_threshold: None,
            })
        );
        // -r before -t still takes the service's port.
        assert_eq!(
            ok("-a -r 10.20.0.11 -t 10.10.0.100:80 -m -w 3 -x 100 -y 50"),
            Command::AddServer(ServerSpec {
                service: vip(80),
                server: "10.20.0.11:80".parse().unwrap(),
                forward: Some(Forward::Nat),
                weight: Some(3),
                upper_threshold: Some(100),
                lower_threshold: Some(50),
            })
        );
        // DR and IPIP keep the service's port, as in ipvsadm.
        match ok("-a -t 10.10.0.100:80 -r 10.20.0.11:8080 -i") {
            Command::AddServer(s) => assert_eq!(s.server.port(), 80),
            c => panic!("{c:?}"),
        }
        match ok("-a -t 10.10.0.100:80 -r 10.20.0.11:8080 -b -w0") {
            Command::AddServer(s) => {
                assert_eq!(s.server.port(), 8080);
                assert_eq!(s.forward, Some(Forward::FullNat));
                assert_eq!(s.weight, Some(0));
            }
            c => panic!("{c:?}"),
        }
        match ok("--add-server --tcp-service 10.10.0.100:80 --real-server 10.20.0.11 --ipip --weight=2") {
            Command::AddServer(s) => assert_eq!((s.forward, s.weight), (Some(Forward::Tunnel), Some(2))),
            c => panic!("{c:?}"),
        }
        match ok("--add-server -t 10.10.0.100:80 -r 10.20.0.11 --gatewaying --u-threshold 5 --l-threshold 1") {
            Command::AddServer(s) => {
                assert_eq!((s.forward, s.upper_threshold, s.lower_threshold), (Some(Forward::Dr), Some(5), Some(1)))
            }
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn edit_sends_only_what_is_given() {
        assert_eq!(
            ok("-e -t 10.10.0.100:80 -r 10.20.0.11:80 -w 5"),
            Command::EditServer(ServerSpec {
                service: vip(80),
                server: "10.20.0.11:80".parse().unwrap(),
                forward: None,
                weight: Some(5),
                upper_threshold: None,
                lower_threshold: None,
            })
        );
        assert_eq!(
            ok("--edit-service -t 10.10.0.100:80 -s wrr"),
            Command::EditService(ServiceSpec {
                service: vip(80),
                scheduler: Some("wrr".into()),
                persistence: None,
                netmask: None,
                client_rate: None,
                client_burst: None,
            })
        );
    }

    /// rvs's own `ha step-down VRID`, which ipvsadm does not have.
    #[test]
    fn ha_step_down() {
        assert_eq!(ok("ha step-down 51"), Command::HaStepDown { vrid: 51, family: None });
        assert_eq!(ok("ha step-down 51 ipv6"), Command::HaStepDown { vrid: 51, family: Some("ipv6") });
        assert_eq!(ok("ha step-down 51 ipv4"), Command::HaStepDown { vrid: 51, family: Some("ipv4") });
        let inv = parse(&["ha", "step-down", "7", "--api=http://h:1"]).unwrap();
        assert_eq!(
            (inv.api.as_deref(), inv.command),
            (Some("http://h:1"), Command::HaStepDown { vrid: 7, family: None })
        );
        assert!(!ok("ha step-down 51").is_change());
        for (line, says) in [
            ("ha", "ha takes: step-down VRID [ipv4|ipv6]"),
            ("ha stepdown 5", "ha takes: step-down VRID [ipv4|ipv6]"),
            ("ha step-down 5 ipv5", "unexpected argument ipv5"),
            ("ha step-down", "missing VRID"),
            ("ha step-down 0", "not a VRID"),
            ("ha step-down 256", "not a VRID"),
            ("ha step-down 5 -L", "unexpected argument -L after status"),
            ("-L ha step-down 5", "unexpected argument ha"),
        ] {
            let words: Vec<&str> = line.split(' ').collect();
            let e = parse(&words).unwrap_err();
            assert!(e.0.contains(says), "{line}: {e}");
        }
    }

    #[test]
    fn the_other_verbs() {
        assert_eq!(ok("-D -t 10.10.0.100:80"), Command::DeleteService(vip(80)));
        assert_eq!(
            ok("-d -t 10.10.0.100:80 -r 10.20.0.12"),
            Command::DeleteServer { service: vip(80), server: "10.20.0.12:80".parse().unwrap() }
        );
        assert_eq!(ok("-C"), Command::Clear);
        assert_eq!(ok("--clear"), Command::Clear);
        assert_eq!(ok("-Z"), Command::Zero(None));
        assert_eq!(ok("--zero -t 10.10.0.100:80"), Command::Zero(Some(vip(80))));
        assert_eq!(ok("-S"), Command::Save { numeric: false });
        assert_eq!(ok("-Sn"), Command::Save { numeric: true });
        assert_eq!(ok("--save --numeric"), Command::Save { numeric: true });
        assert_eq!(ok("-R"), Command::Restore);
        assert_eq!(ok("--set 900 120 300"), Command::SetTimeouts { tcp: 900, tcp_fin: 120, udp: 300 });
        assert_eq!(ok("--set 0 0 60"), Command::SetTimeouts { tcp: 0, tcp_fin: 0, udp: 60 });
        assert_eq!(ok("status"), Command::Status);
        assert_eq!(
            ok("admin -t 10.10.0.100:80 -r 10.20.0.12 drain"),
            Command::Admin { service: vip(80), server: "10.20.0.12:80".parse().unwrap(), state: AdminState::Drain }
        );
        assert_eq!(
            ok("admin maint --real-server=10.20.0.12:8080 --tcp-service 10.10.0.100:80"),
            Command::Admin { service: vip(80), server: "10.20.0.12:8080".parse().unwrap(), state: AdminState::Maint }
        );
        let inv = parse(&split_line("--api http://h:1 admin -u 10.10.0.100:53 -r 10.20.0.11 ready")).unwrap();
        assert_eq!(inv.api.as_deref(), Some("http://h:1"));
        assert!(matches!(inv.command, Command::Admin { state: AdminState::Ready, .. }));
        for (line, msg) in [
            ("admin -t 10.10.0.100:80 -r 10.20.0.12 off", "admin: unknown state `off'; use ready, drain or maint"),
            ("admin -t 10.10.0.100:80 -r 10.20.0.12", "admin: give the state: ready, drain or maint"),
            ("admin -r 10.20.0.12 drain", "You need to supply the 'service-address' option for the 'admin' command"),
            ("admin -t 10.10.0.100:80 drain", "You need to supply the 'real-server' option for the 'admin' command"),
            ("admin -t 10.10.0.100 -r 10.20.0.12 drain", "illegal virtual server address[:port] specified"),
            ("admin -t 10.10.0.100:80 -r 10.20.0.12 drain maint", "admin: unexpected argument maint"),
            ("admin -t 10.10.0.100:80 -r 10.20.0.12 -w 3 drain", "admin: unknown option -w"),
            ("admin -t 10.10.0.100:80 -r", "-r: missing argument"),
        ] {
            assert_eq!(err(line), msg, "{line}");
        }
        assert!(!ok("admin -t 10.10.0.100:80 -r 10.20.0.12 drain").is_change(), "not an -R line");
        assert_eq!(ok("-h"), Command::Help);
        assert_eq!(ok("--version"), Command::Version);
    }

    #[test]
    fn listing_forms() {
        let l = |line: &str| match ok(line) {
            Command::List(o) => o,
            c => panic!("{c:?}"),
        };
        assert_eq!(l(""), ListOpts::default());
        assert_eq!(l("-L"), ListOpts::default());
        assert_eq!(l("-Ln"), ListOpts { numeric: true, ..Default::default() });
        assert_eq!(l("-l -n"), ListOpts { numeric: true, ..Default::default() });
        assert_eq!(l("-Lnc"), ListOpts { kind: ListKind::Connections, numeric: true, ..Default::default() });
        assert_eq!(l("--list --connection"), ListOpts { kind: ListKind::Connections, ..Default::default() });
        assert_eq!(l("-Ln --stats"), ListOpts { numeric: true, stats: true, ..Default::default() });
        assert_eq!(l("-Ln --rate"), ListOpts { numeric: true, rate: true, ..Default::default() });
        assert_eq!(l("-L --timeout"), ListOpts { kind: ListKind::Timeouts, ..Default::default() });
        assert_eq!(
            l("-Ln -t 10.10.0.100:80"),
            ListOpts { numeric: true, service: Some(vip(80)), ..Default::default() }
        );
        assert_eq!(l("-Ln --health"), ListOpts { numeric: true, health: true, ..Default::default() });
        assert_eq!(
            l("--list --health -X --nosort -t 10.10.0.100:80"),
            ListOpts { health: true, exact: true, nosort: true, service: Some(vip(80)), ..Default::default() }
        );
        assert_eq!(
            l("-Lnc -t 10.10.0.100:80"),
            ListOpts { kind: ListKind::Connections, numeric: true, service: Some(vip(80)), ..Default::default() }
        );
    }

    #[test]
    fn api_anywhere() {
        let inv = parse(&["--api", "http://10.0.0.1:9000", "-Ln"]).unwrap();
        assert_eq!(inv.api.as_deref(), Some("http://10.0.0.1:9000"));
        let inv = parse(&["status", "--api=http://h:1"]).unwrap();
        assert_eq!((inv.api.as_deref(), inv.command), (Some("http://h:1"), Command::Status));
        let inv = parse(&["-Ln", "--token-file", "/etc/rvs/token"]).unwrap();
        assert_eq!(inv.token_file.as_deref(), Some("/etc/rvs/token"));
        assert!(parse(&["-Ln", "--token-file=a", "--token-file=b"]).is_err());
    }

    /// Bad lines and ipvsadm's message for each.
    #[test]
    fn bad_lines_get_ipvsadm_messages() {
        let cases = [
            ("-A -D -t 10.10.0.100:80", "invalid option `-D'"),
            ("-L -C", "invalid option `-C'"),
            ("-A -t 10.10.0.100:80 -t 10.10.0.100:81", "multiple 'service-address' options specified"),
            ("-A -t 10.10.0.100:80 -u 10.10.0.100:81", "multiple 'service-address' options specified"),
            ("-a -t 10.10.0.100:80 -r 10.20.0.11 -g -m", "multiple 'forwarding-method' options specified"),
            ("-a -t 10.10.0.100:80 -r 10.20.0.11 -w 1 -w 2", "multiple 'weight' options specified"),
            ("-A", "You need to supply the 'service-address' option for the 'add-service' command"),
            ("-a -t 10.10.0.100:80", "You need to supply the 'real-server' option for the 'add-server' command"),
            ("-d -t 10.10.0.100:80", "You need to supply the 'real-server' option for the 'delete-server' command"),
            ("-D", "You need to supply the 'service-address' option for the 'delete-service' command"),
            ("-A -t 10.10.0.100:80 -r 10.20.0.11", "Illegal 'real-server' option with the 'add-service' command"),
            ("-A -t 10.10.0.100:80 -w 1", "Illegal 'weight' option with the 'add-service' command"),
            ("-A -t 10.10.0.100:80 -n", "Illegal 'numeric' option with the 'add-service' command"),
            ("-D -t 10.10.0.100:80 -s rr", "Illegal 'scheduler' option with the 'delete-service' command"),
            ("-a -t 10.10.0.100:80 -r 10.20.0.11 -s rr", "Illegal 'scheduler' option with the 'add-server' command"),
            ("-d -t 10.10.0.100:80 -r 10.20.0.11 -w 2", "Illegal 'weight' option with the 'delete-server' command"),
            ("-L -w 3", "Illegal 'weight' option with the 'list' command"),
            ("-C -t 10.10.0.100:80", "Illegal 'service-address' option with the 'flush' command"),
            ("-S -c", "Illegal 'connection' option with the 'save' command"),
            ("-Z -n", "Illegal 'numeric' option with the 'zero' command"),
            ("-R -n", "Illegal 'numeric' option with the 'restore' command"),
            ("--set 1 2 3 -n", "Illegal 'numeric' option with the 'set' command"),
            ("-L -c --timeout", "The option 'timeout' conflicts with the 'connection' option in the 'list' command"),
            (
                "-L --timeout -t 10.10.0.100:80",
                "The option 'timeout' conflicts with the 'service-address' option in the 'list' command",
            ),
            ("-L -c --stats", "options conflicts in the list command"),
            ("-L --timeout --rate", "options conflicts in the list command"),
            ("-n", TRY_HELP),
            ("-t 10.10.0.100:80 -s rr", TRY_HELP),
            ("-A -t 10.10.0.300:80", "illegal virtual server address[:port] specified"),
            ("-A -t 10.10.0.100:99999", "illegal virtual server address[:port] specified"),
            ("-A -t 10.10.0.100:0", "Zero port specified for non-persistent service"),
            ("-A -t :80", "illegal virtual server address[:port] specified"),
            ("-A -t bad!host:80", "illegal virtual server address[:port] specified"),
            ("-A -t 10.10.0.100:nosuchservicename", "illegal virtual server address[:port] specified"),
            ("-A -t 10.10.0.100", "Zero port specified for non-persistent service"),
            ("-a -t 10.10.0.100:80 -r 10.20.0.999", "illegal real server address[:port] specified"),
            ("-a -t 10.10.0.100 -r 10.20.0.11", "illegal real server address[:port] specified"),
            ("-a -t 10.10.0.100:80 -r 10.20.0.11 -w 65536", "illegal weight specified"),
            ("-a -t 10.10.0.100:80 -r 10.20.0.11 -w -1", "illegal weight specified"),
            ("-a -t 10.10.0.100:80 -r 10.20.0.11 -w x", "illegal weight specified"),
            ("-a -t 10.10.0.100:80 -r 10.20.0.11 -x abc", "illegal u_threshold specified"),
            ("-a -t 10.10.0.100:80 -r 10.20.0.11 -y 99999999999", "illegal l_threshold specified"),
            ("-A -t 10.10.0.100:80 -p 9999999", "invalid timeout value `9999999' specified"),
            ("-A -t 10.10.0.100:80 -p abc", "invalid timeout value `abc' specified"),
            ("-A -t 10.10.0.100:80 -p 0", "invalid timeout value `0' specified"),
            ("-A -t 10.10.0.100:80 -p -M 255.0.255.0", "illegal virtual server persistent mask specified"),
            ("-A -t 10.10.0.100:80 -M nope", "illegal virtual server persistent mask specified"),
            ("-A -t 10.10.0.100:80 -p -M 64", "illegal virtual server persistent mask specified"),
            ("-A -t [2001:db8::1]:80 -p -M 255.255.255.0", "illegal ipv6 netmask specified"),
            ("-A -t [2001:db8::1]:80 -p -M 0", "illegal ipv6 netmask specified"),
            ("-A -t [2001:db8::1]:80 -p -M 129", "illegal ipv6 netmask specified"),
            ("-M 64x -E -t [2001:db8::1]:80", "illegal ipv6 netmask specified"),
            ("--set 900 120", "--set option requires 3 timeout values"),
            ("--set", "--set option requires 3 timeout values"),
            ("--set 900 x 300", "invalid timeout value `x' specified"),
            ("-Q", TRY_HELP),
            ("-LQ", "invalid option `-LQ'"),
            ("--frobnicate", TRY_HELP),
            ("--list=yes", "--list=yes: option does not take an argument"),
            ("-A -t", "-t: missing argument"),
            ("-a -t 10.10.0.100:80 -r", "-r: missing argument"),
            ("--weight", "--weight: missing argument"),
            ("-L extra", "unexpected argument extra"),
            ("status -L", "unexpected argument -L after status"),
            ("status status", "unexpected argument status"),
            ("-L status", "unexpected argument status"),
            ("--api", "--api: missing argument"),
            ("-A -t 10.10.0.100:80 -s", "-s: missing argument"),
            (
                "-A -t 10.10.0.100:80 -s averyveryverylongschedulername",
                "illegal scheduler `averyveryverylongschedulername' specified",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(err(line), want, "{line}");
        }
    }

    /// `--health` is rvs's own option of the plain services listing: any other listing
    /// with it is refused with ipvsadm's words for conflicting options, and so is any verb
    /// but `-L`.
    #[test]
    fn health_goes_with_the_plain_listing_only() {
        let conflict = |o: &str| format!("The option 'health' conflicts with the '{o}' option in the 'list' command");
        for (line, other) in [
            ("-L --health -c", "connection"),
            ("-Lc --health -t 10.10.0.100:80", "connection"),
            ("-L --health --timeout", "timeout"),
            ("-L --daemon --health", "daemon"),
            ("-L --health --stats", "stats"),
            ("-L --rate --health", "rate"),
            ("-L --health --thresholds", "thresholds"),
            ("-L --health --persistent-conn", "persistent-conn"),
            ("-L --health --tun-info", "tun-info"),
            ("-Ln --health --stats --rate -t 10.10.0.100:80", "stats"),
        ] {
            assert_eq!(err(line), conflict(other), "{line}");
        }
        // ipvsadm's own complaints about the other options come first.
        assert_eq!(err("-L -c --stats --health"), "options conflicts in the list command");
        assert_eq!(err("-L --health --health"), "multiple 'health' options specified");
        assert_eq!(err("-L --health=yes"), "--health=yes: option does not take an argument");
        assert_eq!(err("-A -t 10.10.0.100:80 --health"), "Illegal 'health' option with the 'add-service' command");
        assert_eq!(err("-Z --health"), "Illegal 'health' option with the 'zero' command");
        assert_eq!(err("-S --health"), "Illegal 'health' option with the 'save' command");
        assert_eq!(
            err("-a -t 10.10.0.100:80 -r 10.20.0.11 --health"),
            "Illegal 'health' option with the 'add-server' command"
        );
        assert_eq!(err("--health"), TRY_HELP);
        assert_eq!(err("status --health"), "unexpected argument --health after status");
        assert_eq!(err("admin -t 10.10.0.100:80 -r 10.20.0.11 --health"), "admin: unknown option --health");
    }

    #[test]
    fn netmasks_must_be_contiguous() {
        assert_eq!(parse_netmask("255.255.255.0"), Some(Ipv4Addr::new(255, 255, 255, 0)));
        assert_eq!(parse_netmask("0.0.0.0"), Some(Ipv4Addr::UNSPECIFIED));
        assert_eq!(parse_netmask("255.255.255.255"), Some(Ipv4Addr::BROADCAST));
        assert_eq!(parse_netmask("255.0.255.0"), None);
        assert_eq!(parse_netmask("255.255.255"), None);
        assert_eq!(parse_prefix_len("64"), Some(64));
        assert_eq!(parse_prefix_len("128"), Some(128));
        for bad in ["0", "129", "", "+64", "/64", "6 4", "300"] {
            assert_eq!(parse_prefix_len(bad), None, "{bad}");
        }
    }

    #[test]
    fn etc_services_lookup() {
        let text = "# comment\nhttp\t\t80/tcp\t\twww # WorldWideWeb\ndomain 53/udp\nfoo 99/tcp bar\n";
        assert_eq!(lookup_service(text, "http", Protocol::Tcp), Some(80));
        assert_eq!(lookup_service(text, "www", Protocol::Tcp), Some(80));
        assert_eq!(lookup_service(text, "http", Protocol::Udp), None);
        assert_eq!(lookup_service(text, "domain", Protocol::Udp), Some(53));
        assert_eq!(lookup_service(text, "bar", Protocol::Tcp), Some(99));
    }

    #[test]
    fn split_line_skips_comments() {
        assert!(split_line("  # -A -t 1.2.3.4:80").is_empty());
        assert!(split_line("   ").is_empty());
        assert_eq!(split_line(" -A  -t\t1.2.3.4:80 "), vec!["-A", "-t", "1.2.3.4:80"]);
    }

    #[test]
    fn is_change_matches_restore_verbs() {
        assert!(ok("-A -t 10.10.0.100:80").is_change());
        assert!(ok("-C").is_change());
        assert!(!ok("-L").is_change());
        assert!(!ok("-R").is_change());
        assert!(!ok("status").is_change());
    }
    /// rvs's own `--client-rate`/`--client-burst`: `-A` and `-E` only, numbers only (rvsd
    /// checks the range), each at most once.
    #[test]
    fn client_rate_and_burst_on_add_and_edit_service() {
        let Command::AddService(spec) = ok("-A -t 10.10.0.100:80 --client-rate 20 --client-burst 64") else {
            panic!("not -A")
        };
        assert_eq!((spec.client_rate, spec.client_burst), (Some(20), Some(64)));
        let Command::EditService(spec) = ok("-E -t 10.10.0.100:80 --client-rate=0") else { panic!("not -E") };
        assert_eq!((spec.client_rate, spec.client_burst, spec.scheduler), (Some(0), None, None));
        let Command::AddService(spec) = ok("-A -t 10.10.0.100:80") else { panic!("not -A") };
        assert_eq!((spec.client_rate, spec.client_burst), (None, None));
        assert_eq!(err("-A -t 10.10.0.100:80 --client-rate fast"), "illegal client-rate specified");
        assert_eq!(err("-E -t 10.10.0.100:80 --client-burst -1"), "illegal client-burst specified");
        assert_eq!(err("-A -t 10.10.0.100:80 --client-rate 99999999999"), "illegal client-rate specified");
        assert_eq!(
            err("-A -t 10.10.0.100:80 --client-rate 1 --client-rate 2"),
            "multiple 'client-rate' options specified"
        );
        assert_eq!(
            err("-a -t 10.10.0.100:80 -r 10.20.0.11 --client-rate 5"),
            "Illegal 'client-rate' option with the 'add-server' command"
        );
        assert_eq!(err("-L --client-burst 5"), "Illegal 'client-burst' option with the 'list' command");
        assert_eq!(err("-A -t 10.10.0.100:80 --client-rate"), "--client-rate: missing argument");
    }
}
