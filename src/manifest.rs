//! placeholder until the helper lands
use crate::diag::{Diag, FileId};
use crate::ir;
pub fn load(_text: &str, _file: FileId) -> Result<ir::Program, Vec<Diag>> { Ok(ir::Program::default()) }
