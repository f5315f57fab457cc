//! The in-process fabric's switch table: which card of this process has a PA.
//!
//! The worker switches every packet that crosses the fabric on its outer destination PA
//! (and finds the sending card of a packet leaving the process by its outer source PA).
//! [`CardsByPa`] answers in one hash probe, whatever the number of cards in the process
//! (up to [`SCAN_MAX`] cards, a scan of their PAs in one or two cache lines, cheaper than
//! hashing, answers instead); it is built once per worker at setup (the cards of a process
//! do not change while it runs).

use std::net::Ipv4Addr;

use hashbrown::HashMap;

/// Card index (in the worker's card list) by PA. With two cards of the same PA (a topology
/// the loader refuses), the first one wins.
#[derive(Debug, Default, Clone)]
pub struct CardsByPa {
    /// Every card's PA in card order, when there are at most [`SCAN_MAX`] (else empty).
    few: Vec<u32>,
    by_pa: HashMap<u32, usize>,
}

/// Most cards whose PAs [`CardsByPa::get`] scans instead of hashing.
pub const SCAN_MAX: usize = 16;

impl CardsByPa {
    /// The table of cards whose PAs are `pas`, in card order.
    pub fn new(pas: impl IntoIterator<Item = Ipv4Addr>) -> CardsByPa {
        let pas: Vec<u32> = pas.into_iter().map(u32::from).collect();
        let mut by_pa = HashMap::new();
        if pas.len() > SCAN_MAX {
            for (i, &pa) in pas.iter().enumerate() {
                by_pa.entry(pa).or_insert(i);
            }
            return CardsByPa { few: Vec::new(), by_pa };
        }
        CardsByPa { few: pas, by_pa }
    }

    /// The index of the card at `pa`, if it runs in this process.
    #[inline]
    pub fn get(&self, pa: Ipv4Addr) -> Option<usize> {
        let pa = u32::from(pa);
        if self.by_pa.is_empty() {
            return self.few.iter().position(|&p| p == pa);
        }
        self.by_pa.get(&pa).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn finds_each_card_and_nothing_else() {
        let pas = [Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 255, 1), Ipv4Addr::new(198, 18, 0, 2)];
        let t = CardsByPa::new(pas);
        assert_eq!(t.get(Ipv4Addr::new(198, 18, 0, 1)), Some(0));
        assert_eq!(t.get(Ipv4Addr::new(198, 18, 255, 1)), Some(1));
        assert_eq!(t.get(Ipv4Addr::new(198, 18, 0, 2)), Some(2));
        assert_eq!(t.get(Ipv4Addr::new(198, 18, 0, 3)), None);
        assert_eq!(CardsByPa::new([]).get(Ipv4Addr::new(198, 18, 0, 1)), None);
    }

    proptest! {
        /// On random card lists (PAs drawn from a small range, so some repeat), the table
        /// answers what the scan it replaces answered: the first card with that PA.
        #[test]
        fn answers_as_the_scan(
            pas in proptest::collection::vec(0u32..96, 0..80),
            probes in proptest::collection::vec(0u32..100, 50),
        ) {
            let pas: Vec<Ipv4Addr> = pas.into_iter().map(|p| Ipv4Addr::from(0xc612_0000 + p)).collect();
            let t = CardsByPa::new(pas.iter().copied());
            for p in probes {
                let pa = Ipv4Addr::from(0xc612_0000 + p);
                prop_assert_eq!(t.get(pa), pas.iter().position(|c| *c == pa));
            }
        }
    }
}
