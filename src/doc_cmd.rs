//! `herd doc`: the built-in modules' documentation, rendered from the
//! definitions their parameter parser uses (see `herdsman_modules::doc`).

use std::io::Write;

use herdsman_modules::doc::{render, to_json, ModuleDoc};

use crate::actions::{self, Action};
use crate::app::exit;
use crate::cli::{DocArgs, DocFormat};

/// Why `herd doc MODULE` has nothing to show.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error("no module `{name}`{hint} (`herd doc` lists them)")]
    Unknown { name: String, hint: String },
    #[error("`{0}` is run by the engine itself, not a module: see the README's Playbooks section")]
    EngineAction(String),
    #[error("cannot write the documentation: {0}")]
    Write(#[from] std::io::Error),
}

/// Print the list, or one module's page, in the asked format.
pub fn run(args: &DocArgs) -> Result<u8, DocError> {
    let text = match &args.module {
        None => list(args.format),
        Some(name) => page(&find(name)?, args.format),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    Ok(exit::OK)
}

fn list(format: DocFormat) -> String {
    let docs: Vec<ModuleDoc> = herdsman_modules::registry()
        .iter()
        .map(|m| m.doc())
        .collect();
    match format {
        DocFormat::Text => render::list(&docs),
        DocFormat::Markdown => render::markdown_index(&docs),
        DocFormat::Json => {
            let all: Vec<serde_json::Value> = docs.iter().map(to_json).collect();
            pretty(&serde_json::Value::Array(all))
        }
    }
}

fn page(doc: &ModuleDoc, format: DocFormat) -> String {
    match format {
        DocFormat::Text => render::text(doc),
        DocFormat::Markdown => render::markdown(doc),
        DocFormat::Json => pretty(&to_json(doc)),
    }
}

fn pretty(v: &serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// The module by short or long name; an engine action or an unknown name
/// is an error (with the closest module name, when one is close).
fn find(name: &str) -> Result<ModuleDoc, DocError> {
    match actions::lookup(&herdsman_modules::Registry::builtin(), name) {
        Some(Action::Module(m)) => Ok(m.doc()),
        Some(Action::Engine(_)) => Err(DocError::EngineAction(name.to_string())),
        None => {
            let short = actions::short_name(name);
            let closest = herdsman_modules::registry()
                .iter()
                .map(|m| (strsim::jaro_winkler(short, m.name()), m.name()))
                .filter(|(score, _)| *score > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            Err(DocError::Unknown {
                name: name.to_string(),
                hint: closest
                    .map(|(_, n)| format!("; did you mean `{n}`?"))
                    .unwrap_or_default(),
            })
        }
    }
}
