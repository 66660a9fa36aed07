//! Ansible's `k=v` argument syntax (`-e 'a=1 b="two words"'`, free-form
//! module arguments): words split on spaces outside quotes, `\` escapes,
//! quotes removed. Values stay strings, as in Ansible.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    #[error("unclosed quote")]
    UnclosedQuote,
    #[error("`{0}` is not of the form name=value")]
    NotKeyValue(String),
}

/// Split into words like a shell would (quotes group, `\` escapes).
pub fn split_words(s: &str) -> Result<Vec<String>, KvError> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(KvError::UnclosedQuote);
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// `a=1 b="x y"` into a map of strings. Every word must be `name=value`.
pub fn parse_kv(s: &str) -> Result<Map<String, Value>, KvError> {
    let mut out = Map::new();
    for word in split_words(s)? {
        match word.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.insert(k.to_string(), Value::from(v));
            }
            _ => return Err(KvError::NotKeyValue(word)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_quotes_and_escapes() {
        assert_eq!(
            split_words(r#"a=1 b="two words" c='x y' d=\"q"#).unwrap(),
            vec!["a=1", "b=two words", "c=x y", "d=\"q"]
        );
        assert_eq!(split_words("'unclosed"), Err(KvError::UnclosedQuote));
    }

    #[test]
    fn parses_pairs() {
        let m = parse_kv("es_version=8.11.1 name='my cluster'").unwrap();
        assert_eq!(m["es_version"], "8.11.1");
        assert_eq!(m["name"], "my cluster");
        assert_eq!(
            parse_kv("novalue"),
            Err(KvError::NotKeyValue("novalue".into()))
        );
    }
}
