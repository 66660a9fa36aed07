//! SHA-crypt (`$5$`, `$6$`) and MD5-crypt (`$1$`) password hashes for the
//! `password_hash` filter, as glibc's `crypt(3)` computes them. With the
//! same salt the result is byte-identical to what Ansible writes into
//! `/etc/shadow`, so `user: password=...` stays unchanged between runs.

use md5::Md5;
use sha2::{Digest, Sha256, Sha512};

const ITOA64: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Characters allowed in a crypt salt.
pub fn valid_salt(salt: &str) -> bool {
    salt.bytes().all(|b| ITOA64.contains(&b))
}

fn b64_from_24bit(out: &mut String, b2: u8, b1: u8, b0: u8, n: usize) {
    let mut w = ((b2 as u32) << 16) | ((b1 as u32) << 8) | b0 as u32;
    for _ in 0..n {
        out.push(ITOA64[(w & 0x3f) as usize] as char);
        w >>= 6;
    }
}

/// Bytes of `digest` repeated to `len` bytes.
fn repeat_to(digest: &[u8], len: usize) -> Vec<u8> {
    digest.iter().copied().cycle().take(len).collect()
}

fn sha_crypt<D: Digest>(password: &[u8], salt: &[u8], rounds: u32) -> Vec<u8> {
    let digest_b = {
        let mut d = D::new();
        d.update(password);
        d.update(salt);
        d.update(password);
        d.finalize().to_vec()
    };
    let mut a = D::new();
    a.update(password);
    a.update(salt);
    a.update(repeat_to(&digest_b, password.len()));
    let mut n = password.len();
    while n > 0 {
        if n & 1 != 0 {
            a.update(&digest_b);
        } else {
            a.update(password);
        }
        n >>= 1;
    }
    let digest_a = a.finalize().to_vec();

    let mut dp = D::new();
    for _ in 0..password.len() {
        dp.update(password);
    }
    let p = repeat_to(&dp.finalize(), password.len());

    let mut ds = D::new();
    for _ in 0..16 + digest_a[0] as usize {
        ds.update(salt);
    }
    let s = repeat_to(&ds.finalize(), salt.len());

    let mut c = digest_a;
    for i in 0..rounds {
        let mut d = D::new();
        if i % 2 == 1 {
            d.update(&p);
        } else {
            d.update(&c);
        }
        if i % 3 != 0 {
            d.update(&s);
        }
        if i % 7 != 0 {
            d.update(&p);
        }
        if i % 2 == 1 {
            d.update(&c);
        } else {
            d.update(&p);
        }
        c = d.finalize().to_vec();
    }
    c
}

/// `$6$` (SHA-512) crypt. `rounds` of 5000 is implicit and not written.
pub fn sha512_crypt(password: &str, salt: &str, rounds: u32) -> String {
    let salt: String = salt.chars().take(16).collect();
    let c = sha_crypt::<Sha512>(password.as_bytes(), salt.as_bytes(), rounds);
    let mut out = header("6", &salt, rounds);
    const ORDER: [(usize, usize, usize); 21] = [
        (0, 21, 42),
        (22, 43, 1),
        (44, 2, 23),
        (3, 24, 45),
        (25, 46, 4),
        (47, 5, 26),
        (6, 27, 48),
        (28, 49, 7),
        (50, 8, 29),
        (9, 30, 51),
        (31, 52, 10),
        (53, 11, 32),
        (12, 33, 54),
        (34, 55, 13),
        (56, 14, 35),
        (15, 36, 57),
        (37, 58, 16),
        (59, 17, 38),
        (18, 39, 60),
        (40, 61, 19),
        (62, 20, 41),
    ];
    for (x, y, z) in ORDER {
        b64_from_24bit(&mut out, c[x], c[y], c[z], 4);
    }
    b64_from_24bit(&mut out, 0, 0, c[63], 2);
    out
}

/// `$5$` (SHA-256) crypt.
pub fn sha256_crypt(password: &str, salt: &str, rounds: u32) -> String {
    let salt: String = salt.chars().take(16).collect();
    let c = sha_crypt::<Sha256>(password.as_bytes(), salt.as_bytes(), rounds);
    let mut out = header("5", &salt, rounds);
    const ORDER: [(usize, usize, usize); 10] = [
        (0, 10, 20),
        (21, 1, 11),
        (12, 22, 2),
        (3, 13, 23),
        (24, 4, 14),
        (15, 25, 5),
        (6, 16, 26),
        (27, 7, 17),
        (18, 28, 8),
        (9, 19, 29),
    ];
    for (x, y, z) in ORDER {
        b64_from_24bit(&mut out, c[x], c[y], c[z], 4);
    }
    b64_from_24bit(&mut out, 0, c[31], c[30], 3);
    out
}

fn header(id: &str, salt: &str, rounds: u32) -> String {
    if rounds == 5000 {
        format!("${id}${salt}$")
    } else {
        format!("${id}$rounds={rounds}${salt}$")
    }
}

/// `$1$` (MD5) crypt.
pub fn md5_crypt(password: &str, salt: &str) -> String {
    let salt: String = salt.chars().take(8).collect();
    let (pw, sb) = (password.as_bytes(), salt.as_bytes());
    let alt = {
        let mut d = Md5::new();
        d.update(pw);
        d.update(sb);
        d.update(pw);
        d.finalize().to_vec()
    };
    let mut ctx = Md5::new();
    ctx.update(pw);
    ctx.update(b"$1$");
    ctx.update(sb);
    ctx.update(repeat_to(&alt, pw.len()));
    let mut n = pw.len();
    while n > 0 {
        if n & 1 != 0 {
            ctx.update([0u8]);
        } else {
            ctx.update(&pw[..1]);
        }
        n >>= 1;
    }
    let mut c = ctx.finalize().to_vec();
    for i in 0..1000 {
        let mut d = Md5::new();
        if i % 2 == 1 {
            d.update(pw);
        } else {
            d.update(&c);
        }
        if i % 3 != 0 {
            d.update(sb);
        }
        if i % 7 != 0 {
            d.update(pw);
        }
        if i % 2 == 1 {
            d.update(&c);
        } else {
            d.update(pw);
        }
        c = d.finalize().to_vec();
    }
    let mut out = format!("$1${salt}$");
    for (x, y, z) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        b64_from_24bit(&mut out, c[x], c[y], c[z], 4);
    }
    b64_from_24bit(&mut out, 0, 0, c[11], 2);
    out
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn matches_glibc_crypt() {
        // Values from glibc crypt(3) via Python's crypt module.
        assert_eq!(
            sha512_crypt("password", "saltsalt", 5000),
            "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/"
        );
        assert_eq!(
            sha256_crypt("password", "saltsalt", 5000),
            "$5$saltsalt$gOjOtoMpVhru2uyjeJSEc/JaLQWOXMNmlOnj6T4AtC."
        );
        assert_eq!(
            sha512_crypt("password", "saltsaltsaltsalt", 10000),
            "$6$rounds=10000$saltsaltsaltsalt$ven1Z5uj7RDawucOM1A67FJkxPT8ty925GjP2I3C1I1otSzw05mv4Y24JfAguQfbNUK9F68UUwzofnEXKC9xP/"
        );
        assert_eq!(
            sha512_crypt(&"a".repeat(100), "abcdefghijklmnop", 5000),
            "$6$abcdefghijklmnop$ZW3yixa3ExXjp32Kntt.IV2krvDXw.nWdGkqpCo65dluAx.25kaQM.iYywVP3SFVNEaptdOkL99N6Nf98Bmnr/"
        );
        assert_eq!(
            md5_crypt("pw", "saltsalt"),
            "$1$saltsalt$6SNdNaZLKst2LlSm7oPPL1"
        );
    }
}
