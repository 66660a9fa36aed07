//! `stat` module (being written).
use crate::{Host, Module, ModuleError, Outcome, Plan};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatParams {}

pub struct Stat;
impl Module for Stat {
    const NAME: &'static str = "stat";
    type Params = StatParams;
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
