//! `vars_prompt`: the values a play asks for, read on the terminal before
//! the run starts. A value given with `-e` is not asked, as in Ansible.
//! Without a terminal (cron, CI) a prompt with a `default` takes it, as
//! ansible-playbook does; one without a default is an error naming the
//! variable and where it is asked, never a read of stdin that could hang.

use std::io::{BufRead, IsTerminal, Write};

use serde_json::{Map, Value};

use crate::playbook::model::{Playbook, VarPrompt};

#[derive(Debug, thiserror::Error)]
pub enum VarsPromptError {
    #[error("{location}: `vars_prompt` asks for `{name}`, but there is no terminal to ask on; give it with -e {name}=...")]
    NoTerminal { name: String, location: String },
    #[error("cannot read `{name}` from the terminal: {reason}")]
    Read { name: String, reason: String },
    #[error("the two values given for `{name}` do not match")]
    Mismatch { name: String },
}

/// Ask every play's prompts (first play first) and store the answers as
/// play variables.
pub fn ask_all(
    playbooks: &mut [Playbook],
    extra: &Map<String, Value>,
) -> Result<(), VarsPromptError> {
    let terminal = std::io::stdin().is_terminal();
    for pb in playbooks {
        for play in &mut pb.plays {
            for p in play.vars_prompt.clone() {
                if extra.contains_key(&p.name) {
                    continue;
                }
                let value = answer(&p, terminal)?;
                play.vars.insert(p.name.clone(), value);
            }
        }
    }
    Ok(())
}

fn answer(p: &VarPrompt, terminal: bool) -> Result<Value, VarsPromptError> {
    if !terminal {
        return p
            .default
            .clone()
            .ok_or_else(|| VarsPromptError::NoTerminal {
                name: p.name.clone(),
                location: format!("{}:{}:{}", p.span.path.display(), p.span.line, p.span.col),
            });
    }
    let shown = match &p.default {
        Some(d) => format!("{} [{}]: ", p.prompt, crate::executor::task::value_text(d)),
        None => format!("{}: ", p.prompt),
    };
    let first = read(p, &shown)?;
    if p.confirm {
        let second = read(p, &format!("confirm {shown}"))?;
        if first != second {
            return Err(VarsPromptError::Mismatch {
                name: p.name.clone(),
            });
        }
    }
    Ok(match (&p.default, first.is_empty()) {
        (Some(d), true) => d.clone(),
        _ => Value::from(first),
    })
}

fn read(p: &VarPrompt, shown: &str) -> Result<String, VarsPromptError> {
    let err = |e: std::io::Error| VarsPromptError::Read {
        name: p.name.clone(),
        reason: e.to_string(),
    };
    if p.private {
        return rpassword::prompt_password(shown).map_err(err);
    }
    let mut out = std::io::stderr();
    out.write_all(shown.as_bytes()).map_err(err)?;
    out.flush().map_err(err)?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(err)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(default: Option<Value>) -> VarPrompt {
        VarPrompt {
            name: "app_version".into(),
            prompt: "Version".into(),
            default,
            private: false,
            confirm: false,
            span: crate::yaml::Span {
                path: std::sync::Arc::new("site.yml".into()),
                line: 3,
                col: 7,
                len: 1,
            },
        }
    }

    #[test]
    fn without_a_terminal_the_default_is_taken() {
        let v = answer(&prompt(Some(Value::from("1.0"))), false).expect("default");
        assert_eq!(v, Value::from("1.0"));
    }

    #[test]
    fn without_a_terminal_and_default_it_is_an_error_naming_the_variable() {
        let e = answer(&prompt(None), false).expect_err("no terminal");
        assert_eq!(
            e.to_string(),
            "site.yml:3:7: `vars_prompt` asks for `app_version`, but there is no terminal to ask on; give it with -e app_version=..."
        );
    }
}
