//! Control → worker requests: the typed messages the control plane sends a worker, and
//! the replies it gets back.
//!
//! Contract (STYLE.md §7, Firecracker's typed requests):
//! * The control plane cannot read a worker's connection table (it is the worker's,
//!   unlocked). It asks: [`ControlHandle::request`] pushes a [`WorkerRequest`] on a
//!   bounded single-producer queue (the control thread is the only producer) and
//!   returns at once; the worker pops requests *between* polls
//!   ([`ControlLink::pop`], at most [`REQUESTS_PER_POLL`] per poll) and answers through
//!   the reply channel that travels inside the request.
//! * The data path never blocks on this: popping is a lock-free queue read, answering is
//!   a `send` on a one-shot channel (tokio's; it never waits, and needs no runtime on the
//!   worker's side; a requester that gave up has dropped its receiver, and the answer is
//!   discarded). Building an answer allocates
//!   (a bounded listing, at most [`MAX_LISTING`] entries); that is off the per-packet path,
//!   once per request.
//! * The requester awaits the one-shot receiver (woken by the send, no polling) with a
//!   timeout of its own choosing; a worker that is stuck or stopped simply never answers.

use std::net::IpAddr;
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;
use tokio::sync::oneshot;

use crate::types::{ConnState, ForwardMode, L4Proto, ServiceKey};

/// Requests a worker handles per poll at most.
pub const REQUESTS_PER_POLL: usize = 4;

/// Most entries one worker returns in a connection listing.
pub const MAX_LISTING: usize = 100_000;

/// Which connections a listing wants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnFilter {
    /// Only connections of this service (protocol, VIP, port).
    pub service: Option<ServiceKey>,
    /// Only connections to this real server (address, port), of either family.
    pub server: Option<(IpAddr, u16)>,
}

/// One connection in a listing (ipvsadm -Lnc's columns and more), IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnEntry {
    /// TCP or UDP.
    pub proto: L4Proto,
    /// Client address and port.
    pub client: (IpAddr, u16),
    /// VIP and port.
    pub vip: (IpAddr, u16),
    /// Full-NAT local address and port (the client's in other modes).
    pub local: (IpAddr, u16),
    /// Real server address and port.
    pub server: (IpAddr, u16),
    /// Forwarding mode.
    pub forward: ForwardMode,
    /// Protocol state.
    pub state: ConnState,
    /// Nanoseconds until the connection expires if no packet comes.
    pub expires_in_ns: u64,
}

/// A worker's answer to [`WorkerRequest::ListConns`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnListing {
    /// The answering worker's index.
    pub worker: usize,
    /// How many connections matched (all of them, even beyond `entries`).
    pub total: usize,
    /// The first matches, in table order (the IPv4 table's, then the IPv6 table's), at
    /// most the request's `max`.
    pub entries: Vec<ConnEntry>,
}

/// A request from the control plane to one worker.
#[derive(Debug)]
pub enum WorkerRequest {
    /// List the connections matching `filter`: count all of them, return at most `max`
    /// (capped at [`MAX_LISTING`]).
    ListConns {
        /// Which connections.
        filter: ConnFilter,
        /// Most entries wanted.
        max: usize,
        /// Where the answer goes.
        reply: oneshot::Sender<ConnListing>,
    },
}

/// The control plane's end of one worker's request queue.
#[derive(Debug, Clone)]
pub struct ControlHandle {
    queue: Arc<ArrayQueue<WorkerRequest>>,
}

/// The worker's end of its request queue.
#[derive(Debug)]
pub struct ControlLink {
    queue: Arc<ArrayQueue<WorkerRequest>>,
}

/// The queue is full: the worker has not caught up with earlier requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the worker's request queue is full")]
pub struct QueueFull;

/// A request queue of `capacity` requests: the control plane's and the worker's ends.
pub fn control_link(capacity: usize) -> (ControlHandle, ControlLink) {
    let queue = Arc::new(ArrayQueue::new(capacity.max(1)));
    (ControlHandle { queue: Arc::clone(&queue) }, ControlLink { queue })
}

impl ControlHandle {
    /// Sends `request` (never blocks).
    pub fn request(&self, request: WorkerRequest) -> Result<(), QueueFull> {
        self.queue.push(request).map_err(|_| QueueFull)
    }

    /// Asks for a connection listing; the answer arrives on the returned receiver (await
    /// it with a timeout, or `blocking_recv` outside a runtime).
    pub fn list_conns(&self, filter: ConnFilter, max: usize) -> Result<oneshot::Receiver<ConnListing>, QueueFull> {
        let (tx, rx) = oneshot::channel();
        self.request(WorkerRequest::ListConns { filter, max, reply: tx })?;
        Ok(rx)
    }
}

impl ControlLink {
    /// The next pending request, if any.
    pub fn pop(&self) -> Option<WorkerRequest> {
        self.queue.pop()
    }
}

impl ConnFilter {
    /// Whether a connection with these fields matches.
    pub fn matches(&self, proto: L4Proto, vip: (IpAddr, u16), server: (IpAddr, u16)) -> bool {
        self.service.is_none_or(|k| k.proto == proto && k.vip == vip.0 && k.port == vip.1)
            && self.server.is_none_or(|s| s == server)
    }
}
