//! HTTP front of the simulator: `GET`/`POST /client/api`, parameters from the query string and
//! the form body, the signature check, fault injection, dispatch to the command handlers under
//! the model lock, job creation, and CloudStack's JSON envelopes and error documents.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::Shared;
use super::auth;
use super::cmd::{Ctx, Handler, Kind, Reply};
use super::error::SimError;
use super::faults::{Before, JobFault};
use super::jobs::{self, STATUS_PENDING};
use super::model::{ACCOUNT_ROOT_ADMIN, Caller, Job};
use super::params::{Params, dedupe, normalize_names, parse_pairs};
use super::render::now_str;
use super::seed::new_uuid;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().route("/client/api", get(api).post(api)).route("/client/api/", get(api).post(api)).with_state(shared)
}

async fn api(
    State(sh): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let mut pairs = Vec::new();
    if let Some(q) = q {
        parse_pairs(&q, &mut pairs);
    }
    let post = method == Method::POST;
    if post && !body.is_empty() {
        let form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|ct| ct.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
        if form {
            parse_pairs(&String::from_utf8_lossy(&body), &mut pairs);
        }
    }
    handle(sh, pairs, post).await
}

fn json_response(status: u16, body: &Value) -> Response {
    text_response(status, body.to_string())
}

fn text_response(status: u16, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=UTF-8"));
    r
}

fn envelope(name: &str, inner: Value) -> Value {
    let mut m = serde_json::Map::new();
    m.insert(name.to_string(), inner);
    Value::Object(m)
}

pub fn error_response(envelope_name: &str, e: &SimError) -> Response {
    // 432 (unsupported action) is always answered under `errorresponse`.
    let envelope_name = if e.code == 432 { "errorresponse" } else { envelope_name };
    let mut r = json_response(e.code, &envelope(envelope_name, e.body()));
    // Header values must be visible ASCII; CloudStack's texts are, ours too, but be safe.
    let desc: String = e.text.chars().map(|c| if c.is_ascii() && !c.is_ascii_control() { c } else { ' ' }).collect();
    if let Ok(v) = HeaderValue::from_str(&desc) {
        r.headers_mut().insert("X-Description", v);
    }
    r
}

/// A response whose body fails at once, so hyper aborts the connection instead of answering.
/// (A limit of 0 would make the size hint exactly 0 and hyper would send an empty 200.)
fn dropped() -> Response {
    let body = http_body_util::Limited::new(http_body_util::Full::new(Bytes::from_static(b"dropped")), 1);
    Response::new(Body::new(body))
}

/// Authenticate: the caller behind the API key, if the signature checks out.
fn authenticate(sh: &Shared, map: &std::collections::HashMap<String, String>) -> Option<Caller> {
    let m = sh.read();
    let key = auth::api_key(map)?;
    let user_seq = *m.api_keys.get(key)?;
    let user = m.users.get(user_seq)?;
    let account = m.accounts.get(user.account)?;
    if user.state != "enabled" || account.state != "enabled" {
        return None;
    }
    if !auth::verify_request(map, &user.secret_key, OffsetDateTime::now_utc()) {
        return None;
    }
    Some(Caller { user: user_seq, account: user.account, domain: account.domain, kind: account.kind })
}

pub async fn handle(sh: Arc<Shared>, pairs: Vec<(String, String)>, post: bool) -> Response {
    let map = dedupe(pairs);
    let command = map.get("command").cloned().unwrap_or_default();
    let spec = sh.registry.get(command.as_str()).copied();
    let envelope_name = match &spec {
        Some(s) => format!("{}response", s.name.to_ascii_lowercase()),
        None => "errorresponse".to_string(),
    };
    // Unknown or missing commands fail verification like a bad signature (verifyRequest).
    let (Some(spec), Some(caller)) = (spec, authenticate(&sh, &map)) else {
        return error_response(&envelope_name, &SimError::unauthorized());
    };
    let is_admin = caller.kind == ACCOUNT_ROOT_ADMIN;
    if spec.admin_only && !is_admin {
        return error_response(&envelope_name, &SimError::not_available(spec.name));
    }

    // Fault injection, before the command runs.
    if let Some(d) = sh.cfg.faults.latency(spec.name) {
        tokio::time::sleep(d).await;
    }
    match sh.cfg.faults.before(spec.name) {
        Before::Proceed => {}
        Before::Drop => return dropped(),
        Before::Fail(e) => return error_response(&envelope_name, &e.for_caller(is_admin)),
    }

    // RSA key generation is slow: do it before taking the model lock, off the async threads.
    let pregenerated_key = if spec.name == "createSSHKeyPair" {
        tokio::task::spawn_blocking(|| super::keys::generate("ec2bridge-sim")).await.ok().and_then(Result::ok)
    } else {
        None
    };
    let map = match normalize_names(map) {
        Ok(m) => m,
        Err(e) => return error_response(&envelope_name, &e),
    };
    let mut ctx = Ctx {
        p: Params::new(map, spec.name),
        caller,
        cfg: &sh.cfg,
        now: now_str(),
        jobid: new_uuid(),
        timers: Vec::new(),
        post,
        pregenerated_key,
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match spec.handler {
        Handler::Read(f) => {
            let m = sh.read();
            f(&ctx, &m).map(Reply::Value)
        }
        Handler::ReadRaw(f) => {
            let m = sh.read();
            f(&ctx, &m).map(Reply::Raw)
        }
        Handler::Write(f) => {
            let mut m = sh.write();
            let reply = f(&mut ctx, &mut m);
            // Register the job under the same lock, so a poll right after the answer finds it.
            if let Ok(Reply::Job(j)) = &reply {
                let seq = m.next_seq();
                m.jobs.insert(
                    seq,
                    Job {
                        id: ctx.jobid.clone(),
                        account: caller.account,
                        user: caller.user,
                        cmd: spec.class,
                        status: STATUS_PENDING,
                        result_code: 0,
                        result: None,
                        instance_type: j.instance_type,
                        instance_id: j.instance_id.clone(),
                        created: ctx.now.clone(),
                        completed: None,
                    },
                );
                if let Some(k) = &j.lock {
                    m.busy.entry(k.clone()).or_default().push_back(ctx.jobid.clone());
                }
            }
            reply
        }
    }));
    let timers = std::mem::take(&mut ctx.timers);
    jobs::spawn_timers(&sh, timers);
    let reply = match outcome {
        Ok(Ok(_)) if sh.cfg.faults.drop_after(spec.name) => {
            // The command ran (its job registered above); only its answer is lost. The job
            // itself still runs: the client cannot tell this from a drop before it ran.
            if let Ok(Ok(Reply::Job(j))) = outcome {
                let fault: JobFault = sh.cfg.faults.job(spec.name);
                let delay = sh.cfg.job_delay(spec.name) + sh.cfg.faults.job_delay(spec.name).unwrap_or_default();
                jobs::spawn_job(sh.clone(), ctx.jobid.clone(), j.lock, delay, fault, j.run);
            }
            return dropped();
        }
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return error_response(&envelope_name, &e.for_caller(is_admin)),
        Err(_) => {
            tracing::error!(command = spec.name, "simulator handler panicked");
            return error_response(&envelope_name, &SimError::internal("Internal error").for_caller(is_admin));
        }
    };
    match reply {
        Reply::Value(v) => json_response(200, &envelope(&envelope_name, v)),
        Reply::Raw(inner) => {
            let mut body = String::with_capacity(inner.len() + envelope_name.len() + 8);
            body.push_str("{\"");
            body.push_str(&envelope_name);
            body.push_str("\":");
            body.push_str(&inner);
            body.push('}');
            text_response(200, body)
        }
        Reply::Job(j) => {
            let body = match (spec.kind, &j.create_id) {
                (Kind::AsyncCreate, Some(id)) => json!({"id": id, "jobid": ctx.jobid}),
                _ => json!({"jobid": ctx.jobid}),
            };
            let fault: JobFault = sh.cfg.faults.job(spec.name);
            let delay = sh.cfg.job_delay(spec.name) + sh.cfg.faults.job_delay(spec.name).unwrap_or_default();
            jobs::spawn_job(sh.clone(), ctx.jobid.clone(), j.lock, delay, fault, j.run);
            json_response(200, &envelope(&envelope_name, body))
        }
    }
}
