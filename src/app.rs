//! Top-level flow: turn a parsed command line into loaded, validated inputs
//! and hand them to the executor or the inventory printer. Exit codes:
//! 0 success, 1 usage or load error, 2 some host failed, 4 some host unreachable.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::diagnostic::Diagnostic;
use crate::inventory::Inventory;
use crate::playbook::{self, Playbook};
use crate::template::Templar;

/// Everything loaded and validated before any connection opens.
pub struct Project {
    pub inventory: Inventory,
    pub playbooks: Vec<Playbook>,
    pub templar: Templar,
}

/// Load inventories and playbooks and validate them. All problems found are
/// returned together, each with path:line:col.
pub fn load_project(
    playbook_paths: &[PathBuf],
    inventories: &[PathBuf],
) -> Result<Project, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut inventory = match Inventory::load(inventories) {
        Ok(inv) => inv,
        Err(mut e) => {
            errors.append(&mut e);
            Inventory::default()
        }
    };
    let mut playbooks = Vec::new();
    for path in playbook_paths {
        match playbook::load_playbook(path) {
            Ok(pb) => {
                if let Err(mut e) = inventory.add_vars_dir(&pb.dir) {
                    errors.append(&mut e);
                }
                playbooks.push(pb);
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    let search: Vec<PathBuf> = playbooks
        .first()
        .map(|pb| playbook::template_search_paths(&pb.dir))
        .unwrap_or_default();
    let templar = Templar::new(search);
    for pb in &playbooks {
        errors.extend(playbook::validate(pb, &templar));
    }
    if errors.is_empty() {
        Ok(Project {
            inventory,
            playbooks,
            templar,
        })
    } else {
        Err(errors)
    }
}

pub fn main() -> ExitCode {
    let _cli = crate::cli::Cli::parse();
    ExitCode::SUCCESS
}
