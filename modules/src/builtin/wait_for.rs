//! `wait_for` module (being written).
use crate::{Host, Module, ModuleError, Outcome, Plan};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitForParams {}

pub struct WaitFor;
impl Module for WaitFor {
    const NAME: &'static str = "wait_for";
    type Params = WaitForParams;
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
