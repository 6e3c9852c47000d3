//! The declarative action table (`mappings/*.toml`) and the executor that runs it.
//!
//! CONTRACT: the front ends call `Executor::execute`, which returns the *inner* XML of the
//! `<ActionResponse>` element (everything after `<requestId>`); the front end adds the envelope
//! (Query document or SOAP body) with the namespace of the request's version.

use std::sync::Arc;

use crate::auth::Principal;
use crate::cloudstack::CsClient;
use crate::ec2::{Ec2Error, Ec2Request};

pub struct Executor {
    _backend: Arc<CsClient>,
}

impl Executor {
    /// The compiled-in table, or a directory of `*.toml` overriding it.
    pub fn new(backend: Arc<CsClient>, _table_dir: Option<&std::path::Path>) -> anyhow::Result<Self> {
        Ok(Executor { _backend: backend })
    }

    pub async fn execute(&self, req: &Ec2Request, _who: &Principal) -> Result<String, Ec2Error> {
        Err(Ec2Error::new("InvalidAction", format!("The action {} is not valid for this web service.", req.action)))
    }
}
