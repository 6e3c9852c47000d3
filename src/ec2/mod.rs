//! The EC2 side: the normalized request, the error catalog, the Query and SOAP front ends and
//! the XML renderers. Knows nothing of CloudStack.

pub mod query;
pub mod registration;
pub mod render;
pub mod request;
pub mod soap;

pub use crate::base::error::{Code, Ec2Error};
pub use request::{Ec2Request, Frontend, Params};
