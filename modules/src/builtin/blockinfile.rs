//! `blockinfile` module (being written).
use crate::{Host, Module, ModuleError, Outcome, Plan};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockInFileParams {}

pub struct BlockInFile;
impl Module for BlockInFile {
    const NAME: &'static str = "blockinfile";
    type Params = BlockInFileParams;
    fn plan(&self, _p: &Self::Params, _h: &mut dyn Host) -> Result<Plan, ModuleError> {
        Err(ModuleError::failed("not yet implemented"))
    }
    fn apply(
        &self,
        _p: &Self::Params,
        _plan: Plan,
        _h: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        Err(ModuleError::failed("not yet implemented"))
    }
}
