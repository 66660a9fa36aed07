//! POSIX shell quoting: every command a module builds goes through here, so no
//! user value is ever pasted into a script unquoted.

/// Why a value cannot be put on a shell command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    /// No quoting can carry a NUL: argv and `sh -c` scripts are C strings.
    #[error("a NUL byte cannot be passed to a command on the host")]
    Nul,
    /// Not `[A-Za-z_][A-Za-z0-9_]*`, so not a name `export` takes.
    #[error("not a valid environment variable name (letters, digits and `_`, not starting with a digit)")]
    EnvName,
}

/// [`quote`], refusing a word no shell can receive (one with a NUL).
pub fn checked_quote(word: &str) -> Result<String, QuoteError> {
    if word.contains('\0') {
        return Err(QuoteError::Nul);
    }
    Ok(quote(word))
}

/// Whether `name` is a POSIX shell variable name (`[A-Za-z_][A-Za-z0-9_]*`),
/// so it can be written after `export` without quoting.
pub fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `export NAME='value'; `: the name is checked (it cannot be quoted: a
/// quoted name is not an assignment), the value quoted.
pub fn export(name: &str, value: &str) -> Result<String, QuoteError> {
    if !is_env_name(name) {
        return Err(QuoteError::EnvName);
    }
    Ok(format!("export {name}={}; ", checked_quote(value)?))
}

/// Quote one word for `/bin/sh`. Safe words are returned as they are, so the
/// scripts shown with `-v` stay readable. A NUL cannot be carried (see
/// [`checked_quote`]); commands go to the host through `TaskHost`, which
/// refuses a script containing one.
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

    /// What a real `/bin/sh` makes of `script`: its stdout, as bytes.
    fn sh(script: &str) -> Vec<u8> {
        std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .env("HOME", "/home/quoted")
            .output()
            .map(|o| o.stdout)
            .unwrap_or_else(|e| panic!("cannot run /bin/sh: {e}"))
    }

    /// Words built from the pieces that break naive quoting, mixed with
    /// arbitrary text.
    fn hostile_word() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            Just("'".to_string()),
            Just("\"".to_string()),
            Just("'\\''".to_string()),
            Just("$(touch /tmp/herd-quote-test)".to_string()),
            Just("`id`".to_string()),
            Just("${HOME}".to_string()),
            Just("$1".to_string()),
            Just("\n".to_string()),
            Just("\r\n".to_string()),
            Just("\t".to_string()),
            Just("*".to_string()),
            Just("?[a]".to_string()),
            Just("-".to_string()),
            Just("--help".to_string()),
            Just("~".to_string()),
            Just("\\".to_string()),
            Just(";|&<>()#!{}".to_string()),
            Just(" ".to_string()),
            Just("%s%n%%".to_string()),
            Just("é☃\u{7f}\u{1b}".to_string()),
            any::<String>(),
        ];
        proptest::collection::vec(piece, 0..8).prop_map(|v| v.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(300))]

        /// The quoted word, really run by `/bin/sh`, reaches the command as
        /// exactly the word; one with a NUL is refused, as no argv can carry it.
        #[test]
        fn sh_sees_exactly_the_quoted_word(word in hostile_word()) {
            match checked_quote(&word) {
                Err(QuoteError::Nul) => proptest::prop_assert!(word.contains('\0')),
                Err(e) => proptest::prop_assert!(false, "unexpected {e}"),
                Ok(q) => {
                    proptest::prop_assert!(!word.contains('\0'));
                    proptest::prop_assert_eq!(&q, &quote(&word));
                    let got = sh(&format!("printf %s {q}"));
                    proptest::prop_assert_eq!(got, word.as_bytes().to_vec());
                    // As one argv word too, not only as printf's argument.
                    let got = sh(&format!("set -- {q}; printf '%s|%s' \"$#\" \"$1\""));
                    proptest::prop_assert_eq!(got, format!("1|{word}").into_bytes());
                }
            }
        }

        /// An exported value arrives intact; a name is taken only when it is
        /// a shell variable name.
        #[test]
        fn export_carries_the_value_and_checks_the_name(
            name in "[A-Za-z_][A-Za-z0-9_]{0,8}|.{0,8}",
            value in hostile_word(),
        ) {
            let valid = is_env_name(&name);
            proptest::prop_assert_eq!(
                valid,
                !name.is_empty()
                    && !name.starts_with(|c: char| c.is_ascii_digit())
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            );
            match export(&name, &value) {
                Err(QuoteError::EnvName) => proptest::prop_assert!(!valid),
                Err(QuoteError::Nul) => proptest::prop_assert!(valid && value.contains('\0')),
                Ok(prefix) => {
                    proptest::prop_assert!(valid);
                    let got = sh(&format!("{prefix}printf %s \"${name}\""));
                    proptest::prop_assert_eq!(got, value.as_bytes().to_vec());
                }
            }
        }

        /// `~/` paths expand to `$HOME` and the rest stays one word.
        #[test]
        fn quote_path_expands_only_the_home_prefix(rest in hostile_word()) {
            proptest::prop_assume!(!rest.contains('\0'));
            let got = sh(&format!("printf %s {}", quote_path(&format!("~/{rest}"))));
            proptest::prop_assert_eq!(got, format!("/home/quoted/{rest}").into_bytes());
        }
    }

    #[test]
    fn nul_and_bad_names_are_typed_errors() {
        assert_eq!(checked_quote("a\0b"), Err(QuoteError::Nul));
        assert_eq!(
            export("A=1; touch /tmp/x; B", "v"),
            Err(QuoteError::EnvName)
        );
        assert_eq!(export("1A", "v"), Err(QuoteError::EnvName));
        assert_eq!(export("", "v"), Err(QuoteError::EnvName));
        assert_eq!(export("A_1", "x\0"), Err(QuoteError::Nul));
        assert_eq!(
            export("_a1", "it's").as_deref(),
            Ok("export _a1='it'\\''s'; ")
        );
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
