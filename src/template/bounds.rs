//! Bounds on what a template may build or read, so a hostile or mistaken
//! value (`lookup('sequence', 'end=9223372036854775807')`, `'x'.ljust(10**12)`,
//! `lookup('file', '/dev/zero')`) fails its task with a clear error instead
//! of exhausting the controller's memory or never finishing.
//!
//! The limits are far above real use and match minijinja's own where it has
//! one (`range` stops at 100,000 items, `'x' * n` at 100,000,000 bytes).

use std::io::Read;
use std::path::Path;

use minijinja::{Error, ErrorKind};

/// Items a lookup or filter may produce in one list (`sequence`, `product`,
/// `permutations`, `combinations`).
pub(super) const MAX_ITEMS: usize = 1_000_000;

/// Length of a string built by padding (`center`, `indent`, `ljust`,
/// `rjust`, `zfill`, printf widths): minijinja's limit for `'x' * n`.
pub(super) const MAX_TEXT_LEN: usize = 100_000_000;

/// The widest padding, indent, slice count or format width a template
/// may ask for. Python builds whatever is asked; `center(999999999)` built
/// a gigabyte and took seconds, so wider is an error. No real template
/// pads past a few hundred columns.
pub(super) const MAX_WIDTH: usize = 65_536;

/// Bytes a lookup may read from a controller file or command
/// (`file`, `template`, `pipe`, `lines`): 64 MiB.
pub(super) const MAX_READ_BYTES: u64 = 64 * 1024 * 1024;

fn too_big(msg: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg)
}

/// `what` would make `n` items: an error past [`MAX_ITEMS`].
pub(super) fn check_items(what: &str, n: u128) -> Result<(), Error> {
    if n > MAX_ITEMS as u128 {
        return Err(too_big(format!(
            "{what}: the result would have {n} items, more than the limit of {MAX_ITEMS}"
        )));
    }
    Ok(())
}

/// `what` would make a string of `len` characters: an error past
/// [`MAX_TEXT_LEN`].
pub(super) fn check_text_len(what: &str, len: usize) -> Result<(), Error> {
    if len > MAX_TEXT_LEN {
        return Err(too_big(format!(
            "{what}: the result would be {len} characters long, more than the limit of {MAX_TEXT_LEN}"
        )));
    }
    Ok(())
}

/// `what` asks for a width of `width`: an error past [`MAX_WIDTH`].
pub(super) fn check_width(what: &str, width: usize) -> Result<usize, Error> {
    if width > MAX_WIDTH {
        return Err(too_big(format!(
            "{what}: a width may be at most {MAX_WIDTH} (the limit on padding and format widths)"
        )));
    }
    Ok(width)
}

/// Read all of `r`, or fail once it passes [`MAX_READ_BYTES`] (never
/// holding more than one byte past the limit).
pub(super) fn read_bounded(what: &str, r: impl Read) -> Result<Vec<u8>, Error> {
    let mut buf = Vec::new();
    r.take(MAX_READ_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| too_big(format!("{what}: read failed: {e}")))?;
    if buf.len() as u64 > MAX_READ_BYTES {
        return Err(too_big(format!(
            "{what}: more than the limit of {MAX_READ_BYTES} bytes"
        )));
    }
    Ok(buf)
}

/// A controller file as text, bounded like [`read_bounded`].
pub(super) fn read_file_text(what: &str, path: &Path) -> Result<String, Error> {
    let f = std::fs::File::open(path)
        .map_err(|e| too_big(format!("{what}: cannot read {}: {e}", path.display())))?;
    let bytes = read_bounded(&format!("{what}: {}", path.display()), f)?;
    String::from_utf8(bytes).map_err(|_| {
        too_big(format!(
            "{what}: cannot read {}: stream did not contain valid UTF-8",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stop_one_byte_past_the_limit() {
        let ok = read_bounded("t", std::io::repeat(b'x').take(MAX_READ_BYTES));
        assert_eq!(ok.map(|b| b.len() as u64).ok(), Some(MAX_READ_BYTES));
        let err = read_bounded("t", std::io::repeat(b'x')).expect_err("unbounded source");
        assert!(err.to_string().contains("more than the limit"), "{err}");
    }

    #[test]
    fn item_and_text_limits() {
        assert!(check_items("t", MAX_ITEMS as u128).is_ok());
        assert!(check_items("t", u128::MAX).is_err());
        assert!(check_text_len("t", MAX_TEXT_LEN).is_ok());
        assert!(check_text_len("t", usize::MAX).is_err());
    }
}
