//! `command` module (being written).
use crate::{Host, Module, ModuleError, Outcome, Plan};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandParams {}

pub struct Command;
impl Module for Command {
    const NAME: &'static str = "command";
    type Params = CommandParams;
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShellParams {}

pub struct Shell;
impl Module for Shell {
    const NAME: &'static str = "shell";
    type Params = ShellParams;
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawParams {}

pub struct Raw;
impl Module for Raw {
    const NAME: &'static str = "raw";
    type Params = RawParams;
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
