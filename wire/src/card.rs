//! Which card: a host's Nitro card or a Blackfoot edge, by its index among the topology's
//! hosts or edges. One type for the whole workspace: the mapping client serves a card,
//! the runtime runs it, an alert names it. It lives here, the lowest crate, so that
//! `pipeline` (alerts) and `mapping-client` (topology, tables) share it.

/// Index of a host among the topology's hosts (32 bits: every card of any world has its
/// own).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct HostId(pub u32);

/// Index of an edge among the topology's edges.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct EdgeId(pub u32);

/// One Nitro card (a host) or one Blackfoot edge.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum CardId {
    /// A host's Nitro card.
    Host(HostId),
    /// A Blackfoot edge.
    Edge(EdgeId),
}

impl CardId {
    /// The kind (`host` or `edge`) and the index: how an alert names a card the runtime
    /// has no name for (`host-3`).
    pub const fn kind_and_index(self) -> (&'static str, u32) {
        match self {
            CardId::Host(h) => ("host", h.0),
            CardId::Edge(e) => ("edge", e.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cards whose indexes differ by 65536 or lie above 65535 keep ids of their own.
    #[test]
    fn ids_are_not_cut() {
        let host = |i| CardId::Host(HostId(i));
        assert_ne!(host(1), host(65_537));
        assert_ne!(CardId::Edge(EdgeId(70_000)), CardId::Edge(EdgeId(70_001)));
        assert_eq!(host(65_537).kind_and_index(), ("host", 65_537));
        assert_eq!(CardId::Edge(EdgeId(u32::MAX)).kind_and_index(), ("edge", u32::MAX));
        assert!(host(0) < CardId::Edge(EdgeId(0)), "hosts order before edges");
    }
}
