//! (filled in below)

use super::CmdSpec;

pub fn commands() -> Vec<CmdSpec> {
    vec![]
}
