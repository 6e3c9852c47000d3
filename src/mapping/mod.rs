//! The declarative action table (`mappings/*.toml`) and the executor that runs it.
//!
//! CONTRACT: the front ends call `Executor::execute`, which returns the *inner* XML of the
//! `<ActionResponse>` element (everything after `<requestId>`); the front end adds the envelope
//! (Query document or SOAP body) with the namespace of the request's version.
//!
//! Layout: `table` loads and validates the TOML (`toml_src` keeps file/line), `expr` parses value
//! expressions, `convert` holds the named converters, `resolve` the named resolvers, `filter`
//! and `page` do EC2 filters and paging, `render` writes shapes as XML, `steps` holds the named
//! Rust steps, `exec` runs the pipeline, `cserr` maps CloudStack errors by code.

pub mod actions;
pub mod backend;
pub mod background;
pub mod check;
pub mod cli;
pub mod convert;
pub mod cserr;
pub mod deploy_watch;
pub mod exec;
pub mod expr;
pub mod filter;
pub mod identity;
pub mod page;
pub mod params;
pub mod project;
pub mod render;
pub mod resolve;
pub mod steps;
pub mod table;
pub mod toml_src;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::auth::Principal;
use crate::base::{Code, Ec2Error};
use crate::cloudstack::CsClient;
use crate::ec2::Ec2Request;
use crate::ids::{IdCache, MemoryIdCache};

pub use backend::Backend;
pub use exec::{ExecutorOptions, RegionInfo};
pub use table::Table;
pub use toml_src::LoadError;

pub struct Executor {
    inner: Arc<exec::Inner>,
}

/// Per-action counters since start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionStats {
    pub action: String,
    pub requests: u64,
    pub errors: u64,
    pub backend_calls: u64,
}

/// The compiled-in table's SOAP element paths, for a gateway built without an executor's table
/// (`Gateway::new`, tests). Loaded once.
pub fn builtin_soap_paths() -> Arc<crate::ec2::soap::PathTable> {
    static P: std::sync::OnceLock<Arc<crate::ec2::soap::PathTable>> = std::sync::OnceLock::new();
    P.get_or_init(|| match Table::builtin() {
        Ok(t) => Arc::new(t.soap_paths()),
        // The built-in table is tested to load; generic flattening is the safe fallback.
        Err(_) => Arc::new(crate::ec2::soap::PathTable::generic()),
    })
    .clone()
}

fn load_table(dir: Option<&std::path::Path>) -> anyhow::Result<Table> {
    Table::load(dir).map_err(|errs| {
        let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        anyhow::anyhow!("the mapping table has {} problem(s):\n{}", errs.len(), lines.join("\n"))
    })
}

impl Executor {
    /// The compiled-in table, or a directory of `*.toml` overriding it.
    pub fn new(backend: Arc<CsClient>, table_dir: Option<&std::path::Path>) -> anyhow::Result<Self> {
        Self::with_backend(backend, table_dir, ExecutorOptions::default())
    }

    /// Same, with options (regions, cache lifetimes, RunInstances limits).
    pub fn with_options(
        backend: Arc<CsClient>,
        table_dir: Option<&std::path::Path>,
        opts: ExecutorOptions,
    ) -> anyhow::Result<Self> {
        Self::with_backend(backend, table_dir, opts)
    }

    /// Any backend (tests use canned answers).
    pub fn with_backend(
        backend: Arc<dyn Backend>,
        table_dir: Option<&std::path::Path>,
        opts: ExecutorOptions,
    ) -> anyhow::Result<Self> {
        let table = load_table(table_dir)?;
        Ok(Executor {
            inner: Arc::new(exec::Inner {
                table,
                backend,
                ids: Arc::new(MemoryIdCache::default()),
                objects: Arc::new(crate::objects::MemoryObjects::default()),
                opts,
                meta: Default::default(),
                journal: Arc::new(crate::journal::MemoryJournal::default()),
                holder: format!("gw-{}", uuid::Uuid::new_v4().simple()),
                counters: Default::default(),
                callers: Default::default(),
                accounts: Default::default(),
                accounts_read: Default::default(),
                walks: Default::default(),
                whole_items: Default::default(),
                deploys: Default::default(),
            }),
        })
    }

    /// Back the EC2 id -> uuid cache by something else (the store). Call before sharing.
    pub fn with_id_cache(mut self, cache: Arc<dyn IdCache>) -> anyhow::Result<Self> {
        let inner = Arc::get_mut(&mut self.inner).ok_or_else(|| anyhow::anyhow!("executor already shared"))?;
        inner.ids = cache;
        Ok(self)
    }

    /// Keep the gateway-held VPC objects somewhere shared (the store). Call before sharing.
    pub fn with_object_store(mut self, objects: Arc<dyn crate::objects::ObjectStore>) -> anyhow::Result<Self> {
        let inner = Arc::get_mut(&mut self.inner).ok_or_else(|| anyhow::anyhow!("executor already shared"))?;
        inner.objects = objects;
        Ok(self)
    }

    /// Keep the operations journal and tombstones somewhere shared (the store). Call before
    /// sharing.
    pub fn with_journal(mut self, journal: Arc<dyn crate::journal::Journal>) -> anyhow::Result<Self> {
        let inner = Arc::get_mut(&mut self.inner).ok_or_else(|| anyhow::anyhow!("executor already shared"))?;
        inner.journal = journal;
        Ok(self)
    }

    /// Start the journal's background loop: renew this gateway's leases, take over operations
    /// whose gateway died (at once, then every third of the lease), forget old ClientTokens.
    pub fn start_background(&self) {
        background::Worker::of(&self.inner).spawn_sweeper();
    }

    /// Read listed items whole (`on`) instead of with only the fields each action reads
    /// (`project::item_fields`), for tests that compare the answers of the two.
    #[doc(hidden)]
    pub fn whole_items(&self, on: bool) {
        self.inner.whole_items.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn table(&self) -> &Table {
        &self.inner.table
    }

    pub async fn execute(&self, req: &Ec2Request, who: &Principal) -> Result<String, Ec2Error> {
        self.execute_counted(req, who).await.0
    }

    /// `execute`, also answering how many CloudStack calls the request made.
    pub async fn execute_counted(&self, req: &Ec2Request, who: &Principal) -> (Result<String, Ec2Error>, u32) {
        let inner = &*self.inner;
        let Some(action) = inner.table.actions.get(&req.action) else {
            let e = if actions::is_ec2_action(&req.action) {
                Ec2Error::new(
                    Code::UnsupportedOperation,
                    format!("The action {} is not supported by this gateway.", req.action),
                )
            } else {
                Ec2Error::new(
                    Code::InvalidAction,
                    format!("The action {} is not valid for this web service.", req.action),
                )
            };
            return (Err(e), 0);
        };
        let region = inner.opts.regions.first();
        // This gateway's own endpoint is the host the client reached it by, when the front end
        // knows it (boto 2 connects to regionEndpoint); other regions keep their configured one
        // (empty: they are served here too).
        let own_endpoint = |r: &RegionInfo| req.host.clone().unwrap_or_else(|| r.endpoint.clone());
        let (account, account_name) = self.own_account(who).await;
        let vars = convert::Vars {
            region: region.map(|r| r.name.clone()).unwrap_or_default(),
            endpoint: region.map(own_endpoint).unwrap_or_default(),
            account,
            account_name,
            accounts: inner.accounts.clone(),
            regions: serde_json::Value::Array(
                inner
                    .opts
                    .regions
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        // A region without an endpoint of its own is served by this gateway too.
                        let endpoint = match region {
                            Some(first) if i == 0 || r.endpoint.is_empty() => own_endpoint(first),
                            _ => r.endpoint.clone(),
                        };
                        serde_json::json!({ "name": r.name, "endpoint": endpoint })
                    })
                    .collect(),
            ),
            version: req.version.clone(),
            params: req.params.clone(),
        };
        let err_ids = action
            .ids
            .as_ref()
            .map(|i| req.params.list(&i.param).into_iter().map(str::to_string).collect())
            .unwrap_or_default();
        let ctx = exec::Ctx {
            ex: inner,
            req,
            who,
            action,
            vars,
            calls: Default::default(),
            ids_seen: Default::default(),
            err_ids,
        };
        let r = exec::run(&ctx).await;
        if !action.read_only() && !inner.walks.is_empty() {
            // What this caller changed shows on the next page of a walk it is in.
            let owner = steps::vpc_objects::owner(&ctx);
            inner.walks.retain(|_, w| w.owner != owner);
        }
        let calls = ctx.calls.load(Ordering::Relaxed);
        let c = inner.counters.entry(action.name.clone()).or_default().clone();
        c.requests.fetch_add(1, Ordering::Relaxed);
        c.backend_calls.fetch_add(calls as u64, Ordering::Relaxed);
        if r.is_err() {
            c.errors.fetch_add(1, Ordering::Relaxed);
        }
        (r, calls)
    }

    /// The caller's account number and account name (docs/accounts.md): from the account uuid
    /// the credential source knew, else from `listUsers` (identity::caller, cached). A caller
    /// CloudStack cannot tell about still gets its answer, with `ownerId` from the name alone.
    async fn own_account(&self, who: &Principal) -> (Option<String>, Option<String>) {
        let inner = &*self.inner;
        let (uuid, name) = match &who.account_id {
            Some(id) => (Some(id.clone()), who.account.clone()),
            None => match identity::caller(inner, who).await {
                Ok(c) => (Some(c.account_id.clone()), Some(c.account_name.clone()).or(who.account.clone())),
                Err(e) => {
                    tracing::warn!(error = %e.message, "the caller's account could not be looked up");
                    (None, who.account.clone())
                }
            },
        };
        let number = match (&uuid, &name) {
            (Some(u), _) => Some(crate::ids::account_number(u)),
            (None, Some(n)) => Some(crate::ids::account_number(&format!("name:{n}"))),
            (None, None) => None,
        };
        (number, name)
    }

    pub fn stats(&self) -> Vec<ActionStats> {
        let mut v: Vec<ActionStats> = self
            .inner
            .counters
            .iter()
            .map(|e| ActionStats {
                action: e.key().clone(),
                requests: e.value().requests.load(Ordering::Relaxed),
                errors: e.value().errors.load(Ordering::Relaxed),
                backend_calls: e.value().backend_calls.load(Ordering::Relaxed),
            })
            .collect();
        v.sort_by(|a, b| a.action.cmp(&b.action));
        v
    }
}
