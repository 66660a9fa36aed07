//! Python's `random.Random` (MT19937 with Python's seeding), for the
//! `random` filter. `{{ 59 | random(seed=inventory_hostname) }}` is how
//! playbooks spread cron jobs across hosts; the minute must be the one
//! Ansible picked, or the first run under herd would move every job.

use sha2::{Digest, Sha512};

const N: usize = 624;
const M: usize = 397;

pub(crate) struct PyRandom {
    mt: [u32; N],
    index: usize,
}

/// A seed as Python's `Random(seed)` takes it.
pub(crate) enum Seed<'a> {
    Int(i128),
    Str(&'a str),
}

impl PyRandom {
    fn init_genrand(s: u32) -> Self {
        let mut mt = [0u32; N];
        mt[0] = s;
        for i in 1..N {
            mt[i] = 1_812_433_253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        PyRandom { mt, index: N }
    }

    fn init_by_array(key: &[u32]) -> Self {
        let mut r = Self::init_genrand(19_650_218);
        let mt = &mut r.mt;
        let (mut i, mut j) = (1usize, 0usize);
        let key_len = key.len().max(1);
        for _ in 0..N.max(key_len) {
            let k = key.get(j).copied().unwrap_or(0);
            mt[i] = (mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(k)
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
            if j >= key_len {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            mt[i] = (mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(1_566_083_941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
        }
        mt[0] = 0x8000_0000;
        r
    }

    /// `random.Random(seed)` (seeding version 2: strings are extended with
    /// their SHA-512 digest).
    pub(crate) fn new(seed: Seed<'_>) -> Self {
        let bytes: Vec<u8> = match seed {
            Seed::Int(n) => {
                let n = n.unsigned_abs();
                let mut b = n.to_be_bytes().to_vec();
                while b.first() == Some(&0) {
                    b.remove(0);
                }
                b
            }
            Seed::Str(s) => {
                let mut b = s.as_bytes().to_vec();
                b.extend_from_slice(&Sha512::digest(s.as_bytes()));
                b
            }
        };
        // The big-endian number as 32-bit words, least significant first.
        let mut key = Vec::new();
        let mut end = bytes.len();
        while end > 0 {
            let start = end.saturating_sub(4);
            let mut w = 0u32;
            for &byte in &bytes[start..end] {
                w = (w << 8) | byte as u32;
            }
            key.push(w);
            end = start;
        }
        if key.is_empty() {
            key.push(0);
        }
        Self::init_by_array(&key)
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            for i in 0..N {
                let y = (self.mt[i] & 0x8000_0000) | (self.mt[(i + 1) % N] & 0x7fff_ffff);
                let mut v = self.mt[(i + M) % N] ^ (y >> 1);
                if y & 1 != 0 {
                    v ^= 0x9908_b0df;
                }
                self.mt[i] = v;
            }
            self.index = 0;
        }
        let mut y = self.mt[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    /// `getrandbits(k)` for `k` up to 128.
    fn getrandbits(&mut self, k: u32) -> u128 {
        if k <= 32 {
            return (self.next_u32() >> (32 - k)) as u128;
        }
        let mut out = 0u128;
        let mut left = k;
        let mut shift = 0;
        while left > 0 {
            let mut r = self.next_u32();
            if left < 32 {
                r >>= 32 - left;
            }
            out |= (r as u128) << shift;
            shift += 32;
            left = left.saturating_sub(32);
        }
        out
    }

    /// `_randbelow(n)` for `n > 0`.
    pub(crate) fn below(&mut self, n: u128) -> u128 {
        let k = 128 - n.leading_zeros();
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r;
            }
        }
    }

    /// `randrange(start, stop, step)`; `None` for an empty range.
    pub(crate) fn randrange(&mut self, start: i128, stop: i128, step: i128) -> Option<i128> {
        let width = stop - start;
        if step == 1 {
            return (width > 0).then(|| start + self.below(width as u128) as i128);
        }
        let n = if step > 0 {
            (width + step - 1) / step
        } else if step < 0 {
            (width + step + 1) / step
        } else {
            return None;
        };
        (n > 0).then(|| start + step * self.below(n as u128) as i128)
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn matches_cpython() {
        // Values printed by CPython 3.11's random.Random(seed).
        let mut r = PyRandom::new(Seed::Str("host1"));
        assert_eq!(r.randrange(0, 60, 1), Some(31));
        assert_eq!(r.randrange(0, 60, 1), Some(15));
        assert_eq!(PyRandom::new(Seed::Str("host1")).below(4), 3);
        assert_eq!(
            PyRandom::new(Seed::Str("host1")).randrange(10, 100, 7),
            Some(59)
        );
        assert_eq!(
            PyRandom::new(Seed::Str("host1")).randrange(0, 1 << 40, 1),
            Some(547_549_063_562)
        );
        let mut r = PyRandom::new(Seed::Str("web01.example.com"));
        assert_eq!(r.randrange(0, 60, 1), Some(38));
        assert_eq!(r.randrange(0, 60, 1), Some(40));
        let mut r = PyRandom::new(Seed::Int(42));
        assert_eq!(r.randrange(0, 60, 1), Some(40));
        assert_eq!(r.randrange(0, 60, 1), Some(7));
        assert_eq!(PyRandom::new(Seed::Int(42)).randrange(10, 100, 7), Some(80));
        let mut r = PyRandom::new(Seed::Int(0));
        assert_eq!(r.randrange(0, 60, 1), Some(54));
        assert_eq!(r.randrange(0, 60, 1), Some(24));
    }
}
