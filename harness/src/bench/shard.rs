//! `--shard K/N`: one process runs the K-th of N slices of the
//! connections, so a bench can be spread over processes or machines and
//! the shard reports merged exactly afterwards (`pushspec bench merge`).

use serde::{Deserialize, Serialize};

/// The K-th (1-based) of N shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub k: u32,
    pub n: u32,
}

impl Shard {
    /// Parses `K/N` with 1 <= K <= N.
    pub fn parse(s: &str) -> Result<Shard, String> {
        let bad = || format!("{s:?}: write K/N with 1 <= K <= N, e.g. 1/2");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let k: u32 = k.trim().parse().map_err(|_| bad())?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        if k == 0 || n == 0 || k > n {
            return Err(bad());
        }
        Ok(Shard { k, n })
    }

    /// This shard's share of `total`: the first `total % n` shards take
    /// one more, so the shares add up to `total` exactly.
    pub fn share(self, total: usize) -> usize {
        let n = self.n as usize;
        total / n + usize::from((self.k as usize) <= total % n)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_k_of_n() {
        assert_eq!(Shard::parse("2/3"), Ok(Shard { k: 2, n: 3 }));
        for bad in ["0/2", "3/2", "1", "a/b", "1/0", ""] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shares_add_up_to_the_total() {
        for total in [0, 1, 5, 8, 1001] {
            for n in 1..=7 {
                let sum: usize = (1..=n).map(|k| Shard { k, n }.share(total)).sum();
                assert_eq!(sum, total, "{total} over {n}");
            }
        }
        assert_eq!(Shard { k: 1, n: 3 }.share(5), 2);
        assert_eq!(Shard { k: 3, n: 3 }.share(5), 1);
    }
}
