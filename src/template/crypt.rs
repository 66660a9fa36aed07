//! SHA-crypt (`$5$`, `$6$`) and MD5-crypt (`$1$`) password hashes for the
//! `password_hash` filter, as glibc's `crypt(3)` computes them. With the
//! same salt the result is byte-identical to what Ansible writes into
//! `/etc/shadow`, so `user: password=...` stays unchanged between runs.
//!
//! The SHA-crypt rounds and their encoding come from the `sha-crypt`
//! crate; what stays here is the `crypt(3)` string around them: the salt
//! cut to 16 characters, and `rounds=N` written only when N is not the
//! default 5000 (the crate's own string form always writes the rounds and
//! takes a binary salt, so it cannot give glibc's `$6$salt$...`).
//! MD5-crypt stays hand-written: `sha-crypt` has no `$1$`, and it is a
//! few lines over the `md-5` digest.

use md5::{Digest, Md5};
use sha_crypt::{Sha256Params, Sha512Params, ROUNDS_MAX, ROUNDS_MIN};

const ITOA64: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Characters allowed in a crypt salt.
pub(super) fn valid_salt(salt: &str) -> bool {
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

/// The filter refuses rounds outside 1000..=999999999 before it gets here
/// (crypt(3) fails on them); clamping only keeps sha-crypt's parameters
/// valid for any caller.
fn clamp_rounds(rounds: u32) -> usize {
    (rounds as usize).clamp(ROUNDS_MIN, ROUNDS_MAX)
}

/// `$6$` (SHA-512) crypt. `rounds` of 5000 is implicit and not written.
pub(super) fn sha512_crypt(password: &str, salt: &str, rounds: u32) -> String {
    let salt: String = salt.chars().take(16).collect();
    let rounds = clamp_rounds(rounds);
    // Neither step fails: the rounds are in range, the encoding is ASCII.
    let hash = Sha512Params::new(rounds)
        .and_then(|p| sha_crypt::sha512_crypt_b64(password.as_bytes(), salt.as_bytes(), &p))
        .expect("rounds clamped into sha-crypt's range");
    format!("{}{hash}", header("6", &salt, rounds))
}

/// `$5$` (SHA-256) crypt.
pub(super) fn sha256_crypt(password: &str, salt: &str, rounds: u32) -> String {
    let salt: String = salt.chars().take(16).collect();
    let rounds = clamp_rounds(rounds);
    let hash = Sha256Params::new(rounds)
        .and_then(|p| sha_crypt::sha256_crypt_b64(password.as_bytes(), salt.as_bytes(), &p))
        .expect("rounds clamped into sha-crypt's range");
    format!("{}{hash}", header("5", &salt, rounds))
}

fn header(id: &str, salt: &str, rounds: usize) -> String {
    if rounds == 5000 {
        format!("${id}${salt}$")
    } else {
        format!("${id}$rounds={rounds}${salt}$")
    }
}

/// `$1$` (MD5) crypt.
pub(super) fn md5_crypt(password: &str, salt: &str) -> String {
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
        // A salt over 16 characters is cut, as crypt(3) cuts it.
        assert_eq!(
            sha512_crypt("pw", "abcdefghijklmnopqrst", 5000),
            "$6$abcdefghijklmnop$GRSTFj3H0pZ9BY1uhdqITG.qORbXkTk40qgaa1roNICfs/axSgdNnbKEYghuyLnrmnFXvSE09GdxJbCDOnxdc1"
        );
        assert_eq!(
            md5_crypt("pw", "saltsalt"),
            "$1$saltsalt$6SNdNaZLKst2LlSm7oPPL1"
        );
    }
}
