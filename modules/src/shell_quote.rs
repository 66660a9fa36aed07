//! POSIX shell quoting: every command a module builds goes through here, so no
//! user value is ever pasted into a script unquoted.

/// Quote one word for `/bin/sh`. Safe words are returned as they are, so the
/// scripts shown with `-v` stay readable.
pub fn quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./-_".contains(&b));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Quote a path for `/bin/sh`, expanding a leading `~` to the remote
/// user's `$HOME` as Ansible does for path parameters (`~user` forms are
/// left alone).
pub fn quote_path(path: &str) -> String {
    if path == "~" {
        "\"$HOME\"".to_string()
    } else if let Some(rest) = path.strip_prefix("~/") {
        format!("\"$HOME\"/{}", quote(rest))
    } else {
        quote(path)
    }
}

/// Quote every word of an argv and join them with spaces.
pub fn join<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a command line could not be split into words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no closing quotation in command line")]
pub struct SplitError;

/// Split a command line into words the way Python's `shlex.split` does
/// (POSIX mode, no comments), which is how Ansible's `command` reads its
/// free form: quotes group, backslash escapes, and nothing else is special.
pub fn split(line: &str) -> Result<Vec<String>, SplitError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\\' => {
                in_word = true;
                // A trailing backslash has nothing to escape: shlex errors.
                word.push(chars.next().ok_or(SplitError)?);
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(SplitError),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        // Inside double quotes only `\"` and `\\` are escapes.
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\')) => word.push(e),
                            Some(e) => {
                                word.push('\\');
                                word.push(e);
                            }
                            None => return Err(SplitError),
                        },
                        Some(c) => word.push(c),
                        None => return Err(SplitError),
                    }
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(quote("/etc/hosts"), "/etc/hosts");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(join(&["echo", "a b"]), "echo 'a b'");
        assert_eq!(quote_path("~/a b"), "\"$HOME\"/'a b'");
        assert_eq!(quote_path("~"), "\"$HOME\"");
        assert_eq!(quote_path("~bob/x"), "'~bob/x'");
    }

    #[test]
    fn splits_like_python_shlex() {
        let w = |s: &str| split(s).unwrap_or_default();
        assert_eq!(w("ls -l  /tmp"), ["ls", "-l", "/tmp"]);
        assert_eq!(w(r#"echo "a b" 'c d' e\ f"#), ["echo", "a b", "c d", "e f"]);
        assert_eq!(
            w(r#"echo "x\"y" "p\q" a''b"#),
            ["echo", "x\"y", "p\\q", "ab"]
        );
        assert_eq!(w(r#"echo "" $HOME | wc"#), ["echo", "", "$HOME", "|", "wc"]);
        assert_eq!(split("echo 'open"), Err(SplitError));
        assert_eq!(w("   "), Vec::<String>::new());
    }
}
