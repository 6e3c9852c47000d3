//! The leaf layer: what every other module shares and that depends on no other module of the
//! crate. The EC2 error type and its catalog live here, so the authentication, mapping and
//! front-end layers can all answer EC2 errors without importing one another.

pub mod error;
pub mod fields;
pub mod ids;
pub mod util;

pub use error::{Code, Ec2Error};
