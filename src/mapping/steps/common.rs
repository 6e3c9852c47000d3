//! The step library: what several steps need, written once. Field access on CloudStack
//! objects, TagSpecification, createTags, ClientToken idempotency, and the undo guard that
//! makes a failed request leave nothing half-done.

use std::time::Instant;

use serde_json::{Value, json};

use super::super::background::Worker;
use super::super::exec::{Ctx, Prepared};
use super::super::expr::scalar_text;
use super::super::page;
use crate::base::{Code, Ec2Error};
use crate::cloudstack::CsError;
use crate::ec2::Params;
use crate::objects::{Change, TagChange, WriteError};

/// A non-empty string field.
pub fn field<'v>(v: &'v Value, k: &str) -> Option<&'v str> {
    v.get(k).and_then(Value::as_str).filter(|x| !x.is_empty())
}

/// Any scalar field as text (numbers and booleans too); absent or null -> None.
pub fn field_text(v: &Value, k: &str) -> Option<String> {
    v.get(k).filter(|x| !x.is_null()).map(scalar_text)
}

/// A resolved CloudStack parameter of the request.
pub fn param<'p>(prep: &'p Prepared, name: &str) -> Option<&'p str> {
    prep.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Set a field of a JSON object (no-op on anything else).
pub fn set(v: &mut Value, k: &str, x: impl Into<Value>) {
    if let Some(o) = v.as_object_mut() {
        o.insert(k.into(), x.into());
    }
}

pub fn pair(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

/// CloudStack's 431 (parameter error): a taken name, a bad value and an unknown name alike.
pub fn is_param_error(e: &CsError) -> bool {
    matches!(e, CsError::Api { errorcode: 431, .. })
}

/// Start an async command and wait for its job.
pub async fn run_job(ctx: &Ctx<'_>, command: &str, params: &[(String, String)]) -> Result<Value, Ec2Error> {
    let j = ctx.start_job(command, params).await?;
    ctx.wait_job(command, &j.jobid).await
}

// ---------------------------------------------------------------------------------------------
// Tags

/// `TagSpecification.N` of a create action that tags resources of `resource_type` only:
/// (key, value) pairs, checked (type, empty / reserved / over-long / repeated keys).
pub fn tag_specifications(p: &Params, resource_type: &str) -> Result<Vec<(String, String)>, Ec2Error> {
    tag_specifications_among(p, resource_type, &[])
}

/// What RunInstances' TagSpecification can tag: the instances, the interfaces the launch makes
/// (launch_nics) and the launch's volumes (instances.rs).
pub const LAUNCH_TAG_TYPES: &[&str] = &["instance", "network-interface", "volume"];

/// RunInstances' tags of `resource_type` (one of [`LAUNCH_TAG_TYPES`]); other types are refused.
pub fn launch_tags(p: &Params, resource_type: &str) -> Result<Vec<(String, String)>, Ec2Error> {
    let others: Vec<&str> = LAUNCH_TAG_TYPES.iter().copied().filter(|t| *t != resource_type).collect();
    tag_specifications_among(p, resource_type, &others)
}

/// The tags of `resource_type` when the action also tags resources of the `also` types (parsed
/// by another call); any other type is refused.
pub fn tag_specifications_among(
    p: &Params,
    resource_type: &str,
    also: &[&str],
) -> Result<Vec<(String, String)>, Ec2Error> {
    let mut tags: Vec<(String, String)> = Vec::new();
    for spec in p.members("TagSpecification") {
        let rt = spec.get("ResourceType").unwrap_or("");
        if also.contains(&rt) {
            continue;
        }
        if rt != resource_type {
            let types: Vec<&str> = std::iter::once(resource_type).chain(also.iter().copied()).collect();
            return Err(Ec2Error::invalid_value(
                "TagSpecification.ResourceType",
                rt,
                &format!("This action tags resources of type '{}' only.", types.join("', '")),
            ));
        }
        for t in spec.members("Tag") {
            let k = t.get("Key").unwrap_or("");
            if k.is_empty() {
                return Err(Ec2Error::missing_parameter("TagSpecification.N.Tag.M.Key"));
            }
            if k.len() > 128 || k.starts_with("aws:") {
                return Err(Ec2Error::invalid_value(
                    "TagSpecification.N.Tag.M.Key",
                    k,
                    "Tag keys are at most 128 characters and may not start with 'aws:'.",
                ));
            }
            if tags.iter().any(|(x, _)| x == k) {
                return Err(Ec2Error::invalid_value("TagSpecification.N.Tag.M.Key", k, "A tag key was given twice."));
            }
            tags.push((k.to_string(), t.get("Value").unwrap_or("").to_string()));
        }
    }
    Ok(tags)
}

/// createTags on CloudStack objects of one resource type, waited for.
pub async fn create_tags(
    ctx: &Ctx<'_>,
    cs_type: &str,
    uuids: &[&str],
    tags: &[(String, String)],
) -> Result<(), Ec2Error> {
    let mut tp = vec![pair("resourceids", &uuids.join(",")), pair("resourcetype", cs_type)];
    for (i, (k, v)) in tags.iter().enumerate() {
        tp.push((format!("tags[{i}].key"), k.clone()));
        tp.push((format!("tags[{i}].value"), v.clone()));
    }
    run_job(ctx, "createTags", &tp).await.map(|_| ())
}

/// Tags as CloudStack lists them (`[{key, value}]`), for answers made before any listing.
pub fn tag_list(tags: &[(String, String)]) -> Value {
    Value::Array(tags.iter().map(|(k, v)| json!({ "key": k, "value": v })).collect())
}

// ---------------------------------------------------------------------------------------------
// Store-held objects

/// Remove a store-held object (`[kind.X] store_records`) and the tags the gateway keeps for it
/// (best effort for the tags: they are invisible without the object, and its id is never
/// reused). False when the record could not be removed.
pub async fn forget_record(ctx: &Ctx<'_>, id: &str) -> bool {
    let me = super::vpc_objects::owner(ctx);
    for _ in 0..8 {
        let Ok(Some(r)) = ctx.ex.objects.get(&me, id).await else { return false };
        match ctx.ex.objects.write(vec![Change::Delete { id: r.id, version: r.version }]).await {
            Ok(()) => {
                let rm = TagChange::Remove { resource_id: id.to_string(), key: None, value: None };
                if super::account_tags::change(ctx, vec![rm]).await.is_err() {
                    tracing::warn!(object = id, "tags of a deleted store-held object were left in the store");
                }
                return true;
            }
            Err(WriteError::Conflict { .. }) => continue,
            Err(_) => return false,
        }
    }
    false
}

// ---------------------------------------------------------------------------------------------
// ClientToken

/// Run `make` once per (caller, action, ClientToken): a retry with the same parameters gets the
/// first answer, with other parameters IdempotentParameterMismatch. Without a token, `make` runs.
pub async fn idempotent<F>(ctx: &Ctx<'_>, make: F) -> Result<Value, Ec2Error>
where
    F: std::future::Future<Output = Result<Value, Ec2Error>>,
{
    idempotent_undo(ctx, json!({}), make).await
}

/// How long a retry waits for the first request with its token to finish elsewhere.
const TOKEN_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// `idempotent`, the record kept in the operations journal (docs/gateway-state.md) so that every
/// gateway on the store, and this one after a restart, honours the token. The record is made
/// before `make` runs: a retry arriving meanwhile waits for the first answer. A request that
/// fails frees its token; one cut short (its gateway died, or its future was dropped) is taken
/// over once its lease ends, and `undo` says what to remove then (`undo_group`: the VMs of a
/// reservation).
pub async fn idempotent_undo<F>(ctx: &Ctx<'_>, undo: Value, make: F) -> Result<Value, Ec2Error>
where
    F: std::future::Future<Output = Result<Value, Ec2Error>>,
{
    let p = &ctx.req.params;
    let Some(token) = p.get("ClientToken").filter(|t| !t.is_empty()) else { return make.await };
    if token.len() > 64 {
        return Err(Ec2Error::invalid_value("ClientToken", token, "The token is longer than 64 characters."));
    }
    let fp = page::fingerprint(&ctx.action.name, &ctx.who.access_key, p);
    let me = super::vpc_objects::owner(ctx);
    let w = Worker::of(ctx.ex);
    let mut doc = if undo.is_object() { undo } else { json!({}) };
    doc["fingerprint"] = Value::String(fp.clone());
    let mut op = w.new_op("client-token", &me, ctx.creds(), doc);
    op.token = Some(format!("{me}\u{1f}{}\u{1f}{token}", ctx.action.name));
    let unavailable = |what: &str| {
        tracing::warn!(error = %what, "operations journal unavailable for a ClientToken");
        Ec2Error::new(Code::Unavailable, "The service is unavailable. Please try again shortly.")
    };
    let started = Instant::now();
    loop {
        match ctx.ex.journal.begin(&op).await {
            Ok(None) => break,
            Err(e) => return Err(unavailable(&e)),
            Ok(Some(held)) => {
                let expired = held.created < crate::journal::now() - ctx.ex.opts.token_ttl.as_secs() as i64;
                if held.done && expired {
                    ctx.ex.journal.remove(&held.id).await.map_err(|e| unavailable(&e))?;
                    continue;
                }
                if held.doc.get("fingerprint").and_then(Value::as_str) != Some(fp.as_str()) {
                    return Err(Ec2Error::new(
                        Code::IdempotentParameterMismatch,
                        "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).",
                    ));
                }
                if held.done {
                    return Ok(held.doc.get("answer").cloned().unwrap_or(Value::Null));
                }
                // The first request is still running (here or on another gateway), or its gateway
                // died and its record waits to be taken over: nothing new is made meanwhile.
                if started.elapsed() > TOKEN_WAIT {
                    return Err(Ec2Error::new(
                        Code::Unavailable,
                        "A request with this client token is still in progress. Please try again shortly.",
                    ));
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
    let mut pending = PendingToken { journal: Some(ctx.ex.journal.clone()), op: op.clone() };
    let r = make.await;
    let journal = pending.journal.take().expect("armed");
    match r {
        Ok(answer) => {
            op.done = true;
            op.doc["answer"] = answer.clone();
            if !matches!(journal.update(&op).await, Ok(true)) {
                tracing::warn!(op = %op.id, "operations journal: could not keep a ClientToken's answer");
            }
            Ok(answer)
        }
        Err(e) => {
            // A failed request changed nothing (its undo runs on its own): the token is free.
            let _ = journal.remove(&op.id).await;
            Err(e)
        }
    }
}

/// A ClientToken record whose request was dropped before it ended: released for take-over
/// (no longer renewed), so that another sweep undoes what the request may have made.
struct PendingToken {
    journal: Option<std::sync::Arc<dyn crate::journal::Journal>>,
    op: crate::journal::Op,
}

impl Drop for PendingToken {
    fn drop(&mut self) {
        let Some(journal) = self.journal.take() else { return };
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        let mut op = self.op.clone();
        op.holder = String::new();
        rt.spawn(async move {
            let _ = journal.update(&op).await;
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Undo on failure

/// One CloudStack call that takes back something the request did.
#[derive(Debug, Clone)]
pub struct UndoCall {
    /// Let this job end first (CloudStack refuses to delete an object with a job in progress).
    pub after_job: Option<(String, String)>,
    pub command: String,
    pub params: Vec<(String, String)>,
    /// An async command whose job is waited for.
    pub wait: bool,
}

impl UndoCall {
    pub fn call(command: &str, params: Vec<(String, String)>) -> Self {
        UndoCall { after_job: None, command: command.into(), params, wait: false }
    }
    pub fn job(command: &str, params: Vec<(String, String)>) -> Self {
        UndoCall { wait: true, ..Self::call(command, params) }
    }
    pub fn after(mut self, command: &str, jobid: &str) -> Self {
        self.after_job = Some((command.into(), jobid.into()));
        self
    }
}

impl UndoCall {
    /// As the operations journal keeps it (`undo` operations, background.rs).
    pub fn to_json(&self) -> Value {
        json!({
            "after": self.after_job.as_ref().map(|(c, j)| json!([c, j])),
            "command": self.command,
            "params": self.params.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            "wait": self.wait,
        })
    }

    pub fn from_json(v: &Value) -> Option<UndoCall> {
        let after_job = match (v["after"][0].as_str(), v["after"][1].as_str()) {
            (Some(c), Some(j)) => Some((c.to_string(), j.to_string())),
            _ => None,
        };
        let params = v["params"]
            .as_array()?
            .iter()
            .filter_map(|p| Some((p.get(0)?.as_str()?.to_string(), p.get(1)?.as_str()?.to_string())))
            .collect();
        Some(UndoCall { after_job, command: v["command"].as_str()?.to_string(), params, wait: v["wait"] == true })
    }
}

/// Undo-on-failure, in the spirit of a crash cleaner: register the undo as soon as something
/// is made or changed (`made` / `changed`), `disarm` when the request succeeded, or `fail` with
/// the error: the undos run newest first and the error says what could not be removed. The undo
/// list is kept in the operations journal (kind `undo`, docs/gateway-state.md) from the first
/// registration on: a guard dropped while armed (an early `?`, a shutdown) undoes in the
/// background, and a gateway that dies mid-request leaves the undo to be taken over.
pub struct Undo<'c> {
    ctx: &'c Ctx<'c>,
    /// (EC2 id of an object this request made, if the undo removes one; the call).
    calls: Vec<(Option<String>, UndoCall)>,
    journal: Option<super::super::background::Recorded>,
}

impl<'c> Undo<'c> {
    pub fn new(ctx: &'c Ctx<'c>) -> Self {
        Undo { ctx, calls: Vec::new(), journal: None }
    }

    /// Undo that removes an object this request made (`made` = its EC2 id, named in the error
    /// when it cannot be removed).
    pub async fn made(&mut self, made: &str, call: UndoCall) {
        self.calls.push((Some(made.to_string()), call));
        self.record().await;
    }

    /// Undo that restores something this request changed (a failure is logged).
    pub async fn changed(&mut self, call: UndoCall) {
        self.calls.push((None, call));
        self.record().await;
    }

    /// The object `made` turned out not to exist after all (its create job failed): nothing to
    /// remove for it.
    pub async fn unmade(&mut self, made: &str) {
        let before = self.calls.len();
        self.calls.retain(|(m, _)| m.as_deref() != Some(made));
        if self.calls.len() != before {
            self.record().await;
        }
    }

    fn doc(&self) -> Value {
        let calls: Vec<Value> = self.calls.iter().map(|(_, c)| c.to_json()).collect();
        json!({ "action": self.ctx.action.name, "calls": calls })
    }

    async fn record(&mut self) {
        let doc = self.doc();
        match &mut self.journal {
            Some(r) => r.update(doc).await,
            None => {
                let owner = super::vpc_objects::owner(self.ctx);
                self.journal = Some(Worker::of(self.ctx.ex).record("undo", &owner, self.ctx.creds(), doc).await);
            }
        }
    }

    /// The request succeeded: keep everything.
    pub async fn disarm(mut self) {
        self.calls.clear();
        if let Some(r) = self.journal.take() {
            r.finish().await;
        }
    }

    /// The request failed with `e`: undo, newest first; answer `e`, naming what was made and
    /// could not be removed.
    pub async fn fail(mut self, mut e: Ec2Error) -> Ec2Error {
        let calls = std::mem::take(&mut self.calls);
        let mut left = Vec::new();
        for (made, c) in calls.into_iter().rev() {
            if !run_undo(self.ctx, &c).await {
                tracing::warn!(action = %self.ctx.action.name, command = %c.command, "undo failed");
                left.extend(made);
            }
        }
        if let Some(r) = self.journal.take() {
            r.finish().await;
        }
        if !left.is_empty() {
            e.message = format!("{} ({} was made and could not be removed)", e.message, left.join(", "));
        }
        e
    }
}

async fn run_undo(ctx: &Ctx<'_>, c: &UndoCall) -> bool {
    if let Some((command, jobid)) = &c.after_job {
        let _ = ctx.wait_job(command, jobid).await;
    }
    if c.wait {
        run_job(ctx, &c.command, &c.params).await.is_ok()
    } else {
        ctx.call(&c.command, &c.params).await.is_ok()
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if !self.calls.is_empty() {
            // The journal record, dropped with the guard, runs the undos in the background.
            tracing::warn!(action = %self.ctx.action.name, "request ended without disarming its undo guard; undoing in the background");
        }
    }
}
