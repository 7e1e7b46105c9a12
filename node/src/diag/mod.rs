//! Active diagnostics, as operators know them from `tailscale ping` and `tailscale netcheck`:
//! [`ping`] measures round trips to a peer over the connection the node would use, and says
//! whether it is direct; [`netcheck`] tells from what the configured bootnodes see of us
//! whether our NAT maps per destination, and which transports get out. The event loop answers
//! both through the status API ([`crate::status::Handle::ping`], [`crate::status::Handle::netcheck`]).

pub mod netcheck;
pub mod ping;
