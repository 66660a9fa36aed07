//! Input generation for the fuzzer: a small seeded PRNG and the mutator
//! that turns seeds into inputs (byte flips, insertions and deletions,
//! splices of two seeds, format tokens from a dictionary, deep nesting, huge
//! numbers, CRLF, NUL, multi-byte and invalid UTF-8).
//!
//! Everything is a pure function of `(seed, target, index)`, so any input
//! can be made again from those three numbers: a crash found by a child
//! process is saved by its parent without the child telling it the bytes.

/// SplitMix64: tiny, fast, and good enough to drive mutations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// One generator per input, independent of every other input's.
    pub fn for_input(seed: u64, target: usize, index: u64) -> Rng {
        let mut r = Rng(seed ^ 0x9E37_79B9_7F4A_7C15);
        r.0 ^= r.next_u64().wrapping_add(target as u64).rotate_left(29);
        r.0 ^= r.next_u64().wrapping_add(index).rotate_left(47);
        r.next_u64();
        r
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            Some(&items[self.below(items.len())])
        }
    }
}

/// Inputs never grow past this (unless a smaller cap is given to
/// [`generate`]); loaders see at most this many bytes.
pub const MAX_INPUT: usize = 64 * 1024;

/// What a format's mutations draw on.
pub struct Grammar {
    /// Tokens worth inserting: keywords, indicators, delimiters.
    pub dict: &'static [&'static str],
    /// Openers that nest (`[`, `{a: `, `{% if x %}`); repeated to test depth.
    pub nest: &'static [&'static str],
}

/// Bytes every format should survive.
const SPECIALS: &[&[u8]] = &[
    b"\r\n",
    b"\r",
    b"\0",
    b"\t",
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\xf0\x9f\xa6",
    "é".as_bytes(),
    "日本".as_bytes(),
    "🦀".as_bytes(),
    "\u{feff}".as_bytes(),
    "\u{2028}".as_bytes(),
    "e\u{301}".as_bytes(),
    "\u{202e}".as_bytes(),
];

const NUMBERS: &[&str] = &[
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "99999999999999999999999999999999999999",
    "4294967296",
    "65536",
    "1e308",
    "1e999",
    "-0",
    "0x7fffffffffffffff",
    "0o777777777777777777777777",
    "0755",
    "1_000",
    ".inf",
    "nan",
    "10**12",
    "999999999",
];

const INTERESTING_BYTES: &[u8] = b"\0\xff\n\r\t \"'{}[]():-#=%\\|&*!?,.<>@~`$";

/// One input from the seeds for a target.
pub fn generate(rng: &mut Rng, seeds: &[Vec<u8>], grammar: &Grammar, cap: usize) -> Vec<u8> {
    let cap = cap.min(MAX_INPUT);
    let strategy = rng.below(100);
    let mut data: Vec<u8> = match seeds.len() {
        _ if seeds.is_empty() || strategy >= 88 => synthesize(rng, grammar),
        _ if strategy < 6 => {
            let mut s = seeds[rng.below(seeds.len())].clone();
            s.truncate(cap);
            return s;
        }
        _ if strategy < 74 => seeds[rng.below(seeds.len())].clone(),
        _ => {
            let (a, b) = (rng.below(seeds.len()), rng.below(seeds.len()));
            splice(rng, &seeds[a], &seeds[b])
        }
    };
    // Mostly a few mutations; sometimes many.
    let rounds = if rng.chance(10) {
        1 + rng.below(32)
    } else {
        1 + rng.below(4)
    };
    for _ in 0..rounds {
        mutate(rng, &mut data, grammar);
        // Growth compounds over rounds; cut back every time.
        data.truncate(cap);
    }
    data
}

/// The head of one seed and the tail of another, cut at line starts
/// when possible (so structure survives).
fn splice(rng: &mut Rng, a: &[u8], b: &[u8]) -> Vec<u8> {
    let cut_a = line_start(a, rng.below(a.len() + 1));
    let cut_b = line_start(b, rng.below(b.len() + 1));
    let mut out = a[..cut_a].to_vec();
    out.extend_from_slice(&b[cut_b..]);
    out
}

fn line_start(data: &[u8], pos: usize) -> usize {
    data[..pos]
        .iter()
        .rposition(|&c| c == b'\n')
        .map_or(0, |i| i + 1)
}

/// Tokens of the format strung together with newlines, spaces and indents.
fn synthesize(rng: &mut Rng, grammar: &Grammar) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..1 + rng.below(40) {
        if let Some(t) = rng.pick(grammar.dict) {
            out.extend_from_slice(t.as_bytes());
        }
        match rng.below(6) {
            0 => out.push(b'\n'),
            1 => {
                out.push(b'\n');
                out.extend(std::iter::repeat_n(b' ', 2 * rng.below(5)));
            }
            2 => out.push(b' '),
            _ => {}
        }
    }
    out
}

/// One random change, in place.
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>, grammar: &Grammar) {
    let len = data.len();
    let pos = rng.below(len + 1);
    match rng.below(15) {
        0 if len > 0 => {
            let i = rng.below(len);
            data[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            data[i] = INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())];
        }
        2 => {
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            data.splice(pos..pos, bytes);
        }
        3 if len > 0 => {
            let n = 1 + rng.below(len.min(64));
            let at = rng.below(len - n + 1);
            data.drain(at..at + n);
        }
        4 if len > 0 => {
            let n = 1 + rng.below(len.min(256));
            let at = rng.below(len - n + 1);
            let chunk = data[at..at + n].to_vec();
            data.splice(pos..pos, chunk);
        }
        5 | 6 => {
            if let Some(t) = rng.pick(grammar.dict) {
                let at = if rng.chance(50) {
                    line_start(data, pos)
                } else {
                    pos
                };
                data.splice(at..at, t.bytes());
            }
        }
        7 if len > 0 => {
            if let Some(t) = rng.pick(grammar.dict) {
                let n = rng.below((len - pos).min(16) + 1);
                data.splice(pos..pos + n, t.bytes());
            }
        }
        8 => {
            let s = SPECIALS[rng.below(SPECIALS.len())];
            data.splice(pos..pos, s.iter().copied());
        }
        9 if rng.chance(30) => {
            // Every line ending as CRLF.
            let mut out = Vec::with_capacity(len + len / 8);
            for &c in data.iter() {
                if c == b'\n' {
                    out.push(b'\r');
                }
                out.push(c);
            }
            *data = out;
        }
        10 => {
            if let Some(opener) = rng.pick(grammar.nest) {
                let depth = [8, 64, 200, 1000, 5000][rng.below(5)];
                let at = if rng.chance(50) {
                    line_start(data, pos)
                } else {
                    pos
                };
                let nested = opener.repeat(depth);
                data.splice(at..at, nested.bytes());
            }
        }
        11 => {
            let n = NUMBERS[rng.below(NUMBERS.len())];
            data.splice(pos..pos, n.bytes());
        }
        12 if len > 0 => {
            // Repeat one line.
            let start = line_start(data, rng.below(len));
            let end = data[start..]
                .iter()
                .position(|&c| c == b'\n')
                .map_or(len, |i| start + i + 1);
            let line = data[start..end].to_vec();
            let times = (1 + rng.below(64)).min(MAX_INPUT / line.len().max(1));
            let copies: Vec<u8> = line.repeat(times);
            data.splice(end..end, copies);
        }
        13 => data.truncate(pos),
        _ if len > 0 => {
            // Indent or dedent a line.
            let start = line_start(data, rng.below(len));
            if rng.chance(50) {
                let n = 1 + rng.below(4);
                data.splice(start..start, std::iter::repeat_n(b' ', n));
            } else {
                let n = data[start..]
                    .iter()
                    .take(4)
                    .take_while(|&&c| c == b' ')
                    .count();
                data.drain(start..start + n);
            }
        }
        _ => data.extend_from_slice(b"\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: Grammar = Grammar {
        dict: &["a", "[b]"],
        nest: &["["],
    };

    #[test]
    fn the_same_seed_and_index_give_the_same_input() {
        let seeds = vec![b"hello: world\n- a\n".to_vec(), b"[x]\ny=1\n".to_vec()];
        for i in 0..200 {
            let a = generate(&mut Rng::for_input(7, 2, i), &seeds, &G, MAX_INPUT);
            let b = generate(&mut Rng::for_input(7, 2, i), &seeds, &G, MAX_INPUT);
            assert_eq!(a, b);
        }
        let a = generate(&mut Rng::for_input(7, 2, 1), &seeds, &G, MAX_INPUT);
        let differs =
            (2..20).any(|i| generate(&mut Rng::for_input(7, 2, i), &seeds, &G, MAX_INPUT) != a);
        assert!(differs);
    }

    #[test]
    fn inputs_stay_under_the_size_cap() {
        let seeds = vec![vec![b'x'; MAX_INPUT]];
        for i in 0..50 {
            assert!(
                generate(&mut Rng::for_input(1, 0, i), &seeds, &G, MAX_INPUT).len() <= MAX_INPUT
            );
        }
    }
}
