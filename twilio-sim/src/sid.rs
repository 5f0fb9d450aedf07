//! Twilio-style SIDs (`PP` + 32 hex), random or derived deterministically from a natural key.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Generates SIDs and other random identifiers.
#[derive(Debug)]
pub(crate) struct SidGen {
    rng: StdRng,
}

impl SidGen {
    /// A generator seeded from `seed`, or from OS entropy when `None`.
    pub fn new(seed: Option<u64>) -> SidGen {
        let rng = match seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_os_rng(),
        };
        SidGen { rng }
    }

    /// A random SID with the given two-letter prefix.
    pub fn random(&mut self, prefix: &str) -> String {
        format!("{prefix}{}", self.hex32())
    }

    /// 32 random lower-case hex digits.
    pub fn hex32(&mut self) -> String {
        let v: u128 = self.rng.random();
        format!("{v:032x}")
    }

    /// A random alphanumeric string of `len` characters (for secrets and tokens).
    pub fn token(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..len).map(|_| ALPHABET[self.rng.random_range(0..ALPHABET.len())] as char).collect()
    }
}

/// A SID derived from `parts` with FNV-1a (128 bit): the same inputs always give the same SID.
pub(crate) fn derived(prefix: &str, parts: &[&str]) -> String {
    format!("{prefix}{}", derived_hex(parts))
}

/// 32 hex digits derived from `parts` with FNV-1a (128 bit).
pub(crate) fn derived_hex(parts: &[&str]) -> String {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let mut hash = OFFSET;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hash ^= 0x1f;
            hash = hash.wrapping_mul(PRIME);
        }
        for b in part.bytes() {
            hash ^= u128::from(b);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    format!("{hash:032x}")
}

/// Whether `s` is `prefix` followed by exactly 32 hex digits.
pub(crate) fn is_sid(s: &str, prefix: &str) -> bool {
    s.len() == 34 && s.starts_with(prefix) && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_is_stable_and_well_formed() {
        let a = derived("PN", &["AC1", "+15551230001"]);
        assert_eq!(a, derived("PN", &["AC1", "+15551230001"]));
        assert_ne!(a, derived("PN", &["AC1", "+15551230002"]));
        assert!(is_sid(&a, "PN"));
    }

    #[test]
    fn random_is_well_formed_and_seedable() {
        let mut g1 = SidGen::new(Some(7));
        let mut g2 = SidGen::new(Some(7));
        let s = g1.random("SM");
        assert!(is_sid(&s, "SM"));
        assert_eq!(s, g2.random("SM"));
    }
}
