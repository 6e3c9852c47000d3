//! The step library: what several steps need, written once. Field access on CloudStack
//! objects, TagSpecification, createTags, ClientToken idempotency, and the undo guard that
//! makes a failed request leave nothing half-done.

use std::time::Instant;

use serde_json::{Value, json};

use super::super::exec::{Ctx, Prepared, TokenEntry};
use super::super::expr::scalar_text;
use super::super::page;
use crate::base::{Code, Ec2Error};
use crate::cloudstack::CsError;
use crate::ec2::Params;

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
    let mut tags: Vec<(String, String)> = Vec::new();
    for spec in p.members("TagSpecification") {
        let rt = spec.get("ResourceType").unwrap_or("");
        if rt != resource_type {
            return Err(Ec2Error::invalid_value(
                "TagSpecification.ResourceType",
                rt,
                &format!("This action tags resources of type '{resource_type}' only."),
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
// ClientToken

/// Run `make` once per (caller, action, ClientToken): a retry with the same parameters gets the
/// first answer, with other parameters IdempotentParameterMismatch. Without a token, `make` runs.
pub async fn idempotent<F>(ctx: &Ctx<'_>, make: F) -> Result<Value, Ec2Error>
where
    F: std::future::Future<Output = Result<Value, Ec2Error>>,
{
    let p = &ctx.req.params;
    let Some(token) = p.get("ClientToken").filter(|t| !t.is_empty()) else { return make.await };
    if token.len() > 64 {
        return Err(Ec2Error::invalid_value("ClientToken", token, "The token is longer than 64 characters."));
    }
    let fp = page::fingerprint(&ctx.action.name, &ctx.who.access_key, p);
    let key = (ctx.who.cloudstack.api_key.clone(), format!("{}\u{0}{token}", ctx.action.name));
    let slot = ctx.ex.tokens.entry(key).or_default().clone();
    // Held across the create so that a concurrent retry waits for the first answer.
    let mut guard = slot.lock().await;
    if let Some(e) = guard.as_ref()
        && e.at.elapsed() < ctx.ex.opts.token_ttl
    {
        if e.fingerprint != fp {
            return Err(Ec2Error::new(
                Code::IdempotentParameterMismatch,
                "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).",
            ));
        }
        return Ok(e.doc.clone());
    }
    let doc = make.await?;
    *guard = Some(TokenEntry { fingerprint: fp, doc: doc.clone(), at: Instant::now() });
    drop(guard);
    if ctx.ex.tokens.len() > 100_000 {
        let ttl = ctx.ex.opts.token_ttl;
        ctx.ex
            .tokens
            .retain(|_, v| v.try_lock().map(|g| g.as_ref().is_some_and(|e| e.at.elapsed() < ttl)).unwrap_or(true));
    }
    Ok(doc)
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

/// Undo-on-failure, in the spirit of a crash cleaner: register the undo as soon as something
/// is made or changed (`push`), `disarm` when the request succeeded, or `fail` with the error:
/// the undos run newest first and the error says what could not be removed. A guard dropped
/// while armed (an early `?`) still undoes, in the background.
pub struct Undo<'c> {
    ctx: &'c Ctx<'c>,
    /// (EC2 id of an object this request made, if the undo removes one; the call).
    calls: Vec<(Option<String>, UndoCall)>,
}

impl<'c> Undo<'c> {
    pub fn new(ctx: &'c Ctx<'c>) -> Self {
        Undo { ctx, calls: Vec::new() }
    }

    /// Undo that removes an object this request made (`made` = its EC2 id, named in the error
    /// when it cannot be removed).
    pub fn made(&mut self, made: &str, call: UndoCall) {
        self.calls.push((Some(made.to_string()), call));
    }

    /// Undo that restores something this request changed (a failure is logged).
    pub fn changed(&mut self, call: UndoCall) {
        self.calls.push((None, call));
    }

    /// The request succeeded: keep everything.
    pub fn disarm(mut self) {
        self.calls.clear();
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
        if self.calls.is_empty() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        let calls: Vec<UndoCall> = std::mem::take(&mut self.calls).into_iter().rev().map(|(_, c)| c).collect();
        let backend = self.ctx.ex.backend.clone();
        let creds = self.ctx.creds().clone();
        let action = self.ctx.action.name.clone();
        tracing::warn!(action = %action, "request ended without disarming its undo guard; undoing in the background");
        rt.spawn(async move {
            for c in calls {
                if let Some((command, jobid)) = &c.after_job {
                    let _ = backend.wait_job(&creds, command, jobid).await;
                }
                let ok = if c.wait {
                    match backend.start_job(&creds, &c.command, &c.params).await {
                        Ok(j) => backend.wait_job(&creds, &c.command, &j.jobid).await.is_ok(),
                        Err(_) => false,
                    }
                } else {
                    backend.call(&creds, &c.command, &c.params).await.is_ok()
                };
                if !ok {
                    tracing::warn!(action = %action, command = %c.command, "background undo failed");
                }
            }
        });
    }
}
