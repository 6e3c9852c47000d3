//! The executor's request pipeline: validate -> resolve -> (DryRun) -> produce (call / step) ->
//! after-list steps -> id check -> filter -> page -> before-render steps -> render.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use serde_json::Value;

use super::backend::{Backend, join_limited};
use super::convert::{Env, Vars};
use super::expr::scalar_text;
use super::filter::FilterSet;
use super::table::{Action, CallSpec, Completion, IdsBackend, ParamSource, Returns, Table};
use super::{check, cserr, page, render, resolve, steps};
use crate::auth::Principal;
use crate::base::fields::Scalar;
use crate::base::{Code, Ec2Error};
use crate::cloudstack::{CsCredentials, CsError, JobStarted};
use crate::ec2::Ec2Request;
use crate::ec2::request::Filter;
use crate::ids::{self, IdCache, Kind};

/// A region this gateway answers for.
#[derive(Debug, Clone)]
pub struct RegionInfo {
    pub name: String,
    /// `host[:port]` clients reach the gateway at (boto 2 builds connections from it). Empty for
    /// a region after the first: served by this gateway, reported like the first one.
    pub endpoint: String,
}

#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The first one is this gateway's region (regionName of its zones).
    pub regions: Vec<RegionInfo>,
    /// How long zones, offerings and key pair lists are reused.
    pub metadata_ttl: Duration,
    /// How long a terminated instance stays visible in DescribeInstances (EC2: about an hour).
    pub tombstone_ttl: Duration,
    /// How long a ClientToken and its answer are remembered.
    pub token_ttl: Duration,
    /// Tombstones kept per owner at most (the oldest go first).
    pub tombstone_keep: usize,
    /// How long an operation in the journal stays leased to this gateway without renewal;
    /// past it another gateway (or this one after a restart) takes it over.
    pub lease: Duration,
    /// Upper bound on instances one RunInstances call deploys.
    pub max_run_count: i64,
    /// Deploy calls in flight at once for one RunInstances.
    pub deploy_concurrency: usize,
    /// Other CloudStack calls in flight at once for one EC2 request (per-id commands).
    pub call_concurrency: usize,
    /// Admin keys, used for one thing only: `listAccounts` to learn the uuids (hence the
    /// account numbers, docs/accounts.md) of other tenants' accounts that answers name.
    pub admin: Option<CsCredentials>,
    /// Qualifies the owner of everything this executor keeps in the store (records, tags,
    /// tombstones, journal operations): `None` in the default region, so a single-region store
    /// reads as before; a region's name in the others, because two CloudStacks may well have
    /// accounts of the same name (docs/gateway-state.md "Regions").
    pub store_scope: Option<String>,
}

impl Default for ExecutorOptions {
    fn default() -> Self {
        ExecutorOptions {
            regions: vec![RegionInfo { name: "us-east-1".into(), endpoint: "127.0.0.1:7080".into() }],
            metadata_ttl: Duration::from_secs(60),
            tombstone_ttl: Duration::from_secs(3600),
            token_ttl: Duration::from_secs(24 * 3600),
            tombstone_keep: 1000,
            lease: Duration::from_secs(30),
            max_run_count: 100,
            deploy_concurrency: 8,
            call_concurrency: 16,
            admin: None,
            store_scope: None,
        }
    }
}

#[derive(Default)]
pub struct ActionCounters {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    pub backend_calls: AtomicU64,
}

pub struct Inner {
    pub table: Table,
    pub backend: Arc<dyn Backend>,
    pub ids: Arc<dyn IdCache>,
    /// Gateway-held VPC objects (docs/vpc.md "The store").
    pub objects: Arc<dyn crate::objects::ObjectStore>,
    pub opts: ExecutorOptions,
    pub meta: DashMap<String, (Instant, Arc<Vec<Value>>)>,
    /// The operations journal and tombstones (docs/gateway-state.md), in the store.
    pub journal: Arc<dyn crate::journal::Journal>,
    /// This process, as the holder of the journal operations it works on.
    pub holder: String,
    pub counters: DashMap<String, Arc<ActionCounters>>,
    /// The CloudStack user behind each access key (`identity::caller`), with when it was read.
    pub callers: DashMap<String, (Instant, Arc<super::identity::Caller>)>,
    /// CloudStack account name -> uuid, learned with the admin keys (docs/accounts.md); an
    /// empty uuid marks a name several domains use.
    pub accounts: Arc<DashMap<String, String>>,
    /// When the account list was last read with the admin keys.
    pub accounts_read: Mutex<Option<Instant>>,
    /// Listings shared by the pages of one paging walk, by what they are and the walk's request
    /// fingerprint (`Ctx::walk_get`; docs/mappings.md "Paging").
    pub walks: DashMap<String, Walk>,
    /// Listed items are read whole, not with only the fields the action reads
    /// (`project::item_fields`): only for tests that compare the two (`Executor::whole_items`).
    pub whole_items: std::sync::atomic::AtomicBool,
    /// The deploys `watch-launch` operations wait for, polled together per API key.
    pub deploys: Arc<super::deploy_watch::DeployWatch>,
}

/// A listing made by the first page of a paging walk, reused by the pages after it.
pub struct Walk {
    pub at: Instant,
    /// The store owner (`vpc_objects::owner`) whose changes through this gateway drop it.
    pub owner: String,
    pub data: Arc<dyn std::any::Any + Send + Sync>,
}

/// How long the pages of a walk reuse its first page's listing.
pub const WALK_TTL: Duration = Duration::from_secs(30);
/// At most this many walks' listings are held (the oldest goes first).
const WALKS_MAX: usize = 16;

/// Resolved inputs of one request.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    /// CloudStack parameters made from the action's `params`.
    pub params: Vec<(String, String)>,
    /// A parameter with several values: one call per value.
    pub fanout: Option<(String, Vec<String>)>,
    /// Requested ids: (EC2 id, uuid), in request order.
    pub ids: Vec<(String, String)>,
}

/// Everything one request needs; handed to resolvers and steps.
pub struct Ctx<'a> {
    pub ex: &'a Inner,
    pub req: &'a Ec2Request,
    pub who: &'a Principal,
    pub action: &'a Action,
    pub vars: Vars,
    pub calls: AtomicU32,
    pub ids_seen: Mutex<crate::ids::SeenIds>,
    /// EC2 ids named in the request (for error messages).
    pub err_ids: Vec<String>,
}

impl<'a> Ctx<'a> {
    pub fn creds(&self) -> &CsCredentials {
        &self.who.cloudstack
    }

    /// `ids::ec2_id`, remembered for the id cache (recorded once the answer is made).
    pub fn ec2_id(&self, kind: Kind, uuid: &str) -> String {
        self.ids_seen.lock().unwrap_or_else(|e| e.into_inner()).id(kind, uuid)
    }

    pub fn env(&self) -> Env<'_> {
        Env { table: &self.ex.table, vars: &self.vars, ids: &self.ids_seen }
    }

    pub fn err(&self, e: CsError) -> Ec2Error {
        if !matches!(e, CsError::Api { .. } | CsError::JobFailed { .. }) {
            tracing::warn!(action = %self.action.name, error = %e, "backend failure");
        }
        cserr::map(&self.ex.table, &e, &self.err_ids, Some(&self.req.params))
    }

    fn count(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    pub async fn call(&self, command: &str, params: &[(String, String)]) -> Result<Value, Ec2Error> {
        self.count();
        tracing::debug!(command, "cloudstack call");
        self.ex.backend.call(self.creds(), command, params).await.map_err(|e| self.err(e))
    }

    /// A call whose CloudStack failure the caller inspects itself (e.g. a 431 that means "absent").
    pub async fn call_raw(&self, command: &str, params: &[(String, String)]) -> Result<Value, CsError> {
        self.count();
        tracing::debug!(command, "cloudstack call");
        self.ex.backend.call(self.creds(), command, params).await
    }

    /// The key of this request's paging walk for listing `what`: None when the request does not
    /// page (no MaxResults and no NextToken).
    fn walk_key(&self, what: &str) -> Option<String> {
        let p = &self.req.params;
        if p.get("MaxResults").is_none() && p.get("NextToken").is_none_or(str::is_empty) {
            return None;
        }
        Some(format!("{what}\u{0}{}", page::fingerprint(&self.action.name, &self.who.access_key, p)))
    }

    /// The listing `what` the first page of this paging walk made, for a request that continues
    /// the walk (NextToken given) within `WALK_TTL`; None otherwise (list afresh).
    pub fn walk_get<T: std::any::Any + Send + Sync>(&self, what: &str) -> Option<Arc<T>> {
        self.req.params.get("NextToken").filter(|t| !t.is_empty())?;
        let key = self.walk_key(what)?;
        let w = self.ex.walks.get(&key)?;
        if w.at.elapsed() >= WALK_TTL {
            return None;
        }
        w.data.clone().downcast::<T>().ok()
    }

    /// Keep listing `what` for the next pages of this walk (nothing when the request does not
    /// page).
    pub fn walk_put<T: std::any::Any + Send + Sync>(&self, what: &str, data: Arc<T>) {
        let Some(key) = self.walk_key(what) else { return };
        let walks = &self.ex.walks;
        if walks.len() >= WALKS_MAX {
            walks.retain(|_, w| w.at.elapsed() < WALK_TTL);
        }
        while walks.len() >= WALKS_MAX {
            let oldest = walks.iter().min_by_key(|w| w.at).map(|w| w.key().clone());
            match oldest {
                Some(k) => walks.remove(&k),
                None => break,
            };
        }
        let owner = super::steps::vpc_objects::owner(self);
        walks.insert(key, Walk { at: Instant::now(), owner, data });
    }

    /// Drop this caller's cached lists of `command` (after a create or delete changed them).
    pub fn forget_cached(&self, command: &str) {
        let prefix = self.meta_key(command, &[]);
        self.ex.meta.retain(|k, _| !k.starts_with(&prefix));
    }

    pub async fn list(&self, command: &str, params: &[(String, String)], items: &str) -> Result<Vec<Value>, Ec2Error> {
        self.count();
        tracing::debug!(command, "cloudstack list");
        self.ex.backend.list_all(self.creds(), command, params, items).await.map_err(|e| self.err(e))
    }

    /// `list` for a step that reads only the fields `names` of each item: each page's items
    /// reach `each` as those fields, flat, `names.len()` per item (`Backend::list_all_picked`).
    pub async fn list_picked(
        &self,
        command: &str,
        params: &[(String, String)],
        items: &str,
        names: &[&str],
        each: &mut (dyn FnMut(&[Scalar<'_>]) -> Result<(), CsError> + Send),
    ) -> Result<(), Ec2Error> {
        self.count();
        tracing::debug!(command, "cloudstack list");
        self.ex
            .backend
            .list_all_picked(self.creds(), command, params, items, names, each)
            .await
            .map_err(|e| self.err(e))
    }

    /// The fields of the listed items this action reads, when it reads only some
    /// (`project::item_fields`).
    pub fn item_fields(&self) -> Option<&crate::base::fields::Keep> {
        if self.ex.whole_items.load(Ordering::Relaxed) {
            return None;
        }
        self.ex.table.item_fields.get(&self.action.name)
    }

    fn meta_key(&self, command: &str, params: &[(String, String)]) -> String {
        let mut k = format!("{}\u{0}{command}", self.who.cloudstack.api_key);
        for (n, v) in params {
            k.push('\u{0}');
            k.push_str(n);
            k.push('=');
            k.push_str(v);
        }
        k
    }

    /// A list that rarely changes (zones, offerings), reused for `metadata_ttl`.
    pub async fn list_cached(
        &self,
        command: &str,
        params: &[(String, String)],
        items: &str,
    ) -> Result<Arc<Vec<Value>>, Ec2Error> {
        let key = self.meta_key(command, params);
        if let Some(e) = self.ex.meta.get(&key)
            && e.0.elapsed() < self.ex.opts.metadata_ttl
        {
            crate::ops::metrics::global().cache("cloudstack_metadata", true);
            return Ok(e.1.clone());
        }
        crate::ops::metrics::global().cache("cloudstack_metadata", false);
        self.list_refresh(command, params, items).await
    }

    /// Fetch a cached list anew (after a miss that a new object may explain).
    pub async fn list_refresh(
        &self,
        command: &str,
        params: &[(String, String)],
        items: &str,
    ) -> Result<Arc<Vec<Value>>, Ec2Error> {
        let key = self.meta_key(command, params);
        let fresh = Arc::new(self.list(command, params, items).await?);
        if self.ex.meta.len() > 10_000 {
            self.ex.meta.clear();
        }
        self.ex.meta.insert(key, (Instant::now(), fresh.clone()));
        Ok(fresh)
    }

    /// The first cached item `pred` accepts; on a miss the list is fetched once more.
    pub async fn find_cached(
        &self,
        command: &str,
        params: &[(String, String)],
        items: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Option<Value>, Ec2Error> {
        let l = self.list_cached(command, params, items).await?;
        if let Some(v) = l.iter().find(|v| pred(v)) {
            return Ok(Some(v.clone()));
        }
        let l = self.list_refresh(command, params, items).await?;
        Ok(l.iter().find(|v| pred(v)).cloned())
    }

    pub async fn start_job(&self, command: &str, params: &[(String, String)]) -> Result<JobStarted, Ec2Error> {
        self.count();
        tracing::debug!(command, "cloudstack async command");
        self.ex.backend.start_job(self.creds(), command, params).await.map_err(|e| self.err(e))
    }

    /// Wait for a job this request started. A mutating request whose wait ends without knowing
    /// the job's outcome (the job deadline passed, or CloudStack stopped answering the polls)
    /// answers `IncorrectState` (400), never a retryable 5xx: the job is committed in CloudStack
    /// and may still complete, and an SDK retrying a 5xx would make the change twice
    /// (docs/operations.md "request_timeout_secs").
    pub async fn wait_job(&self, command: &str, jobid: &str) -> Result<Value, Ec2Error> {
        self.count();
        match self.ex.backend.wait_job(self.creds(), command, jobid).await {
            Ok(v) => Ok(v),
            Err(e @ (CsError::JobTimeout { .. } | CsError::Transport(_))) if !self.action.read_only() => {
                tracing::warn!(action = %self.action.name, command, jobid, error = %e, "the outcome of a started job is unknown; answered as in progress, not retryable");
                Err(cserr::outcome_unknown())
            }
            Err(e) => Err(self.err(e)),
        }
    }

    /// EC2 ids -> uuids, in order. Malformed -> `<Kind>.Malformed`; unknown after one rebuild of
    /// the cache from the caller's own listing -> `<Kind>.NotFound` naming every missing id.
    pub async fn resolve_ids(&self, kind: Kind, ec2_ids: &[String]) -> Result<Vec<String>, Ec2Error> {
        let Some(spec) = self.ex.table.kinds.get(&kind) else {
            tracing::error!(kind = kind.name(), "no [kind] entry in the mapping table");
            return Err(Ec2Error::internal());
        };
        for id in ec2_ids {
            if !ids::is_well_formed(kind, id) {
                return Err(Ec2Error::new(spec.malformed_code, spec.malformed_msg.replace("{id}", id)));
            }
        }
        let mut out: Vec<Option<String>> = Vec::with_capacity(ec2_ids.len());
        for id in ec2_ids {
            out.push(self.ex.ids.lookup(id).await);
        }
        // Objects of the kind the gateway's store holds (another gateway may have made them).
        if spec.store_records.is_some() {
            for (slot, id) in out.iter_mut().zip(ec2_ids) {
                if slot.is_none()
                    && let Some(doc) = self.store_record(kind, id).await?
                {
                    *slot = spec.id_path.eval(&doc).first().map(|v| scalar_text(v));
                }
            }
        }
        if out.iter().any(Option::is_none) && !spec.list.is_empty() {
            let mut found = std::collections::HashMap::new();
            let mut record = Vec::new();
            for l in &spec.list {
                for item in self.list(&l.command, &l.params, &l.items).await? {
                    if let Some(u) = spec.id_path.eval(&item).first().map(|v| scalar_text(v)) {
                        let e = ids::ec2_id(kind, &u);
                        found.insert(e.clone(), u.clone());
                        record.push((kind, e, u));
                    }
                }
            }
            self.ex.ids.record(record).await;
            for (slot, id) in out.iter_mut().zip(ec2_ids) {
                if slot.is_none() {
                    *slot = found.get(id).cloned();
                }
            }
        }
        let missing: Vec<&str> =
            ec2_ids.iter().zip(&out).filter(|(_, u)| u.is_none()).map(|(i, _)| i.as_str()).collect();
        if !missing.is_empty() {
            return Err(not_found(spec, &missing));
        }
        Ok(out.into_iter().map(|u| u.unwrap_or_default()).collect())
    }

    /// Like `resolve_ids`, and each id must also be in the caller's own list of its kind: the id
    /// cache is shared by every user, so knowing an id's uuid says nothing about whose it is.
    /// Another tenant's id is NotFound, exactly as an id that does not exist (one list call per
    /// kind; kinds without a list call are checked by the command itself).
    pub async fn resolve_visible_ids(&self, kind: Kind, ec2_ids: &[String]) -> Result<Vec<String>, Ec2Error> {
        let uuids = self.resolve_ids(kind, ec2_ids).await?;
        let Some(spec) = self.ex.table.kinds.get(&kind) else { return Ok(uuids) };
        if spec.list.is_empty() {
            return Ok(uuids);
        }
        let mut visible = HashSet::new();
        if spec.store_records.is_some() {
            for id in ec2_ids {
                if let Some(doc) = self.store_record(kind, id).await?
                    && let Some(u) = spec.id_path.eval(&doc).first()
                {
                    visible.insert(scalar_text(u));
                }
            }
        }
        for l in &spec.list {
            for item in self.list(&l.command, &l.params, &l.items).await? {
                if let Some(u) = spec.id_path.eval(&item).first().map(|v| scalar_text(v)) {
                    visible.insert(u);
                }
            }
        }
        let missing: Vec<&str> =
            ec2_ids.iter().zip(&uuids).filter(|(_, u)| !visible.contains(*u)).map(|(i, _)| i.as_str()).collect();
        if !missing.is_empty() {
            return Err(not_found(spec, &missing));
        }
        Ok(uuids)
    }

    /// The CloudStack account name an EC2 owner id stands for (docs/accounts.md): the caller's
    /// number, a number of an account the admin keys list, or a plain account name as it is.
    pub async fn account_name_of(&self, value: &str) -> Option<String> {
        if let Some(n) = super::convert::account_name_of(&self.vars, value) {
            return Some(n);
        }
        read_accounts(self.ex).await;
        super::convert::account_name_of(&self.vars, value)
    }

    /// The caller's store-held object of `kind` with this EC2 id (`[kind.X] store_records`), as
    /// the kind's list would answer it; None for a kind without store records.
    pub async fn store_record(&self, kind: Kind, ec2_id: &str) -> Result<Option<Value>, Ec2Error> {
        let Some(rk) = self.ex.table.kinds.get(&kind).and_then(|k| k.store_records.as_deref()) else {
            return Ok(None);
        };
        let owner = steps::vpc_objects::owner(self);
        match self.ex.objects.get(&owner, ec2_id).await {
            Ok(Some(r)) if r.kind == rk => Ok(Some(r.doc)),
            Ok(_) => Ok(None),
            Err(e) => {
                tracing::warn!(error = %e, "object store failure");
                Err(Ec2Error::internal())
            }
        }
    }

    /// Every store-held object of `kind` the caller owns, oldest first.
    pub async fn store_records(&self, kind: Kind) -> Result<Vec<Value>, Ec2Error> {
        let Some(rk) = self.ex.table.kinds.get(&kind).and_then(|k| k.store_records.as_deref()) else {
            return Ok(Vec::new());
        };
        let owner = steps::vpc_objects::owner(self);
        match self.ex.objects.list(&owner, rk).await {
            Ok(l) => Ok(l.into_iter().map(|r| r.doc).collect()),
            Err(e) => {
                tracing::warn!(error = %e, "object store failure");
                Err(Ec2Error::internal())
            }
        }
    }
}

/// Fields through which CloudStack objects (and the gateway's own records) name an account.
pub(crate) const ACCOUNT_FIELDS: &[&str] = &["account", "ownerid", "userid", "instanceownerid"];

/// The account names `v` holds, into `out`. `last` is the name found last: a listing names the
/// caller's account in nearly every item, and comparing it is cheaper than hashing it again.
fn account_names<'v>(v: &'v Value, out: &mut HashSet<&'v str>, last: &mut &'v str) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match x {
                    Value::String(s) if ACCOUNT_FIELDS.contains(&k.as_str()) && !s.is_empty() && s != *last => {
                        out.insert(s.as_str());
                        *last = s.as_str();
                    }
                    Value::String(_) => {}
                    Value::Array(_) | Value::Object(_) => account_names(x, out, last),
                    _ => {}
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| account_names(x, out, last)),
        _ => {}
    }
}

/// Before listed objects are filtered and rendered: the accounts they name that are not the
/// caller's get their uuids (hence numbers) from `listAccounts` with the admin keys, read at
/// most once per `metadata_ttl` (docs/accounts.md). Without admin keys nothing is asked.
async fn learn_accounts(ctx: &Ctx<'_>, items: &[Value]) {
    if ctx.ex.opts.admin.is_none() {
        return;
    }
    let (mut names, mut last) = (HashSet::new(), "");
    for it in items {
        account_names(it, &mut names, &mut last);
    }
    let own = ctx.vars.account_name.as_deref();
    let unknown = names
        .iter()
        .any(|n| Some(*n) != own && !crate::ids::is_account_number(n) && !ctx.vars.accounts.contains_key(*n));
    if unknown {
        read_accounts(ctx.ex).await;
    }
}

/// Read every account with the admin keys into the directory (throttled to once per
/// `metadata_ttl`). Failures are logged; the numbers then come from the names.
pub async fn read_accounts(ex: &Inner) {
    let Some(admin) = &ex.opts.admin else { return };
    {
        let mut last = ex.accounts_read.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < ex.opts.metadata_ttl) {
            return;
        }
        *last = Some(Instant::now());
    }
    let params = [("listall".to_string(), "true".to_string())];
    match ex.backend.list_all(admin, "listAccounts", &params, "account").await {
        Ok(list) => {
            let mut seen: std::collections::HashMap<String, String> = std::collections::HashMap::new();
            for a in &list {
                let (Some(name), Some(id)) =
                    (a.get("name").and_then(Value::as_str), a.get("id").and_then(Value::as_str))
                else {
                    continue;
                };
                seen.entry(name.to_string())
                    .and_modify(|u| {
                        if u != id {
                            u.clear();
                        }
                    })
                    .or_insert_with(|| id.to_string());
            }
            for (n, u) in seen {
                ex.accounts.insert(n, u);
            }
        }
        Err(e) => tracing::warn!(error = %e, "listing accounts with the admin keys failed"),
    }
}

pub fn not_found(spec: &super::table::KindSpec, missing: &[&str]) -> Ec2Error {
    let tmpl = if missing.len() == 1 { &spec.not_found_one } else { &spec.not_found_many };
    Ec2Error::new(spec.not_found_code, tmpl.replace("{ids}", &missing.join(", ")).replace("{id}", missing[0]))
}

fn present(params: &crate::ec2::Params, name: &str) -> bool {
    params.0.keys().any(|k| k == name || k.strip_prefix(name).is_some_and(|r| r.starts_with('.')))
}

/// Run one request through the pipeline.
pub async fn run(ctx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let a = ctx.action;
    let p = &ctx.req.params;
    super::params::check(a, p)?;
    for r in &a.required {
        p.require(r)?;
    }
    for group in &a.exclusive {
        let given: Vec<&String> = group.iter().filter(|n| present(p, n)).collect();
        if given.len() > 1 {
            return Err(Ec2Error::combination(format!(
                "The parameter {} cannot be used with the parameter {}",
                given[0], given[1]
            )));
        }
    }
    // Ids: shape checks first (cheap), lookups after the other validation.
    let mut req_ids: Vec<String> = Vec::new();
    if let Some(ids) = &a.ids {
        for v in p.list(&ids.param) {
            if !req_ids.iter().any(|x| x == v) {
                req_ids.push(v.to_string());
            }
        }
        if ids.required && req_ids.is_empty() {
            return Err(Ec2Error::missing_parameter(&ids.param));
        }
    }
    let fp = page::fingerprint(&a.name, &ctx.who.access_key, p);
    let ids_wire = a.ids.as_ref().filter(|_| !req_ids.is_empty()).map(|i| i.wire.as_str());
    let pg = page::read(p, a.page.as_ref(), ids_wire, &fp)?;
    let mut filters = p.filters()?;
    match &a.filters {
        Some(fs) => {
            fs.check(&filters)?;
            for (param, name) in &a.param_filters {
                let values: Vec<String> = p.list(param).into_iter().map(str::to_string).collect();
                if !values.is_empty() {
                    filters.push(Filter { name: name.clone(), values });
                }
            }
        }
        None => {
            if let Some(f) = filters.first() {
                return Err(Ec2Error::new(Code::InvalidParameterValue, format!("The filter '{}' is invalid", f.name)));
            }
        }
    }
    let mut prep = resolve_params(ctx).await?;
    if let Some(ids) = &a.ids
        && !req_ids.is_empty()
    {
        let uuids = ctx.resolve_ids(ids.kind, &req_ids).await?;
        prep.ids = req_ids.iter().cloned().zip(uuids).collect();
    }
    if p.dry_run()? {
        return Err(Ec2Error::dry_run_ok());
    }
    let checked = match &a.check {
        Some(c) => Some(check::run(ctx, c, &prep).await?),
        None => None,
    };
    // The page's window of the list, when CloudStack can be asked for just that window; with
    // the list's total, for the next token.
    let window = match &a.call {
        Some(call) => pushed_window(ctx, call, &pg, &filters, &prep).await?,
        None => None,
    };
    let total = window.as_ref().map(|(_, t)| *t);
    let produced = if let Some((items, _)) = window {
        Value::Array(items)
    } else if let Some(step) = &a.step {
        steps::run(step, ctx, &prep).await?
    } else if let Some(call) = &a.call {
        produce_call(ctx, call, &prep).await?
    } else if let Some(var) = &a.items_from {
        ctx.vars.get(var).unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    let produced = match &a.answer {
        Some(spec) => check::answer(ctx, spec, &prep, checked.as_deref(), produced),
        None => produced,
    };
    let env = ctx.env();
    let mut out = String::new();
    match &a.returns {
        Returns::True => out.push_str("<return>true</return>"),
        Returns::Object { shape } => {
            let shape = ctx.ex.table.shapes.get(shape).ok_or_else(Ec2Error::internal)?;
            // One object for a given id, read from a list call: an id the caller's list does not
            // hold (another tenant's, which the shared id cache may still know) is NotFound,
            // exactly as an id that does not exist, never an empty 200.
            if let (Some(ids), Some(_), Value::Array(_) | Value::Null) = (&a.ids, &a.call, &produced)
                && !prep.ids.is_empty()
            {
                let empty = Vec::new();
                let items = if let Value::Array(v) = &produced { v } else { &empty };
                let have: HashSet<String> =
                    items.iter().filter_map(|it| ids.path.eval(it).first().map(|v| scalar_text(v))).collect();
                let missing: Vec<&str> =
                    prep.ids.iter().filter(|(_, u)| !have.contains(u)).map(|(e, _)| e.as_str()).collect();
                if !missing.is_empty() {
                    let spec = ctx.ex.table.kinds.get(&ids.kind).ok_or_else(Ec2Error::internal)?;
                    return Err(not_found(spec, &missing));
                }
            }
            let obj = match produced {
                Value::Array(mut v) if !v.is_empty() => v.swap_remove(0),
                other => other,
            };
            render::fields(&mut out, shape, &obj, &env);
        }
        Returns::List { element, shape } => {
            let mut items = match produced {
                Value::Array(v) => v,
                Value::Null => Vec::new(),
                other => vec![other],
            };
            if let Some(d) = &a.dedupe {
                let mut seen = HashSet::new();
                items.retain(|it| seen.insert(d.eval(it).first().map(|v| scalar_text(v)).unwrap_or_default()));
            }
            learn_accounts(ctx, &items).await;
            for s in &a.after_list {
                items = steps::transform(s, ctx, &prep, items).await?;
            }
            if let Some(ids) = &a.ids
                && !prep.ids.is_empty()
            {
                let have: HashSet<String> =
                    items.iter().filter_map(|it| ids.path.eval(it).first().map(|v| scalar_text(v))).collect();
                let missing: Vec<&str> =
                    prep.ids.iter().filter(|(_, u)| !have.contains(u)).map(|(e, _)| e.as_str()).collect();
                if !missing.is_empty() {
                    let spec = ctx.ex.table.kinds.get(&ids.kind).ok_or_else(Ec2Error::internal)?;
                    return Err(not_found(spec, &missing));
                }
                if ids.backend == IdsBackend::Filter {
                    let want: HashSet<&str> = prep.ids.iter().map(|(_, u)| u.as_str()).collect();
                    items
                        .retain(|it| ids.path.eval(it).first().is_some_and(|v| want.contains(scalar_text(v).as_str())));
                }
            }
            if let Some(fs) = &a.filters {
                items.retain(|it| FilterSet::matches(fs, it, &filters, &env));
            }
            let (mut items, next) = match total {
                // Already the page: the after-list steps kept it one for one.
                Some(total) => {
                    let end = pg.offset + items.len();
                    (items, (end < total).then(|| page::token(end, &fp)))
                }
                None => page::apply(items, &pg, &fp),
            };
            for s in &a.before_render {
                items = steps::transform(s, ctx, &prep, items).await?;
            }
            let shape = ctx.ex.table.shapes.get(shape).ok_or_else(Ec2Error::internal)?;
            render::list_owned(&mut out, element, shape, items, &env);
            if let Some(t) = next {
                render::element(&mut out, "nextToken", &t);
            }
        }
    }
    let seen = ctx.ids_seen.lock().unwrap_or_else(|e| e.into_inner()).take();
    if !seen.is_empty() {
        ctx.ex.ids.record(seen).await;
    }
    Ok(out)
}

/// The action's `params` -> CloudStack parameters, through the resolvers.
pub async fn resolve_params(ctx: &Ctx<'_>) -> Result<Prepared, Ec2Error> {
    let p = &ctx.req.params;
    let mut prep = Prepared::default();
    for spec in &ctx.action.params {
        let (inputs, ec2_name): (Vec<Option<String>>, &str) = match &spec.source {
            ParamSource::Const(c) => (vec![Some(c.clone())], spec.cs_name.as_str()),
            ParamSource::One(name) => {
                let v = p.get(name).filter(|v| !v.is_empty()).map(str::to_string).or_else(|| spec.default.clone());
                (vec![v], name.as_str())
            }
            ParamSource::List(prefix) => {
                let mut l: Vec<Option<String>> = p.list(prefix).into_iter().map(|v| Some(v.to_string())).collect();
                if l.is_empty()
                    && let Some(d) = &spec.default
                {
                    l.push(Some(d.clone()));
                }
                (l, prefix.as_str())
            }
            ParamSource::Members { prefix, fields } => {
                for (i, m) in p.members(prefix).iter().enumerate() {
                    for (cs_key, member) in fields {
                        if let Some(v) = m.get(member) {
                            prep.params.push((format!("{}[{i}].{cs_key}", spec.cs_name), v.to_string()));
                        }
                    }
                }
                continue;
            }
            ParamSource::None => (vec![None], spec.cs_name.as_str()),
        };
        let mut values = Vec::new();
        for input in inputs {
            let mut cur = vec![input];
            for via in &spec.via {
                let mut next = Vec::new();
                for c in cur {
                    next.extend(resolve::apply(ctx, via, c, ec2_name).await?.into_iter().map(Some));
                }
                cur = next;
            }
            values.extend(cur.into_iter().flatten());
        }
        if values.is_empty() {
            continue;
        }
        if spec.fanout {
            prep.fanout = Some((spec.cs_name.clone(), values));
        } else {
            prep.params.push((spec.cs_name.clone(), values.join(&spec.join)));
        }
    }
    Ok(prep)
}

type CsParams = Vec<(String, String)>;

/// Paging pushed down to CloudStack (docs/performance.md): with MaxResults, and when nothing
/// needs the whole list (no filter, no id list, no fan-out, no de-duplication, no check, every
/// after-list step keeps the listed items one for one and in order), only the CloudStack pages
/// that cover the window `[offset, offset + MaxResults)` are fetched. CloudStack orders a list
/// the same whatever the page size (by id), so the window holds exactly the items `page::apply`
/// would cut from the whole list. Answers the window and the list's `count`; None (list it all)
/// when the action does not qualify or the backend gives no count.
async fn pushed_window(
    ctx: &Ctx<'_>,
    call: &CallSpec,
    pg: &page::Page,
    filters: &[Filter],
    prep: &Prepared,
) -> Result<Option<(Vec<Value>, usize)>, Ec2Error> {
    let a = ctx.action;
    let (Some(limit), Some(item_key)) = (pg.limit.filter(|l| *l > 0), &call.items) else { return Ok(None) };
    if !matches!(a.returns, Returns::List { .. })
        || !matches!(call.completion, Completion::Sync)
        || call.cache
        || a.step.is_some()
        || a.check.is_some()
        || a.dedupe.is_some()
        || !filters.is_empty()
        || !prep.ids.is_empty()
        || prep.fanout.is_some()
    {
        return Ok(None);
    }
    for s in &a.after_list {
        if !steps::keeps_window(s, ctx).await? {
            return Ok(None);
        }
    }
    let sent: Vec<(String, String)> = prep.params.iter().filter(|(k, _)| !k.starts_with('_')).cloned().collect();
    let size = limit.min(crate::cloudstack::client::PAGE_SIZE);
    let (first, last) = (pg.offset / size, (pg.offset + limit - 1) / size);
    let keep = ctx.item_fields();
    let futs = (first..=last).map(|i| {
        ctx.count();
        let (b, creds, sent) = (&ctx.ex.backend, ctx.creds(), &sent);
        match keep {
            Some(keep) => b.list_page_fields(creds, &call.command, sent, item_key, i + 1, size, keep),
            None => b.list_page(creds, &call.command, sent, item_key, i + 1, size),
        }
    });
    let pages = join_limited(futs.collect(), ctx.ex.opts.call_concurrency).await;
    let mut items = Vec::with_capacity(limit);
    let mut total = 0;
    for p in pages {
        match p.map_err(|e| ctx.err(e))? {
            Some((batch, count)) => {
                items.extend(batch);
                total = count;
            }
            None => return Ok(None),
        }
    }
    items.drain(..(pg.offset - first * size).min(items.len()));
    items.truncate(limit);
    Ok(Some((items, total)))
}

/// The generic call stage: one call, one per id (`each`), or one per fan-out value.
pub async fn produce_call(ctx: &Ctx<'_>, call: &CallSpec, prep: &Prepared) -> Result<Value, Ec2Error> {
    let a = ctx.action;
    if let Some(w) = &call.when
        && !prep.params.iter().any(|(k, v)| k == w && !v.is_empty())
    {
        // Nothing to do (DisassociateAddress of an address that is not associated).
        return Ok(Value::Null);
    }
    // `_name` parameters are checks and inputs of the gateway's own stages, never sent.
    let sent: Vec<(String, String)> = prep.params.iter().filter(|(k, _)| !k.starts_with('_')).cloned().collect();
    let mut sets: Vec<Vec<(String, String)>> = vec![sent.clone()];
    let mut req_ids: Vec<&(String, String)> = prep.ids.iter().collect();
    if call.store_delete
        && let Some(ids) = &a.ids
    {
        req_ids = delete_store_held(ctx, ids.kind, req_ids).await?;
        if req_ids.is_empty() {
            return Ok(Value::Null);
        }
    }
    if let Some(ids) = &a.ids
        && !req_ids.is_empty()
    {
        match ids.backend {
            IdsBackend::List => {
                let joined = req_ids.iter().map(|(_, u)| u.as_str()).collect::<Vec<_>>().join(",");
                sets[0].push((ids.cs_param.clone(), joined));
            }
            IdsBackend::Each => {
                sets = req_ids
                    .iter()
                    .map(|(_, u)| {
                        let mut s = sent.clone();
                        s.push((ids.cs_param.clone(), u.clone()));
                        s
                    })
                    .collect();
            }
            IdsBackend::Filter => {}
        }
    }
    let mut combos: Vec<(CsParams, Option<String>)> = Vec::new();
    for s in sets {
        match &prep.fanout {
            Some((name, values)) => {
                for v in values {
                    let mut s2 = s.clone();
                    s2.push((name.clone(), v.clone()));
                    combos.push((s2, Some(v.clone())));
                }
            }
            None => combos.push((s, None)),
        }
    }
    let futs = combos.iter().map(|(params, _)| one_call(ctx, call, params));
    let results = join_limited(futs.collect(), ctx.ex.opts.call_concurrency).await;
    for f in &call.forget {
        ctx.forget_cached(f);
    }
    let mut values = Vec::new();
    for (r, (_, fan)) in results.into_iter().zip(&combos) {
        let v = r?;
        match (call.items.is_some(), v) {
            (true, Value::Array(items)) => {
                for mut it in items {
                    if let (Some(f), Some(o)) = (fan, it.as_object_mut()) {
                        o.insert("_fanout".into(), Value::String(f.clone()));
                    }
                    values.push(it);
                }
            }
            (_, v) => values.push(v),
        }
    }
    if call.items.is_none() && values.len() == 1 {
        return Ok(values.swap_remove(0));
    }
    Ok(Value::Array(values))
}

/// `call.store = "delete"`: the requested objects the store holds leave it (with the tags the
/// gateway keeps for them); answers the ids left for CloudStack.
async fn delete_store_held<'p>(
    ctx: &Ctx<'_>,
    kind: Kind,
    ids: Vec<&'p (String, String)>,
) -> Result<Vec<&'p (String, String)>, Ec2Error> {
    let mut cloud = Vec::with_capacity(ids.len());
    for pair in ids {
        if ctx.store_record(kind, &pair.0).await?.is_some() {
            if !steps::common::forget_record(ctx, &pair.0).await {
                return Err(Ec2Error::internal());
            }
        } else {
            cloud.push(pair);
        }
    }
    Ok(cloud)
}

async fn one_call(ctx: &Ctx<'_>, call: &CallSpec, params: &[(String, String)]) -> Result<Value, Ec2Error> {
    let pick = |v: Value| match &call.result {
        Some(k) => v.get(k).cloned().unwrap_or(v),
        None => v,
    };
    match call.completion {
        Completion::Sync => match &call.items {
            Some(items) if call.cache => {
                Ok(Value::Array(ctx.list_cached(&call.command, params, items).await?.as_ref().clone()))
            }
            Some(items) => match ctx.item_fields() {
                Some(keep) => {
                    ctx.count();
                    tracing::debug!(command = %call.command, "cloudstack list");
                    let l = ctx.ex.backend.list_all_fields(ctx.creds(), &call.command, params, items, keep).await;
                    Ok(Value::Array(l.map_err(|e| ctx.err(e))?))
                }
                None => Ok(Value::Array(ctx.list(&call.command, params, items).await?)),
            },
            None if !call.empty_on.is_empty() => match ctx.call_raw(&call.command, params).await {
                Ok(v) => Ok(pick(v)),
                // "Nothing there" (GetPasswordData before the VM has a password).
                Err(CsError::Api { errorcode, .. }) if call.empty_on.contains(&errorcode) => {
                    Ok(Value::Object(serde_json::Map::new()))
                }
                Err(e) => Err(ctx.err(e)),
            },
            None => Ok(pick(ctx.call(&call.command, params).await?)),
        },
        Completion::Async | Completion::AsyncCreate => {
            let j = ctx.start_job(&call.command, params).await?;
            let mut o = serde_json::Map::new();
            if let Some(id) = j.id {
                o.insert("id".into(), Value::String(id));
            }
            o.insert("jobid".into(), Value::String(j.jobid));
            Ok(Value::Object(o))
        }
        Completion::AsyncWait => {
            let j = ctx.start_job(&call.command, params).await?;
            Ok(pick(ctx.wait_job(&call.command, &j.jobid).await?))
        }
    }
}
