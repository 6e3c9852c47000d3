//! Command handlers by area, and the registry the dispatcher consults. A handler validates
//! synchronously (errors come back at once as HTTP errors) and either answers or returns a
//! [`JobSpec`] whose completion the job runner calls later.

use std::collections::HashMap;

use serde_json::Value;

use super::error::{SimError, SimResult};
use super::jobs::{JobFn, Timer};
use super::model::{Caller, Lookup, Model, Owned, Row, Table};
use super::params::Params;
use super::seed::SimConfig;

mod account;
mod acl;
mod firewall;
mod ip;
mod keypair;
mod meta;
mod network;
mod nic;
mod secgroup;
mod snapshot;
mod tags;
mod template;
mod vm;
mod volume;
mod vpc;
mod vpn;

/// One request, as handlers see it.
pub struct Ctx<'a> {
    pub p: Params,
    pub caller: Caller,
    pub cfg: &'a SimConfig,
    /// Creation time for new objects.
    pub now: String,
    /// Pre-allocated id of the job an async command creates.
    pub jobid: String,
    /// Delayed state changes that are not jobs.
    pub timers: Vec<Timer>,
    /// Request came as POST (user data may be larger).
    pub post: bool,
    /// createSSHKeyPair: a key pair made before the model lock was taken.
    pub pregenerated_key: Option<super::keys::Generated>,
}

impl Ctx<'_> {
    /// A required uuid parameter naming a live object of `table`. Unknown -> 431 (param
    /// processing); removed -> 431 "not found" from the service layer.
    pub fn need<T: Row>(&self, table: &Table<T>, name: &str) -> SimResult<u64> {
        let v = self.p.req(name)?;
        match table.lookup(v) {
            Lookup::Live(s) => Ok(s),
            Lookup::Removed => Err(SimError::invalid(format!("Unable to find {} with id {v}", T::KIND)).with_uuid(v)),
            Lookup::Unknown => Err(SimError::bad_uuid(&self.p.cmd, name, v)),
        }
    }

    /// A required uuid parameter naming a live object the caller may act on (531 otherwise).
    pub fn owned<T: Owned>(&self, m: &Model, table: &Table<T>, name: &str) -> SimResult<u64> {
        let s = self.need(table, name)?;
        m.check_owned(&self.caller, table.live(s)?)?;
        Ok(s)
    }

    /// An optional uuid parameter: None when absent; Some(Lookup::Live|Removed) when known.
    pub fn find<T: Row>(&self, table: &Table<T>, name: &str) -> SimResult<Option<Lookup>> {
        match self.p.opt(name) {
            None => Ok(None),
            Some(v) => match table.lookup(v) {
                Lookup::Unknown => Err(SimError::bad_uuid(&self.p.cmd, name, v)),
                l => Ok(Some(l)),
            },
        }
    }

    /// A list command's optional uuid filter: Err for an unknown uuid, Ok(None) for a removed
    /// one (the list is empty), Ok(Some(Some(seq))) for a live one, Ok(Some(None)) when absent.
    pub fn filter<T: Row>(&self, table: &Table<T>, name: &str) -> SimResult<Option<Option<u64>>> {
        match self.find(table, name)? {
            None => Ok(Some(None)),
            Some(Lookup::Live(s)) => Ok(Some(Some(s))),
            Some(_) => Ok(None),
        }
    }

    /// Optional live object: like `need` when present.
    pub fn opt_live<T: Row>(&self, table: &Table<T>, name: &str) -> SimResult<Option<u64>> {
        if self.p.has(name) { self.need(table, name).map(Some) } else { Ok(None) }
    }

    pub fn job(
        &self,
        instance_type: &'static str,
        instance_id: Option<String>,
        lock: Option<String>,
        run: JobFn,
    ) -> Reply {
        Reply::Job(JobSpec { instance_type, instance_id, create_id: None, lock, run })
    }

    /// A job on one object: it joins that object's queue and names it as `jobinstanceid`.
    pub fn object_job(&self, instance_type: &'static str, id: String, run: JobFn) -> Reply {
        self.job(instance_type, Some(id.clone()), Some(id), run)
    }

    /// The job of an async create: `id` (the new object) is answered with the jobid.
    pub fn create_job(&self, instance_type: &'static str, id: String, run: JobFn) -> Reply {
        Reply::Job(JobSpec {
            instance_type,
            instance_id: Some(id.clone()),
            create_id: Some(id.clone()),
            lock: Some(id),
            run,
        })
    }
}

pub struct JobSpec {
    pub instance_type: &'static str,
    pub instance_id: Option<String>,
    /// For async-create commands: the new object's id, answered with the jobid.
    pub create_id: Option<String>,
    /// Object whose job queue this job joins.
    pub lock: Option<String>,
    pub run: JobFn,
}

pub enum Reply {
    Value(Value),
    /// JSON text of the envelope's content.
    Raw(String),
    Job(JobSpec),
}

pub type ReadFn = fn(&Ctx, &Model) -> SimResult<Value>;
/// A read handler that answers JSON text (the inside of the envelope), for large lists.
pub type ReadRawFn = fn(&Ctx, &Model) -> SimResult<String>;
pub type WriteFn = fn(&mut Ctx, &mut Model) -> SimResult<Reply>;

#[derive(Clone, Copy)]
pub enum Handler {
    Read(ReadFn),
    ReadRaw(ReadRawFn),
    Write(WriteFn),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sync,
    Async,
    AsyncCreate,
}

#[derive(Clone, Copy)]
pub struct CmdSpec {
    pub name: &'static str,
    pub kind: Kind,
    pub handler: Handler,
    /// The Java command class a job reports as `cmd`.
    pub class: &'static str,
    /// Root admins only (others get 401 "not available").
    pub admin_only: bool,
}

pub(crate) const fn read(name: &'static str, class: &'static str, f: ReadFn) -> CmdSpec {
    CmdSpec { name, kind: Kind::Sync, handler: Handler::Read(f), class, admin_only: false }
}
pub(crate) const fn read_raw(name: &'static str, class: &'static str, f: ReadRawFn) -> CmdSpec {
    CmdSpec { name, kind: Kind::Sync, handler: Handler::ReadRaw(f), class, admin_only: false }
}
pub(crate) const fn write(name: &'static str, class: &'static str, f: WriteFn) -> CmdSpec {
    CmdSpec { name, kind: Kind::Sync, handler: Handler::Write(f), class, admin_only: false }
}
pub(crate) const fn job(name: &'static str, class: &'static str, f: WriteFn) -> CmdSpec {
    CmdSpec { name, kind: Kind::Async, handler: Handler::Write(f), class, admin_only: false }
}
pub(crate) const fn create(name: &'static str, class: &'static str, f: WriteFn) -> CmdSpec {
    CmdSpec { name, kind: Kind::AsyncCreate, handler: Handler::Write(f), class, admin_only: false }
}
pub(crate) const fn admin(mut c: CmdSpec) -> CmdSpec {
    c.admin_only = true;
    c
}

/// Every command the simulator knows, by its (case-sensitive) name.
pub fn registry() -> HashMap<&'static str, CmdSpec> {
    let mut all = Vec::new();
    all.extend(meta::commands());
    all.extend(account::commands());
    all.extend(vm::commands());
    all.extend(volume::commands());
    all.extend(snapshot::commands());
    all.extend(template::commands());
    all.extend(keypair::commands());
    all.extend(secgroup::commands());
    all.extend(ip::commands());
    all.extend(tags::commands());
    all.extend(network::commands());
    all.extend(vpc::commands());
    all.extend(acl::commands());
    all.extend(nic::commands());
    all.extend(firewall::commands());
    all.extend(vpn::commands());
    all.into_iter().map(|c| (c.name, c)).collect()
}

/// `{"success":true}`.
pub fn success() -> Value {
    serde_json::json!({"success": true})
}

/// Wrap a single object under its name.
pub fn single(key: &str, v: Value) -> Value {
    let mut m = serde_json::Map::new();
    m.insert(key.to_string(), v);
    Value::Object(m)
}
