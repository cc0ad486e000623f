//! Direct routing (LVS `-g`, "gatewaying").
//!
//! # Contract
//!
//! Nothing changes at L3 or L4: the packet keeps the client as source and the VIP and
//! virtual port as destination, and the real server — which holds the VIP on a loopback
//! or dummy interface and does not answer ARP for it — accepts it as its own and replies
//! straight to the client (through `lab-router` in the lab), never through rvs. Only the
//! Ethernet destination (the real server's MAC) and source (ours) change, and the
//! neighbour layer writes those, like LVS's `ip_vs_dr_xmit`, which only re-routes the skb.
//!
//! Consequences the control plane enforces, not this module:
//! * no port mapping: the real server must listen on the virtual port (ipvsadm ignores the
//!   port given with `-g`);
//! * the real server must be on a directly attached network (one L2 hop);
//! * no checksum work, so DR is the cheapest mode.
//!
//! So there is no function here: what DR needs of a frame (Ethernet II carrying a
//! well-formed IPv4 header) is what the worker's checks and the packet's
//! [`L4View`](crate::view::L4View) already guarantee, and the L4 engine hands a DR
//! packet straight to the neighbour layer.
