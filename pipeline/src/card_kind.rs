//! Which kind of card a stage ran on: a host's Nitro card or a Blackfoot edge.
//!
//! Both kinds run stages of the same name (`verify-recv`, `decap`, `encap`, `classify`),
//! with different work behind them. Counters and histograms keep the two kinds apart:
//! the runtime sets [`Meters::kind`](crate::Meters::kind) before it runs a card's stages,
//! and [`run_timed`](crate::run_timed) records into that kind's slot.

use core::fmt;

use crate::alert::CardId;

/// A host's Nitro card or a Blackfoot edge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CardKind {
    /// A host's Nitro card (`host`).
    #[default]
    Host = 0,
    /// A Blackfoot edge (`edge`).
    Edge = 1,
}

impl CardKind {
    /// Number of kinds.
    pub const COUNT: usize = 2;
    /// Every kind, hosts first (`ALL[k as usize] == k`).
    pub const ALL: [CardKind; CardKind::COUNT] = [CardKind::Host, CardKind::Edge];

    /// The stable name: `host` or `edge`.
    pub const fn name(self) -> &'static str {
        match self {
            CardKind::Host => "host",
            CardKind::Edge => "edge",
        }
    }

    /// Index into per-kind arrays.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The kind of `card`.
    #[inline]
    pub const fn of(card: CardId) -> CardKind {
        match card {
            CardId::Host(_) => CardKind::Host,
            CardId::Edge(_) => CardKind::Edge,
        }
    }
}

impl fmt::Display for CardKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::card::{EdgeId, HostId};

    #[test]
    fn kinds_of_cards() {
        assert_eq!(CardKind::of(CardId::Host(HostId(7))), CardKind::Host);
        assert_eq!(CardKind::of(CardId::Edge(EdgeId(0))), CardKind::Edge);
        for (i, k) in CardKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
        assert_eq!(CardKind::Edge.to_string(), "edge");
        assert_eq!(CardKind::default(), CardKind::Host);
    }
}
