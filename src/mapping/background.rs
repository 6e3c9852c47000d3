//! Work that continues after the request was answered, recorded in the operations journal
//! (docs/gateway-state.md) so that a restarted gateway, or another gateway on the same store,
//! finishes it:
//!
//! - `undo-launch`: a RunInstances that failed (fewer than MinCount, tags refused) answers its
//!   error at once; its VMs are destroyed here, each once its deploy job has ended.
//! - `watch-launch`: the deploy jobs of a launch that succeeded are waited for; a VM whose
//!   deploy failed (CloudStack leaves it in `Error`) is shown as terminated with EC2's
//!   `stateReason` (a tombstone) and destroyed with `expunge=true`, so nothing is left.
//! - `watch-state`: StopInstances / StartInstances jobs; a failed one leaves the instance where
//!   it was, with a `stateReason` saying the stop or start failed.
//! - `restart-instance`: CreateImage's start of the instance it stopped, once the template is
//!   made.
//! - `watch-allocate`: the `associateIpAddress` job of an address AllocateAddress answered before
//!   the job ended; a failed allocation is released.
//! - `launch`: a RunInstances between its first deploy and its answer; a gateway that dies in
//!   that window leaves it to be taken over, which removes the reservation's VMs (the client had
//!   no answer).
//! - `undo`: the undo steps a request registered (`steps::common::Undo`) while it runs; a request
//!   that ends without disarming them, or whose gateway dies, has them run here.
//! - `client-token`: an idempotency record whose request never finished (its gateway died):
//!   what it made is removed (RunInstances: the VMs of its reservation) and the token freed, so
//!   that the client's retry starts afresh.
//!
//! A running operation's lease is renewed by its gateway's sweeper; the sweeper also takes over
//! every operation whose lease ran out.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::backend::{Backend, join_limited};
use super::deploy_watch::{DeployWatch, Seen};
use super::exec::Inner;
use crate::cloudstack::{CsCredentials, CsError};
use crate::ids::{self, Kind};
use crate::journal::{self, Journal, Op, Tomb};
use crate::objects::{Change, ObjectStore, Record, WriteError};

/// The object-store record kind of instance attributes (steps::attrs::INSTANCE).
const INSTANCE_ATTRS: &str = "instance-attributes";
/// Its fields for the instance's last state change (DescribeInstances `stateReason`, `reason`).
pub const STATE_REASON: &str = "stateReason";
pub const TRANSITION_REASON: &str = "stateTransitionReason";

/// EC2's `stateReason` of an instance whose launch failed, by CloudStack error code.
pub fn launch_failure_reason(errorcode: Option<u16>) -> Value {
    match errorcode {
        Some(533) => json!({
            "code": "Server.InsufficientInstanceCapacity",
            "message": "Server.InsufficientInstanceCapacity: Insufficient capacity to satisfy launch request",
        }),
        _ => json!({ "code": "Server.InternalError", "message": "Server.InternalError: Internal error on launch" }),
    }
}

/// EC2's `stateReason` of an instance stopped or terminated by its user.
pub fn user_shutdown_reason() -> Value {
    json!({ "code": "Client.UserInitiatedShutdown", "message": "Client.UserInitiatedShutdown: User initiated shutdown" })
}

/// EC2's `stateTransitionReason` of a change the user asked for, now.
pub fn user_transition_reason() -> String {
    let now = time::OffsetDateTime::now_utc();
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    format!("User initiated ({} GMT)", now.format(&f).unwrap_or_default())
}

/// What a tombstone keeps of a VM: the fields DescribeInstances shows for a terminated
/// instance (no addresses, interfaces or volumes: EC2 shows none for one).
pub fn slim_vm(vm: &Value) -> Value {
    const FIELDS: &[&str] = &[
        "id",
        "templateid",
        "serviceofferingname",
        "zonename",
        "created",
        "keypair",
        "keypairs",
        "group",
        "account",
        "hypervisor",
        "_clienttoken",
        "_statereason",
        "_reason",
    ];
    let mut o = serde_json::Map::new();
    for f in FIELDS {
        if let Some(v) = vm.get(*f).filter(|v| !v.is_null()) {
            o.insert((*f).to_string(), v.clone());
        }
    }
    let pick = |list: Option<&Value>, keys: &[&str]| -> Value {
        Value::Array(
            list.and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|g| Value::Object(keys.iter().filter_map(|k| Some((k.to_string(), g.get(*k)?.clone()))).collect()))
                .collect(),
        )
    };
    o.insert("securitygroup".into(), pick(vm.get("securitygroup"), &["id", "name"]));
    o.insert("tags".into(), pick(vm.get("tags"), &["key", "value"]));
    o.insert("state".into(), Value::String("Destroyed".into()));
    Value::Object(o)
}

/// An operation a request recorded before doing its work (`Worker::record`).
pub struct Recorded {
    worker: Worker,
    op: Option<Op>,
    stored: bool,
}

impl Recorded {
    /// The request is done and nothing is left to do.
    pub async fn finish(mut self) {
        if let Some(op) = self.op.take()
            && self.stored
            && let Err(e) = self.worker.journal.remove(&op.id).await
        {
            tracing::warn!(op = %op.id, error = %e, "operations journal: could not remove a finished operation");
        }
    }

    /// What the record says changes (e.g. one more undo step).
    pub async fn update(&mut self, doc: Value) {
        let Some(op) = self.op.as_mut() else { return };
        op.doc = doc;
        if self.stored {
            match self.worker.journal.update(op).await {
                Ok(true) => op.version += 1,
                Ok(false) => tracing::warn!(op = %op.id, "operations journal: an operation changed meanwhile"),
                Err(e) => tracing::warn!(op = %op.id, error = %e, "operations journal: could not update an operation"),
            }
        }
    }

    /// The request is done and what is left is another kind of operation (a launch answered:
    /// its deploys are watched): the record becomes that operation in one journal write, and
    /// runs in the background. Unrecorded, or when the record cannot be rewritten, the new
    /// operation is recorded afresh (`Worker::start`) and the old one removed.
    pub async fn become_op(mut self, kind: &str, doc: Value) {
        let Some(mut op) = self.op.take() else { return };
        let was = std::mem::replace(&mut op.kind, kind.to_string());
        op.doc = doc;
        // The lease as the sweeper keeps it (renewed while the request ran).
        op.lease_until = self.worker.lease_until();
        if self.stored {
            match self.worker.journal.update(&op).await {
                Ok(true) => {
                    op.version += 1;
                    self.worker.spawn(op);
                    return;
                }
                Ok(false) => {
                    tracing::warn!(op = %op.id, kind = %was, "operations journal: an operation changed meanwhile")
                }
                Err(e) => {
                    tracing::warn!(op = %op.id, kind = %was, error = %e, "operations journal: could not update an operation")
                }
            }
        }
        let creds = CsCredentials { api_key: op.cs_key.clone(), secret_key: op.cs_secret.clone() };
        self.worker.start(kind, &op.owner, &creds, op.doc.clone()).await;
        if self.stored
            && let Err(e) = self.worker.journal.remove(&op.id).await
        {
            tracing::warn!(op = %op.id, error = %e, "operations journal: could not remove a finished operation");
        }
    }

    /// The rest runs in the background; `doc` (when given) replaces what the record says first.
    pub async fn hand_over(mut self, doc: Option<Value>) {
        let Some(mut op) = self.op.take() else { return };
        if let Some(d) = doc {
            op.doc = d;
            if self.stored {
                match self.worker.journal.update(&op).await {
                    Ok(true) => op.version += 1,
                    Ok(false) => tracing::warn!(op = %op.id, "operations journal: an operation changed meanwhile"),
                    Err(e) => {
                        tracing::warn!(op = %op.id, error = %e, "operations journal: could not update an operation")
                    }
                }
            }
        }
        self.worker.spawn(op);
    }
}

impl Drop for Recorded {
    fn drop(&mut self) {
        // The request was dropped mid-way: its operation finishes or undoes in the background.
        if let Some(op) = self.op.take()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            self.worker.spawn(op);
        }
    }
}

/// A template of that name CloudStack is still making (not ready, not failed).
fn template_in_progress(t: &Value, name: &str) -> bool {
    let status = t.get("status").and_then(Value::as_str).unwrap_or("").to_ascii_lowercase();
    t.get("name").and_then(Value::as_str) == Some(name)
        && t.get("isready") == Some(&Value::Bool(false))
        && !status.contains("error")
        && !status.contains("fail")
}

#[derive(Clone)]
pub struct Worker {
    backend: Arc<dyn Backend>,
    journal: Arc<dyn Journal>,
    objects: Arc<dyn ObjectStore>,
    deploys: Arc<DeployWatch>,
    region: String,
    holder: String,
    lease: Duration,
    token_ttl: Duration,
    tombstone_ttl: Duration,
    tombstone_keep: usize,
    concurrency: usize,
}

fn lease_secs(d: Duration) -> i64 {
    d.as_secs().max(1) as i64
}

impl Worker {
    pub fn of(ex: &Inner) -> Worker {
        Worker {
            backend: ex.backend.clone(),
            journal: ex.journal.clone(),
            objects: ex.objects.clone(),
            deploys: ex.deploys.clone(),
            region: ex.opts.regions.first().map(|r| r.name.clone()).unwrap_or_default(),
            holder: ex.holder.clone(),
            lease: ex.opts.lease,
            token_ttl: ex.opts.token_ttl,
            tombstone_ttl: ex.opts.tombstone_ttl,
            tombstone_keep: ex.opts.tombstone_keep,
            concurrency: ex.opts.call_concurrency,
        }
    }

    pub fn lease_until(&self) -> i64 {
        journal::now() + lease_secs(self.lease)
    }

    /// A new operation of this gateway (not yet stored).
    pub fn new_op(&self, kind: &str, owner: &str, creds: &CsCredentials, doc: Value) -> Op {
        Op {
            id: journal::new_op_id(),
            kind: kind.to_string(),
            region: self.region.clone(),
            owner: owner.to_string(),
            token: None,
            cs_key: creds.api_key.clone(),
            cs_secret: creds.secret_key.clone(),
            done: false,
            doc,
            version: 0,
            holder: self.holder.clone(),
            lease_until: self.lease_until(),
            created: journal::now(),
        }
    }

    /// Record the operation in the journal, then run it in the background. When the journal
    /// cannot record it, it still runs (only a restart could lose it then).
    pub async fn start(&self, kind: &str, owner: &str, creds: &CsCredentials, doc: Value) {
        let op = self.new_op(kind, owner, creds, doc);
        if let Err(e) = self.journal.begin(&op).await {
            tracing::warn!(kind, error = %e, "operations journal: could not record an operation; running it unrecorded");
        }
        self.spawn(op);
    }

    /// Record an operation *before* the request does its work (its lease renewed by this
    /// gateway's sweeper while the request runs): if the process dies meanwhile, another gateway,
    /// or this one after a restart, takes it over and finishes or undoes it. The request ends it
    /// with `Recorded::finish` (nothing left to do) or `Recorded::hand_over` (the rest runs in
    /// the background); a request dropped before either (a shutdown's grace ran out) hands it over.
    pub async fn record(&self, kind: &str, owner: &str, creds: &CsCredentials, doc: Value) -> Recorded {
        let op = self.new_op(kind, owner, creds, doc);
        let stored = match self.journal.begin(&op).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(kind, error = %e, "operations journal: could not record an operation; running it unrecorded");
                false
            }
        };
        Recorded { worker: self.clone(), op: Some(op), stored }
    }

    pub fn spawn(&self, op: Op) {
        let w = self.clone();
        tokio::spawn(async move { w.run(op).await });
    }

    /// Keep a terminated instance visible (a tombstone), bounded by age and count.
    pub async fn bury(&self, owner: &str, ec2: &str, doc: Value) {
        let t = Tomb { id: ec2.to_string(), owner: owner.to_string(), doc, at: journal::now() };
        let expire = journal::now() - self.tombstone_ttl.as_secs() as i64;
        if let Err(e) = self.journal.bury(&t, self.tombstone_keep, expire).await {
            tracing::warn!(instance = %ec2, error = %e, "could not keep the terminated instance's record");
        }
    }

    /// Set (or with `Value::Null`, clear) one field of an instance's attribute record.
    pub async fn set_instance_attr(&self, owner: &str, ec2: &str, key: &str, value: Value) {
        // A VPC instance's id names its security-group record: its attributes are under the
        // alternative id then (steps::attrs::alt_id).
        let mut rid = ec2.to_string();
        for _ in 0..8 {
            let change = match self.objects.get(owner, &rid).await {
                Err(e) => {
                    tracing::warn!(error = %e, "object store failure");
                    return;
                }
                Ok(Some(r)) if r.kind != INSTANCE_ATTRS && rid == ec2 => {
                    rid = super::steps::attrs::alt_id(INSTANCE_ATTRS, ec2);
                    continue;
                }
                Ok(Some(r)) if r.kind != INSTANCE_ATTRS => return,
                Ok(Some(mut r)) => {
                    if r.doc.get(key).unwrap_or(&Value::Null) == &value {
                        return;
                    }
                    if !r.doc.is_object() {
                        r.doc = json!({});
                    }
                    match &value {
                        Value::Null => {
                            if let Some(o) = r.doc.as_object_mut() {
                                o.remove(key);
                            }
                        }
                        v => r.doc[key] = v.clone(),
                    }
                    Change::Update(r)
                }
                Ok(None) if value.is_null() => return,
                Ok(None) => Change::Insert(Record {
                    id: rid.clone(),
                    kind: INSTANCE_ATTRS.to_string(),
                    owner: owner.to_string(),
                    vpc: None,
                    doc: json!({ key: value }),
                    version: 0,
                }),
            };
            match self.objects.write(vec![change]).await {
                Ok(()) => return,
                Err(WriteError::Conflict { .. }) => continue,
                Err(WriteError::Failed(e)) => {
                    tracing::warn!(error = %e, "object store failure");
                    return;
                }
            }
        }
    }

    async fn run(&self, op: Op) {
        let creds = CsCredentials { api_key: op.cs_key.clone(), secret_key: op.cs_secret.clone() };
        if creds.secret_key.is_empty() {
            tracing::warn!(op = %op.id, "operations journal: the operation's keys cannot be read with this store key");
            return;
        }
        let finished = match op.kind.as_str() {
            "undo-launch" => self.undo_launch(&op, &creds).await,
            "watch-launch" => self.watch_launch(&op, &creds).await,
            "watch-state" => self.watch_state(&op, &creds).await,
            "restart-instance" => self.restart_instance(&op, &creds).await,
            "watch-allocate" => self.watch_allocate(&op, &creds).await,
            "client-token" => self.abandoned_token(&op, &creds).await,
            "launch" => self.abandoned_launch(&op, &creds).await,
            "undo" => self.undo_calls(&op, &creds).await,
            other => {
                tracing::warn!(op = %op.id, kind = other, "operations journal: unknown operation kind; dropped");
                true
            }
        };
        if finished {
            if let Err(e) = self.journal.remove(&op.id).await {
                tracing::warn!(op = %op.id, error = %e, "operations journal: could not remove a finished operation");
            }
        } else {
            // Left for a later sweep: no longer renewed, so it is taken over once its lease ends.
            let mut back = op.clone();
            back.holder = String::new();
            back.lease_until = self.lease_until();
            let _ = self.journal.update(&back).await;
        }
    }

    /// `[[uuid, jobid]]` of a launch's VMs.
    fn vms(op: &Op) -> Vec<(String, String)> {
        op.doc["vms"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p.get(0)?.as_str()?.to_string(), p.get(1)?.as_str()?.to_string())))
            .collect()
    }

    /// destroyVirtualMachine with expunge=true (nothing left), waited for; where the caller may
    /// not expunge (CloudStack's `allow.user.expunge.recover.vm` off), a plain destroy, which
    /// CloudStack expunges after its `expunge.delay`.
    async fn destroy(&self, creds: &CsCredentials, uuid: &str) -> Result<(), CsError> {
        let p = [("id".to_string(), uuid.to_string()), ("expunge".to_string(), "true".to_string())];
        let j = match self.backend.start_job(creds, "destroyVirtualMachine", &p).await {
            Ok(j) => j,
            Err(CsError::Api { errorcode: 531 | 432, .. }) => {
                self.backend.start_job(creds, "destroyVirtualMachine", &p[..1]).await?
            }
            Err(e) => return Err(e),
        };
        self.backend.wait_job(creds, "destroyVirtualMachine", &j.jobid).await.map(|_| ())
    }

    async fn gone_or_destroyed(&self, creds: &CsCredentials, uuid: &str, e: CsError) -> bool {
        // A VM that is already gone (expunged, or destroyed by someone else) needs nothing.
        let p = [("id".to_string(), uuid.to_string())];
        match self.backend.list_all(creds, "listVirtualMachines", &p, "virtualmachine").await {
            Ok(l) if l.is_empty() => true,
            Ok(l) => {
                let st = l[0].get("state").and_then(Value::as_str).unwrap_or("");
                let done = matches!(st, "Destroyed" | "Expunging");
                if !done {
                    tracing::warn!(vm = %uuid, error = %e, "could not remove a virtual machine; will try again");
                }
                done
            }
            Err(CsError::Api { errorcode: 431, .. }) => true,
            Err(_) => false,
        }
    }

    async fn undo_launch(&self, op: &Op, creds: &CsCredentials) -> bool {
        let command = op.doc["command"].as_str().unwrap_or("deployVirtualMachine").to_string();
        let vms = Self::vms(op);
        let futs = vms.iter().map(|(u, job)| {
            let command = command.clone();
            async move {
                // CloudStack serialises work on a VM: let the deploy end (a failed one leaves the
                // VM in Error, destroyed all the same).
                let _ = self.backend.wait_job(creds, &command, job).await;
                match self.destroy(creds, u).await {
                    Ok(()) => true,
                    Err(e) => self.gone_or_destroyed(creds, u, e).await,
                }
            }
        });
        let ok = join_limited(futs.collect(), self.concurrency).await;
        let left: Vec<String> =
            vms.iter().zip(&ok).filter(|(_, ok)| !**ok).map(|((u, _), _)| ids::ec2_id(Kind::Instance, u)).collect();
        if left.is_empty() {
            tracing::info!(op = %op.id, instances = vms.len(), "RunInstances rollback finished");
            true
        } else {
            tracing::warn!(op = %op.id, left = %left.join(","), "RunInstances rollback incomplete; will try again");
            false
        }
    }

    async fn watch_launch(&self, op: &Op, creds: &CsCredentials) -> bool {
        let command = op.doc["command"].as_str().unwrap_or("deployVirtualMachine").to_string();
        let vms = Self::vms(op);
        let futs = vms.iter().map(|(u, job)| {
            let command = command.clone();
            async move {
                // One shared listing per poll round tells most deploys apart; the job itself is
                // asked only when the VM is not plainly running (deploy_watch.rs).
                match self.deploys.watch(&self.backend, creds, u).await {
                    Seen::Running => return true,
                    Seen::Hung => {
                        tracing::warn!(vm = %u, "a deploy is still running past the job deadline; will look again");
                        return false;
                    }
                    Seen::AskJob => {}
                }
                match self.backend.wait_job(creds, &command, job).await {
                    Ok(_) => true,
                    Err(CsError::JobFailed { errorcode, text, .. }) => {
                        self.failed_launch(op, creds, u, Some(errorcode), &text).await
                    }
                    // The job id is unknown now (CloudStack forgot old jobs): look at the VM.
                    Err(CsError::Api { errorcode: 431, .. }) => self.check_error_state(op, creds, u).await,
                    Err(e) => {
                        tracing::warn!(vm = %u, error = %e, "could not learn how a deploy ended; will look again");
                        false
                    }
                }
            }
        });
        join_limited(futs.collect(), self.concurrency).await.into_iter().all(|x| x)
    }

    async fn check_error_state(&self, op: &Op, creds: &CsCredentials, uuid: &str) -> bool {
        let p = [("id".to_string(), uuid.to_string())];
        match self.backend.list_all(creds, "listVirtualMachines", &p, "virtualmachine").await {
            Ok(l) if l.first().and_then(|v| v.get("state")).and_then(Value::as_str) == Some("Error") => {
                self.failed_launch(op, creds, uuid, None, "the deploy job ended in Error").await
            }
            Ok(_) => true,
            Err(_) => false,
        }
    }

    /// A deploy failed: the VM (in Error) becomes a terminated instance with EC2's reason, and
    /// is destroyed and expunged.
    async fn failed_launch(&self, op: &Op, creds: &CsCredentials, uuid: &str, code: Option<u16>, text: &str) -> bool {
        let ec2 = ids::ec2_id(Kind::Instance, uuid);
        tracing::warn!(instance = %ec2, errorcode = ?code, cloudstack = %text, "deploy failed; the instance is terminated and removed");
        let p = [("id".to_string(), uuid.to_string())];
        let listed = self.backend.list_all(creds, "listVirtualMachines", &p, "virtualmachine").await;
        let mut vm = match listed {
            Ok(mut l) if !l.is_empty() => l.swap_remove(0),
            // Gone already: what DescribeInstances needs of it (its launch time is now's).
            Ok(_) => json!({ "id": uuid, "created": crate::mapping::convert::cloudstack_now() }),
            // Looked at again after the next lease: a tombstone without the VM's fields would
            // show an instance without a launch time.
            Err(e) => {
                tracing::warn!(instance = %ec2, error = %e, "could not list a failed VM; will look again");
                return false;
            }
        };
        let reason = launch_failure_reason(code);
        if let Some(o) = vm.as_object_mut() {
            if let Some(t) = op.doc.get("clienttoken").filter(|t| t.is_string()) {
                o.insert("_clienttoken".into(), t.clone());
            }
            o.insert("_reason".into(), reason["message"].clone());
            o.insert("_statereason".into(), reason);
        }
        self.bury(&op.owner, &ec2, slim_vm(&vm)).await;
        match self.destroy(creds, uuid).await {
            Ok(()) => true,
            Err(e) => self.gone_or_destroyed(creds, uuid, e).await,
        }
    }

    async fn watch_state(&self, op: &Op, creds: &CsCredentials) -> bool {
        let command = op.doc["command"].as_str().unwrap_or_default().to_string();
        let verb = match command.as_str() {
            "stopVirtualMachine" => "stop",
            "startVirtualMachine" => "start",
            _ => return true,
        };
        let vms = Self::vms(op);
        let futs = vms.iter().map(|(u, job)| {
            let command = command.clone();
            async move {
                let ec2 = ids::ec2_id(Kind::Instance, u);
                let (reason, transition) = match self.backend.wait_job(creds, &command, job).await {
                    Ok(_) if verb == "stop" => (user_shutdown_reason(), Value::String(user_transition_reason())),
                    Ok(_) => (Value::Null, Value::Null),
                    Err(CsError::JobFailed { errorcode, text, .. }) => {
                        tracing::warn!(instance = %ec2, errorcode, cloudstack = %text, "{verb} job failed; the instance stays where it was");
                        let message = format!("Server.InternalError: Internal error on {verb}");
                        (json!({ "code": "Server.InternalError", "message": message }), Value::String(message.clone()))
                    }
                    Err(CsError::Api { errorcode: 431, .. }) => return true,
                    Err(e) => {
                        tracing::warn!(instance = %ec2, error = %e, "could not learn how a {verb} ended; will look again");
                        return false;
                    }
                };
                self.set_instance_attr(&op.owner, &ec2, STATE_REASON, reason).await;
                self.set_instance_attr(&op.owner, &ec2, TRANSITION_REASON, transition).await;
                true
            }
        });
        join_limited(futs.collect(), self.concurrency).await.into_iter().all(|x| x)
    }

    async fn restart_instance(&self, op: &Op, creds: &CsCredentials) -> bool {
        let vm = op.doc["vm"].as_str().unwrap_or_default().to_string();
        let ec2 = ids::ec2_id(Kind::Instance, &vm);
        if let (Some(cmd), Some(job)) = (op.doc["after"][0].as_str(), op.doc["after"][1].as_str()) {
            match self.backend.wait_job(creds, cmd, job).await {
                Ok(_) => {}
                Err(CsError::JobFailed { text, .. }) => {
                    tracing::warn!(instance = %ec2, cloudstack = %text, "CreateImage: template creation failed");
                }
                Err(CsError::Api { errorcode: 431, .. }) => {}
                Err(e) => {
                    tracing::warn!(instance = %ec2, error = %e, "CreateImage: could not learn how the template job ended");
                    return false;
                }
            }
        } else if let Some(name) = op.doc["name"].as_str() {
            // Taken over from a gateway that died before it recorded the template job: a
            // template of that name still being made is let finish first.
            let p = [
                ("templatefilter".to_string(), "self".to_string()),
                ("name".to_string(), name.to_string()),
                ("listall".to_string(), "true".to_string()),
            ];
            match self.backend.list_all(creds, "listTemplates", &p, "template").await {
                Ok(l) if l.iter().any(|t| template_in_progress(t, name)) => return false,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        // Started only when stopped (a take-over may find it started already); a stop still
        // under way is waited for (a later sweep looks again).
        let p = [("id".to_string(), vm.clone())];
        match self.backend.list_all(creds, "listVirtualMachines", &p, "virtualmachine").await {
            Ok(l) => match l.first().and_then(|v| v.get("state")).and_then(Value::as_str) {
                Some("Stopped") => {}
                Some("Stopping") => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    return false;
                }
                _ => return true,
            },
            Err(_) => return false,
        }
        match self.backend.start_job(creds, "startVirtualMachine", &p).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(instance = %ec2, error = %e, "CreateImage: could not start the instance again; will try again");
                false
            }
        }
    }

    /// An address AllocateAddress answered before its `associateIpAddress` job ended: the job is
    /// let end; a failed one releases the address in CloudStack, and whatever of it is left
    /// (listed, no longer allocating) is released here, so that nothing the client was told about
    /// stays behind unseen. A hung job keeps the operation (taken over again after each lease).
    async fn watch_allocate(&self, op: &Op, creds: &CsCredentials) -> bool {
        let command = op.doc["command"].as_str().unwrap_or("associateIpAddress").to_string();
        let (Some(job), Some(id)) = (op.doc["jobid"].as_str(), op.doc["id"].as_str()) else { return true };
        match self.backend.wait_job(creds, &command, job).await {
            Ok(_) => return true,
            Err(CsError::JobFailed { errorcode, text, .. }) => {
                tracing::warn!(address = %id, errorcode, cloudstack = %text, "AllocateAddress: the allocation failed after the answer");
            }
            // CloudStack forgot the job: look at the address.
            Err(CsError::Api { errorcode: 431, .. }) => {}
            Err(e) => {
                tracing::warn!(address = %id, error = %e, "AllocateAddress: could not learn how the allocation ended; will look again");
                return false;
            }
        }
        let p = [("id".to_string(), id.to_string()), ("listall".to_string(), "true".to_string())];
        let listed = match self.backend.list_all(creds, "listPublicIpAddresses", &p, "publicipaddress").await {
            Ok(l) => l,
            Err(_) => return false,
        };
        match listed.iter().find(|i| i.get("id").and_then(Value::as_str) == Some(id)) {
            None => true,
            Some(ip) if ip.get("state").and_then(Value::as_str) == Some("Allocating") => false,
            Some(_) => {
                let p = [("id".to_string(), id.to_string())];
                let released = match self.backend.start_job(creds, "disassociateIpAddress", &p).await {
                    Ok(j) => self.backend.wait_job(creds, "disassociateIpAddress", &j.jobid).await.map(|_| ()),
                    Err(e) => Err(e),
                };
                match released {
                    Ok(()) | Err(CsError::Api { errorcode: 431, .. }) => true,
                    Err(e) => {
                        tracing::warn!(address = %id, error = %e, "AllocateAddress: could not release a failed allocation; will try again");
                        false
                    }
                }
            }
        }
    }

    /// An idempotency record whose request died mid-way: remove what it may have made, free the
    /// token.
    async fn abandoned_token(&self, op: &Op, creds: &CsCredentials) -> bool {
        let Some(group) = op.doc["undo_group"].as_str() else { return true };
        self.destroy_group(op, creds, group).await
    }

    /// The undo steps of a request that did not end (`steps::common::Undo`): run once each,
    /// newest first; a step that fails is logged (it may have run before the take-over, or the
    /// object may be gone).
    async fn undo_calls(&self, op: &Op, creds: &CsCredentials) -> bool {
        let action = op.doc["action"].as_str().unwrap_or("?").to_string();
        let calls: Vec<_> = op.doc["calls"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(super::steps::common::UndoCall::from_json)
            .collect();
        tracing::info!(op = %op.id, action = %action, steps = calls.len(), "undoing what an unfinished request made");
        for c in calls.iter().rev() {
            if let Some((command, jobid)) = &c.after_job {
                let _ = self.backend.wait_job(creds, command, jobid).await;
            }
            let r = if c.wait {
                match self.backend.start_job(creds, &c.command, &c.params).await {
                    Ok(j) => self.backend.wait_job(creds, &c.command, &j.jobid).await.map(|_| ()),
                    Err(e) => Err(e),
                }
            } else {
                self.backend.call(creds, &c.command, &c.params).await.map(|_| ())
            };
            if let Err(e) = r {
                tracing::warn!(op = %op.id, action = %action, command = %c.command, error = %e, "background undo step failed");
            }
        }
        true
    }

    /// A RunInstances that never reached its answer (its gateway died or was stopped mid-launch):
    /// the client was told nothing, so every VM of its reservation is removed.
    async fn abandoned_launch(&self, op: &Op, creds: &CsCredentials) -> bool {
        let Some(group) = op.doc["group"].as_str() else { return true };
        self.destroy_group(op, creds, group).await
    }

    async fn destroy_group(&self, op: &Op, creds: &CsCredentials, group: &str) -> bool {
        // CloudStack lists by instance group id only, and the group is known here by name: every
        // VM of the account is listed, page by page, and only the three fields read are taken of
        // each, with no item kept but the group's (whole items made each undo cost as much CPU as
        // a DescribeInstances of the account, and as much memory while it ran).
        const READ: [&str; 3] = ["group", "id", "state"];
        let mut mine: Vec<String> = Vec::new();
        let mut each = |fields: &[crate::base::fields::Scalar<'_>]| -> Result<(), CsError> {
            for v in fields.chunks_exact(READ.len()) {
                let [g, id, state] = v else { continue };
                if g.str() == Some(group)
                    && !matches!(state.str(), Some("Destroyed" | "Expunging"))
                    && let Some(id) = id.str()
                {
                    mine.push(id.to_string());
                }
            }
            Ok(())
        };
        let p = [("listall".to_string(), "true".to_string())];
        if self
            .backend
            .list_all_picked(creds, "listVirtualMachines", &p, "virtualmachine", &READ, &mut each)
            .await
            .is_err()
        {
            return false;
        }
        tracing::info!(op = %op.id, kind = %op.kind, instances = mine.len(), "an unfinished RunInstances is undone");
        let futs = mine.iter().map(|u| async move {
            match self.destroy(creds, u).await {
                Ok(()) => true,
                Err(e) => self.gone_or_destroyed(creds, u, e).await,
            }
        });
        join_limited(futs.collect(), self.concurrency).await.into_iter().all(|x| x)
    }

    /// Renew this gateway's leases and take over expired operations: at once, then every third
    /// of the lease. Old finished records (ClientTokens) are pruned every few minutes.
    pub fn spawn_sweeper(self) {
        tokio::spawn(async move {
            let period = (self.lease / 3).max(Duration::from_millis(500));
            let mut rounds: u64 = 0;
            loop {
                let now = journal::now();
                if let Err(e) = self.journal.renew(&self.holder, self.lease_until()).await {
                    tracing::warn!(error = %e, "operations journal: could not renew leases");
                }
                match self.journal.take_expired(&self.region, now, &self.holder, self.lease_until()).await {
                    Ok(ops) => {
                        for op in ops {
                            tracing::info!(op = %op.id, kind = %op.kind, "operations journal: taking over an unfinished operation");
                            self.spawn(op);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "operations journal: could not look for unfinished operations")
                    }
                }
                if rounds.is_multiple_of(60) {
                    let before = now - self.token_ttl.as_secs() as i64;
                    if let Err(e) = self.journal.prune_done(before).await {
                        tracing::warn!(error = %e, "operations journal: could not prune old records");
                    }
                }
                rounds += 1;
                tokio::time::sleep(period).await;
            }
        });
    }
}
