//! The rows of `modules/COMPATIBILITY.md`'s table of differences from
//! Ansible, built into the binary so `herd doc MODULE` shows the same
//! text the file has (the file stays the one place it is written).

const TEXT: &str = include_str!("../../COMPATIBILITY.md");

/// The difference row for `module` (a first cell such as `apt / package`
/// names several modules); `None` when the table has no row for it.
pub fn row(module: &str) -> Option<&'static str> {
    TEXT.lines().find_map(|line| {
        let rest = line.strip_prefix('|')?;
        let (names, text) = rest.split_once('|')?;
        names
            .split('/')
            .any(|n| n.trim() == module)
            .then(|| text.trim_end().trim_end_matches('|').trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_found_by_any_name_of_the_first_cell() {
        assert!(row("package").is_some_and(|r| r.contains("apt only")));
        assert_eq!(row("package"), row("apt"));
        assert!(row("raw").is_some());
        assert!(row("nope").is_none());
        assert!(row("module").is_none() || row("module") == Some("difference"));
    }
}
