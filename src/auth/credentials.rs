//! Who holds which keys. A `CredentialSource` answers "what is the secret (and CloudStack identity)
//! of this access key?". Sources chain: the first that knows a key wins.
//!
//! - `MemorySource`: a fixed map, seeded from the simulator's users for the embedded default.
//! - `CloudStackAdminSource`: asks CloudStack (`getUser&userapikey=`, signed with configured admin
//!   keys) on first use, caches the answer for a bounded time, forgets it when CloudStack rejects
//!   the user's keys.
//! - `StoreSource`: keys registered in the store (`SetUserKeys`, `ec2bridge register`).
//!
//! `gateway_chain` puts them in the order `serve` uses: registered keys first (a user who
//! registered keys is served with them whatever else knows the key), then the simulator's seeded
//! users, then CloudStack.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use serde_json::Value;

use crate::base::Ec2Error;
use crate::cloudstack::{CsClient, CsCredentials, CsError};

/// What a source knows of one access key. Debug never prints secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct KnownUser {
    /// The secret the client signs with (for EC2 users of CloudStack: the CloudStack secret key).
    pub secret_key: String,
    /// The keys every CloudStack call for this user is signed with.
    pub cloudstack: CsCredentials,
    /// CloudStack account name, when known.
    pub account: Option<String>,
    /// CloudStack account uuid, when the source knows it (the account number, docs/accounts.md,
    /// is derived from it; otherwise the executor asks CloudStack once).
    pub account_id: Option<String>,
}

impl KnownUser {
    /// The usual case: EC2 access/secret key = CloudStack API/secret key.
    pub fn cloudstack_user(api_key: &str, secret_key: &str, account: Option<String>) -> Self {
        KnownUser {
            secret_key: secret_key.to_string(),
            cloudstack: CsCredentials { api_key: api_key.to_string(), secret_key: secret_key.to_string() },
            account,
            account_id: None,
        }
    }

    /// The same with the account's uuid.
    pub fn with_account_id(mut self, account_id: Option<String>) -> Self {
        self.account_id = account_id.filter(|a| !a.is_empty());
        self
    }
}

impl std::fmt::Debug for KnownUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnownUser")
            .field("secret_key", &"<redacted>")
            .field("cloudstack", &self.cloudstack)
            .field("account", &self.account)
            .field("account_id", &self.account_id)
            .finish()
    }
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Implement `lookup` (and `forget` if the source caches) with `Box::pin(async move { .. })`.
pub trait CredentialSource: Send + Sync {
    /// `Ok(None)`: this source does not know the key (the next source is asked; in the end the
    /// caller gets `AuthFailure`). `Err`: the source could not answer (e.g. CloudStack down), which
    /// the client sees as that error (typically `Unavailable`, so SDKs retry).
    fn lookup<'a>(&'a self, access_key: &'a str) -> BoxFuture<'a, Result<Option<KnownUser>, Ec2Error>>;

    /// CloudStack said this user's keys are wrong (HTTP 401): drop any cached copy.
    fn forget(&self, _access_key: &str) {}
}

/// Sources asked in order; the first that knows the key wins. An error from one source is returned
/// only if no later source knows the key.
#[derive(Default, Clone)]
pub struct ChainSource {
    sources: Vec<Arc<dyn CredentialSource>>,
}

impl ChainSource {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, s: Arc<dyn CredentialSource>) -> &mut Self {
        self.sources.push(s);
        self
    }

    pub fn with(mut self, s: Arc<dyn CredentialSource>) -> Self {
        self.sources.push(s);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }
}

impl CredentialSource for ChainSource {
    fn lookup<'a>(&'a self, access_key: &'a str) -> BoxFuture<'a, Result<Option<KnownUser>, Ec2Error>> {
        Box::pin(async move {
            let mut first_err = None;
            for s in &self.sources {
                match s.lookup(access_key).await {
                    Ok(Some(u)) => return Ok(Some(u)),
                    Ok(None) => {}
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            first_err.map_or(Ok(None), Err)
        })
    }

    fn forget(&self, access_key: &str) {
        for s in &self.sources {
            s.forget(access_key);
        }
    }
}

/// A fixed set of users (the simulator's seeded users, tests).
#[derive(Default)]
pub struct MemorySource {
    users: std::sync::RwLock<HashMap<String, KnownUser>>,
}

impl MemorySource {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&self, access_key: &str, user: KnownUser) {
        self.users.write().unwrap_or_else(|p| p.into_inner()).insert(access_key.to_string(), user);
    }

    /// Users given as (CloudStack API key = EC2 access key, secret key, account): the composition
    /// layer passes the simulator's seeded users this way, so authentication never depends on
    /// the simulator's types.
    pub fn from_keys<'a>(users: impl IntoIterator<Item = (&'a str, &'a str, Option<&'a str>)>) -> Self {
        let s = Self::new();
        for (api_key, secret_key, account) in users {
            s.insert(api_key, KnownUser::cloudstack_user(api_key, secret_key, account.map(str::to_string)));
        }
        s
    }

    pub fn len(&self) -> usize {
        self.users.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl CredentialSource for MemorySource {
    fn lookup<'a>(&'a self, access_key: &'a str) -> BoxFuture<'a, Result<Option<KnownUser>, Ec2Error>> {
        let found = self.users.read().unwrap_or_else(|p| p.into_inner()).get(access_key).cloned();
        Box::pin(std::future::ready(Ok(found)))
    }
}

/// How long `StoreSource` reuses an answer of the store ("registered with this secret" or "not
/// registered"): how late a gateway sees a registration, re-registration or deletion made
/// through another gateway sharing the database. Its own are seen at once.
pub const STORE_KEYS_TTL: Duration = Duration::from_secs(1);

/// Keys registered in the store, with the store's answers reused for `STORE_KEYS_TTL` (before,
/// every request asked the database first: ~12-15% of a small DescribeInstances, bench/README.md).
/// A registration or deletion through this process (any clone of the store handle) bumps the
/// store's users generation, which drops every cached answer; a store fault is never cached.
#[derive(Clone)]
pub struct StoreSource {
    store: crate::store::Store,
    ttl: Duration,
    /// access key -> (when read, users generation before the read, the answer).
    cache: Arc<DashMap<String, Remembered>>,
}

/// When an answer was read, the users generation before the read, and the answer.
type Remembered = (Instant, u64, Option<KnownUser>);

/// Cached answers kept at most (bogus keys must not grow the cache without bound).
const STORE_KEYS_MAX: usize = 10_000;

impl StoreSource {
    pub fn new(store: crate::store::Store) -> Self {
        Self::with_ttl(store, STORE_KEYS_TTL)
    }

    pub fn with_ttl(store: crate::store::Store, ttl: Duration) -> Self {
        StoreSource { store, ttl, cache: Arc::default() }
    }

    fn cached(&self, access_key: &str, generation: u64) -> Option<Option<KnownUser>> {
        let e = self.cache.get(access_key)?;
        let (at, seen, user) = e.value();
        (*seen == generation && at.elapsed() < self.ttl).then(|| user.clone())
    }

    fn remember(&self, access_key: &str, generation: u64, user: Option<KnownUser>) {
        if self.ttl.is_zero() {
            return;
        }
        if self.cache.len() >= STORE_KEYS_MAX {
            self.cache.retain(|_, (at, _, _)| at.elapsed() < self.ttl);
            if self.cache.len() >= STORE_KEYS_MAX {
                self.cache.clear();
            }
        }
        self.cache.insert(access_key.to_string(), (Instant::now(), generation, user));
    }
}

impl CredentialSource for StoreSource {
    fn lookup<'a>(&'a self, access_key: &'a str) -> BoxFuture<'a, Result<Option<KnownUser>, Ec2Error>> {
        Box::pin(async move {
            // Read before the query: a registration committed meanwhile bumps it, so the answer
            // (possibly older than that registration) is not reused.
            let generation = self.store.users_generation();
            if let Some(hit) = self.cached(access_key, generation) {
                return Ok(hit);
            }
            match self.store.get_user_keys(access_key).await {
                Ok(Some(k)) => {
                    let account = (!k.account.is_empty()).then_some(k.account);
                    let user = KnownUser::cloudstack_user(&k.access_key, &k.secret_key, account);
                    self.remember(access_key, generation, Some(user.clone()));
                    Ok(Some(user))
                }
                Ok(None) => {
                    self.remember(access_key, generation, None);
                    Ok(None)
                }
                // The row exists but the key cannot open it: the store key was changed. Not the
                // client's fault, and not something a retry fixes.
                Err(e @ crate::store::StoreError::Decrypt { .. }) => {
                    tracing::error!(error = %e, "registered key unusable");
                    Err(Ec2Error::internal())
                }
                Err(e) => {
                    // Database unreachable or busy: SDKs retry `Unavailable`.
                    tracing::warn!(error = %e, "credential lookup in the store failed");
                    Err(Ec2Error::unavailable())
                }
            }
        })
    }

    fn forget(&self, access_key: &str) {
        self.cache.remove(access_key);
    }
}

/// The credential chain `serve` uses, first match wins: registered keys (store), the simulator's
/// seeded users, then CloudStack's own user table through admin keys. Absent sources are skipped.
pub fn gateway_chain(
    store: Option<Arc<dyn CredentialSource>>,
    seeded: Option<Arc<dyn CredentialSource>>,
    cloudstack: Option<Arc<dyn CredentialSource>>,
) -> ChainSource {
    let mut chain = ChainSource::new();
    for s in [store, seeded, cloudstack].into_iter().flatten() {
        chain.push(s);
    }
    chain
}

/// How long `CloudStackAdminSource` keeps answers.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// A known user's keys are re-read from CloudStack after this long (key rotation, disabling).
    pub ttl: Duration,
    /// An unknown key is not asked again for this long (stops floods of bogus keys reaching
    /// CloudStack).
    pub negative_ttl: Duration,
    /// At most this many cached keys.
    pub max_entries: usize,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions { ttl: Duration::from_secs(300), negative_ttl: Duration::from_secs(30), max_entries: 10_000 }
    }
}

/// Looks keys up in CloudStack with the gateway's admin keys.
pub struct CloudStackAdminSource {
    client: Arc<CsClient>,
    admin: CsCredentials,
    opts: CacheOptions,
    cache: DashMap<String, (Instant, Option<KnownUser>)>,
}

impl CloudStackAdminSource {
    pub fn new(client: Arc<CsClient>, admin: CsCredentials, opts: CacheOptions) -> Self {
        CloudStackAdminSource { client, admin, opts, cache: DashMap::new() }
    }

    fn cached(&self, access_key: &str) -> Option<Option<KnownUser>> {
        let entry = self.cache.get(access_key)?;
        let (at, user) = entry.value();
        let ttl = if user.is_some() { self.opts.ttl } else { self.opts.negative_ttl };
        (at.elapsed() < ttl).then(|| user.clone())
    }

    fn store(&self, access_key: &str, user: Option<KnownUser>) {
        if self.cache.len() >= self.opts.max_entries {
            // Drop expired entries first; if still full, drop arbitrary ones (a cache, not a store).
            let ttl = self.opts.ttl.max(self.opts.negative_ttl);
            self.cache.retain(|_, (at, _)| at.elapsed() < ttl);
            let excess = (self.cache.len() + 1).saturating_sub(self.opts.max_entries);
            let victims: Vec<String> = self.cache.iter().take(excess).map(|e| e.key().clone()).collect();
            for k in victims {
                self.cache.remove(&k);
            }
        }
        self.cache.insert(access_key.to_string(), (Instant::now(), user));
    }

    async fn fetch(&self, access_key: &str) -> Result<Option<KnownUser>, Ec2Error> {
        // `userapikey`, as CloudStack (4.3+) names it: `apikey` would collide with the admin's own
        // `apiKey`, which CloudStack matches case-insensitively (the server would then check the
        // admin's signature against the user's key and answer 401).
        let params = [("userapikey".to_string(), access_key.to_string())];
        let resp = match self.client.call(&self.admin, "getUser", &params).await {
            Ok(v) => v,
            Err(CsError::Api { errorcode: 401, .. }) => {
                tracing::error!("CloudStack rejected the gateway's admin keys (getUser answered 401)");
                return Err(Ec2Error::unavailable());
            }
            // GetUserCmd answers an unknown key with InvalidParameterValueException (431): that,
            // and only that, is a verdict on the caller. 530 and every other 5xx, a timeout or a
            // dropped connection is CloudStack's trouble: retryable, and never cached (the `?` in
            // `lookup` returns before `store`), so the user is served as soon as it recovers.
            Err(CsError::Api { errorcode: 431, .. }) => return Ok(None),
            Err(e) => {
                tracing::warn!(error = %e, "credential lookup in CloudStack failed");
                return Err(Ec2Error::unavailable());
            }
        };
        let Some(user) = resp.get("user").and_then(first_object) else { return Ok(None) };
        if user.get("apikey").and_then(Value::as_str) != Some(access_key) {
            return Ok(None);
        }
        if let Some(state) = user.get("state").and_then(Value::as_str)
            && !state.eq_ignore_ascii_case("enabled")
        {
            return Ok(None);
        }
        let account = user.get("account").and_then(Value::as_str).map(str::to_string);
        // Older releases return `secretkey` in the user object; newer ones only via getUserKeys.
        let secret = match user.get("secretkey").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            Some(s) => s.to_string(),
            None => {
                let Some(id) = user.get("id").and_then(Value::as_str) else { return Ok(None) };
                let keys =
                    self.client.call(&self.admin, "getUserKeys", &[("id".to_string(), id.to_string())]).await.map_err(
                        |e| {
                            tracing::warn!(error = %e, "getUserKeys failed");
                            Ec2Error::unavailable()
                        },
                    )?;
                match keys
                    .get("userkeys")
                    .and_then(first_object)
                    .and_then(|k| k.get("secretkey"))
                    .and_then(Value::as_str)
                {
                    Some(s) if !s.is_empty() => s.to_string(),
                    _ => return Ok(None),
                }
            }
        };
        let account_id = user.get("accountid").and_then(Value::as_str).map(str::to_string);
        Ok(Some(KnownUser::cloudstack_user(access_key, &secret, account).with_account_id(account_id)))
    }
}

/// CloudStack answers a single object either bare or as a one-element list.
fn first_object(v: &Value) -> Option<&Value> {
    match v {
        Value::Array(a) => a.first(),
        Value::Object(_) => Some(v),
        _ => None,
    }
}

impl CredentialSource for CloudStackAdminSource {
    fn lookup<'a>(&'a self, access_key: &'a str) -> BoxFuture<'a, Result<Option<KnownUser>, Ec2Error>> {
        Box::pin(async move {
            if let Some(hit) = self.cached(access_key) {
                return Ok(hit);
            }
            let user = self.fetch(access_key).await?;
            self.store(access_key, user.clone());
            Ok(user)
        })
    }

    fn forget(&self, access_key: &str) {
        self.cache.remove(access_key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Failing;
    impl CredentialSource for Failing {
        fn lookup<'a>(&'a self, _k: &'a str) -> BoxFuture<'a, Result<Option<KnownUser>, Ec2Error>> {
            Box::pin(async { Err(Ec2Error::unavailable()) })
        }
    }

    #[tokio::test]
    async fn chain_first_known_wins_and_errors_surface_only_if_unknown() {
        let a = MemorySource::new();
        a.insert("k1", KnownUser::cloudstack_user("k1", "s1", Some("acct".into())));
        let b = MemorySource::new();
        b.insert("k1", KnownUser::cloudstack_user("k1", "other", None));
        b.insert("k2", KnownUser::cloudstack_user("k2", "s2", None));
        let chain = ChainSource::new().with(Arc::new(a)).with(Arc::new(Failing)).with(Arc::new(b));
        assert_eq!(chain.lookup("k1").await.unwrap().unwrap().secret_key, "s1");
        assert_eq!(chain.lookup("k2").await.unwrap().unwrap().secret_key, "s2");
        assert_eq!(chain.lookup("nobody").await.unwrap_err().code, "Unavailable");
        let only_mem = ChainSource::new().with(Arc::new(MemorySource::new()));
        assert!(only_mem.lookup("nobody").await.unwrap().is_none());
    }

    /// Counts lookups, knows every key (stands in for CloudStack's user table).
    struct Everyone(std::sync::atomic::AtomicUsize);
    impl CredentialSource for Everyone {
        fn lookup<'a>(&'a self, k: &'a str) -> BoxFuture<'a, Result<Option<KnownUser>, Ec2Error>> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move { Ok(Some(KnownUser::cloudstack_user(k, "from-cloudstack", None))) })
        }
    }

    async fn memory_store() -> crate::store::Store {
        let key = crate::store::KeySource::Base64(crate::store::generate_key_base64().unwrap());
        crate::store::Store::open("sqlite::memory:", &key).await.unwrap()
    }

    #[tokio::test]
    async fn store_source_reads_registered_keys() {
        let store = memory_store().await;
        store.put_user_keys("AKREG", "reg/secret+1", "acct-a", "ROOT").await.unwrap();
        store.put_user_keys("AKNOACCT", "s2", "", "ROOT").await.unwrap();
        let src = StoreSource::new(store.clone());
        let u = src.lookup("AKREG").await.unwrap().unwrap();
        assert_eq!(u.secret_key, "reg/secret+1");
        assert_eq!((u.cloudstack.api_key.as_str(), u.cloudstack.secret_key.as_str()), ("AKREG", "reg/secret+1"));
        assert_eq!(u.account.as_deref(), Some("acct-a"));
        assert_eq!(src.lookup("AKNOACCT").await.unwrap().unwrap().account, None);
        assert!(src.lookup("AKNOBODY").await.unwrap().is_none());
        // Re-registration is seen at once (no cache).
        store.put_user_keys("AKREG", "rotated", "acct-a", "ROOT").await.unwrap();
        assert_eq!(src.lookup("AKREG").await.unwrap().unwrap().secret_key, "rotated");
        store.delete_user("AKREG").await.unwrap();
        assert!(src.lookup("AKREG").await.unwrap().is_none());
        // A store that cannot answer is a retryable server error, never "unknown key".
        store.close().await;
        assert_eq!(src.lookup("AKNOACCT").await.unwrap_err().code, "Unavailable");
    }

    /// Issue 13: the store's answers are reused for a short time. A registration, re-registration
    /// or deletion through this process is seen at once (the store's users generation); one
    /// through another gateway (another handle on the same database) once the TTL has passed;
    /// a store fault is never remembered.
    #[tokio::test]
    async fn store_source_caches_briefly_and_sees_its_own_registrations_at_once() {
        let dir = std::env::temp_dir().join(format!("ec2bridge-credcache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("store.db").display());
        let key = crate::store::KeySource::Base64(crate::store::generate_key_base64().unwrap());
        let mine = crate::store::Store::open(&url, &key).await.unwrap();
        let other = crate::store::Store::open(&url, &key).await.unwrap();
        let src = StoreSource::with_ttl(mine.clone(), Duration::from_secs(3600));
        // "Not registered" is remembered: another gateway's registration is not seen yet.
        assert!(src.lookup("AKNEW").await.unwrap().is_none());
        other.put_user_keys("AKNEW", "s1", "acct", "ROOT").await.unwrap();
        assert!(src.lookup("AKNEW").await.unwrap().is_none(), "answer reused within the TTL");
        // Any change through this process's handle drops every remembered answer.
        mine.put_user_keys("AKMINE", "m1", "acct", "ROOT").await.unwrap();
        assert_eq!(src.lookup("AKNEW").await.unwrap().unwrap().secret_key, "s1");
        assert_eq!(src.lookup("AKMINE").await.unwrap().unwrap().secret_key, "m1");
        mine.put_user_keys("AKMINE", "m2", "acct", "ROOT").await.unwrap();
        assert_eq!(src.lookup("AKMINE").await.unwrap().unwrap().secret_key, "m2");
        mine.delete_user("AKMINE").await.unwrap();
        assert!(src.lookup("AKMINE").await.unwrap().is_none());
        assert_eq!(src.lookup("AKNEW").await.unwrap().unwrap().secret_key, "s1");
        // Without a TTL every lookup reads the store: the other gateway's rotation at once.
        let uncached = StoreSource::with_ttl(mine.clone(), Duration::ZERO);
        other.put_user_keys("AKNEW", "s2", "acct", "ROOT").await.unwrap();
        assert_eq!(uncached.lookup("AKNEW").await.unwrap().unwrap().secret_key, "s2");
        assert_eq!(src.lookup("AKNEW").await.unwrap().unwrap().secret_key, "s1", "within the TTL");
        // CloudStack rejected the keys: forgotten, read again.
        src.forget("AKNEW");
        assert_eq!(src.lookup("AKNEW").await.unwrap().unwrap().secret_key, "s2");
        // A store that cannot answer: Unavailable, and nothing remembered for the key.
        mine.close().await;
        assert_eq!(src.lookup("AKFAULT").await.unwrap_err().code, "Unavailable");
        assert!(src.cached("AKFAULT", mine.users_generation()).is_none(), "a fault was cached");
        other.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn gateway_chain_order_store_then_seeded_then_cloudstack() {
        let store = memory_store().await;
        store.put_user_keys("AKBOTH", "registered", "reg", "ROOT").await.unwrap();
        let seeded = MemorySource::new();
        seeded.insert("AKBOTH", KnownUser::cloudstack_user("AKBOTH", "seeded", None));
        seeded.insert("AKSEED", KnownUser::cloudstack_user("AKSEED", "seeded", None));
        let cs = Arc::new(Everyone(Default::default()));
        let chain = gateway_chain(
            Some(Arc::new(StoreSource::new(store.clone()))),
            Some(Arc::new(seeded)),
            Some(cs.clone() as Arc<dyn CredentialSource>),
        );
        let calls = || cs.0.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(chain.lookup("AKBOTH").await.unwrap().unwrap().secret_key, "registered");
        assert_eq!(chain.lookup("AKSEED").await.unwrap().unwrap().secret_key, "seeded");
        assert_eq!(calls(), 0, "CloudStack must not be asked for keys an earlier source knows");
        assert_eq!(chain.lookup("AKOTHER").await.unwrap().unwrap().secret_key, "from-cloudstack");
        assert_eq!(calls(), 1);
        // Absent sources are skipped.
        let only_cs = gateway_chain(None, None, Some(cs.clone() as Arc<dyn CredentialSource>));
        assert_eq!(only_cs.lookup("AKBOTH").await.unwrap().unwrap().secret_key, "from-cloudstack");
        assert!(gateway_chain(None, None, None).is_empty());
    }

    #[test]
    fn debug_redacts_secrets() {
        let u = KnownUser::cloudstack_user("k", "very-secret", None);
        assert!(!format!("{u:?}").contains("very-secret"));
    }

    /// A CloudStack stand-in whose getUser answers with the status held in `mode` (200 = the
    /// user, 431 = unknown key, anything else = that error; 0 = never answers).
    async fn stub_cloudstack(mode: Arc<std::sync::atomic::AtomicU16>) -> String {
        use std::sync::atomic::Ordering;
        let app = axum::Router::new().route(
            "/client/api",
            axum::routing::get(move || {
                let mode = mode.clone();
                async move {
                    let status = mode.load(Ordering::SeqCst);
                    let body = match status {
                        0 => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            String::new()
                        }
                        200 => r#"{"getuserresponse":{"user":{"id":"u1","apikey":"AKUSER","secretkey":"s3cret","account":"acct","state":"enabled"}}}"#.to_string(),
                        c => format!(
                            r#"{{"getuserresponse":{{"errorcode":{c},"cserrorcode":4250,"errortext":"db host 10.9.9.9 unreachable"}}}}"#
                        ),
                    };
                    (http::StatusCode::from_u16(status.max(200)).unwrap(), body)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/client/api")
    }

    /// Issue 14 item 7: a CloudStack fault while looking a key up is `Unavailable` (503, SDKs
    /// retry), never `None` (which the caller turns into 401 AuthFailure), and is not remembered:
    /// the first call after CloudStack recovers serves the user.
    #[tokio::test]
    async fn cloudstack_fault_during_key_lookup_is_retryable_and_not_cached() {
        use std::sync::atomic::{AtomicU16, Ordering};
        let mode = Arc::new(AtomicU16::new(530));
        let url = stub_cloudstack(mode.clone()).await;
        let opts = crate::cloudstack::ClientOptions { call_timeout: Duration::from_millis(300), ..Default::default() };
        let client = Arc::new(CsClient::new(&url, opts).unwrap());
        let admin = CsCredentials { api_key: "admin".into(), secret_key: "adminsecret".into() };
        let src = CloudStackAdminSource::new(client, admin, CacheOptions::default());
        for fault in [530, 500, 502, 503, 0] {
            mode.store(fault, Ordering::SeqCst);
            let e = src.lookup("AKUSER").await.unwrap_err();
            assert_eq!((e.code.as_ref(), e.status()), ("Unavailable", 503), "fault {fault}");
            assert!(!e.message.contains("10.9.9.9"));
            assert!(src.cached("AKUSER").is_none(), "fault {fault} was cached as a verdict");
        }
        mode.store(200, Ordering::SeqCst);
        assert_eq!(src.lookup("AKUSER").await.unwrap().unwrap().secret_key, "s3cret");
        // 431 is CloudStack's answer for a key it does not know: a verdict, cached.
        mode.store(431, Ordering::SeqCst);
        assert!(src.lookup("AKOTHER").await.unwrap().is_none());
        assert_eq!(src.cached("AKOTHER"), Some(None));
    }

    #[test]
    fn admin_cache_bounds_and_forget() {
        let client = Arc::new(CsClient::new("http://127.0.0.1:1/client/api", Default::default()).unwrap());
        let admin = CsCredentials { api_key: "a".into(), secret_key: "b".into() };
        let opts =
            CacheOptions { ttl: Duration::from_secs(60), negative_ttl: Duration::from_millis(0), max_entries: 3 };
        let s = CloudStackAdminSource::new(client, admin, opts);
        s.store("neg", None);
        // Negative answers expire at once with a zero negative TTL; positive ones are kept.
        assert!(s.cached("neg").is_none());
        for i in 0..10 {
            s.store(&format!("k{i}"), Some(KnownUser::cloudstack_user("k", "s", None)));
            assert!(s.cache.len() <= 3);
        }
        assert!(s.cached("k9").unwrap().is_some());
        s.forget("k9");
        assert!(s.cached("k9").is_none());
    }
}
