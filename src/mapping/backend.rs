//! The executor's view of CloudStack: the four client operations behind a trait, so that the
//! executor runs against `CsClient` in production and against canned answers in unit tests.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use serde_json::Value;

use crate::base::fields::{PickFlat, Scalar};
use crate::cloudstack::{CsClient, CsCredentials, CsError, JobStarted};
pub use crate::ids::BoxFuture;

/// One page of a list and CloudStack's count of the whole list.
pub type CountedPage = (Vec<Value>, usize);

pub trait Backend: Send + Sync {
    fn call<'a>(
        &'a self,
        creds: &'a CsCredentials,
        command: &'a str,
        params: &'a [(String, String)],
    ) -> BoxFuture<'a, Result<Value, CsError>>;

    fn list_all<'a>(
        &'a self,
        creds: &'a CsCredentials,
        command: &'a str,
        params: &'a [(String, String)],
        item_key: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Value>, CsError>>;

    /// `list_all` for a caller that reads only the fields `names` of each item: each page's items
    /// reach `each` as those fields, flat, `names.len()` per item (`CsClient::list_all_picked`).
    /// This default picks them from `list_all`'s items written out as JSON.
    fn list_all_picked<'a>(
        &'a self,
        creds: &'a CsCredentials,
        command: &'a str,
        params: &'a [(String, String)],
        item_key: &'a str,
        names: &'a [&'a str],
        each: &'a mut (dyn FnMut(&[Scalar<'_>]) -> Result<(), CsError> + Send),
    ) -> BoxFuture<'a, Result<(), CsError>> {
        Box::pin(async move {
            let items = self.list_all(creds, command, params, item_key).await?;
            let text = serde_json::to_string(&items).map_err(|e| CsError::BadResponse(format!("{command}: {e}")))?;
            let bad = |e: serde_json::Error| CsError::BadResponse(format!("{command}: {e}"));
            let mut de = serde_json::Deserializer::from_str(&text);
            let (_, fields) = serde::de::DeserializeSeed::deserialize(PickFlat(names), &mut de).map_err(bad)?;
            each(&fields)
        })
    }

    /// `list_all` with each item object holding only the fields named in `keep` (sorted). The
    /// client never builds the others (`base::fields::project`); this default removes them.
    fn list_all_fields<'a>(
        &'a self,
        creds: &'a CsCredentials,
        command: &'a str,
        params: &'a [(String, String)],
        item_key: &'a str,
        keep: &'a crate::base::fields::Keep,
    ) -> BoxFuture<'a, Result<Vec<Value>, CsError>> {
        Box::pin(async move {
            let mut items = self.list_all(creds, command, params, item_key).await?;
            retain_fields(&mut items, keep);
            Ok(items)
        })
    }

    /// `list_page` with each item object holding only the fields named in `keep` (sorted).
    #[allow(clippy::too_many_arguments)]
    fn list_page_fields<'a>(
        &'a self,
        creds: &'a CsCredentials,
        command: &'a str,
        params: &'a [(String, String)],
        item_key: &'a str,
        page: usize,
        pagesize: usize,
        keep: &'a crate::base::fields::Keep,
    ) -> BoxFuture<'a, Result<Option<CountedPage>, CsError>> {
        Box::pin(async move {
            let mut page = self.list_page(creds, command, params, item_key, page, pagesize).await?;
            if let Some((items, _)) = &mut page {
                retain_fields(items, keep);
            }
            Ok(page)
        })
    }

    /// One page (1-based) of a list command and CloudStack's count of the whole list. `Ok(None)`:
    /// this backend cannot say where the list ends (no `count`), and the caller lists it all.
    fn list_page<'a>(
        &'a self,
        _creds: &'a CsCredentials,
        _command: &'a str,
        _params: &'a [(String, String)],
        _item_key: &'a str,
        _page: usize,
        _pagesize: usize,
    ) -> BoxFuture<'a, Result<Option<CountedPage>, CsError>> {
        Box::pin(std::future::ready(Ok(None)))
    }

    fn start_job<'a>(
        &'a self,
        creds: &'a CsCredentials,
        command: &'a str,
        params: &'a [(String, String)],
    ) -> BoxFuture<'a, Result<JobStarted, CsError>>;

    fn wait_job<'a>(
        &'a self,
        creds: &'a CsCredentials,
        command: &'a str,
        jobid: &'a str,
    ) -> BoxFuture<'a, Result<Value, CsError>>;

    /// How soon a job is first polled, and how long it is waited for at most (`wait_job`'s
    /// `poll_initial` and `job_timeout`).
    fn job_polling(&self) -> (Duration, Option<Duration>) {
        let d = crate::cloudstack::ClientOptions::default();
        (d.poll_initial, Some(d.job_timeout))
    }
}

/// Keep only the fields named in `keep` of each object (`base::fields::project`'s names).
pub fn retain_fields(items: &mut [Value], keep: &crate::base::fields::Keep) {
    crate::base::fields::retain(items, keep);
}

impl Backend for CsClient {
    fn call<'a>(
        &'a self,
        creds: &'a CsCredentials,
        command: &'a str,
        params: &'a [(String, String)],
    ) -> BoxFuture<'a, Result<Value, CsError>> {
        Box::pin(CsClient::call(self, creds, command, params))
    }

    fn list_all<'a>(
        &'a self,
        creds: &'a CsCredentials,
        command: &'a str,
        params: &'a [(String, String)],
        item_key: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Value>, CsError>> {
        Box::pin(CsClient::list_all(self, creds, command, params, item_key))
    }

    fn list_all_picked<'a>(
        &'a self,
        creds: &'a CsCredentials,
        command: &'a str,
        params: &'a [(String, String)],
        item_key: &'a str,
        names: &'a [&'a str],
        each: &'a mut (dyn FnMut(&[Scalar<'_>]) -> Result<(), CsError> + Send),
    ) -> BoxFuture<'a, Result<(), CsError>> {
        Box::pin(CsClient::list_all_picked(self, creds, command, params, item_key, names, each))
    }

    fn list_all_fields<'a>(
        &'a self,
        creds: &'a CsCredentials,
        command: &'a str,
        params: &'a [(String, String)],
        item_key: &'a str,
        keep: &'a crate::base::fields::Keep,
    ) -> BoxFuture<'a, Result<Vec<Value>, CsError>> {
        Box::pin(async move { CsClient::list_all_projected(self, creds, command, params, item_key, keep).await })
    }

    fn list_page_fields<'a>(
        &'a self,
        creds: &'a CsCredentials,
        command: &'a str,
        params: &'a [(String, String)],
        item_key: &'a str,
        page: usize,
        pagesize: usize,
        keep: &'a crate::base::fields::Keep,
    ) -> BoxFuture<'a, Result<Option<CountedPage>, CsError>> {
        Box::pin(async move {
            let (items, count) =
                CsClient::list_page_projected(self, creds, command, params, item_key, page, pagesize, keep).await?;
            // Without `count` the window cannot say whether a next page exists.
            Ok(count.and_then(|c| usize::try_from(c).ok()).map(|c| (items, c)))
        })
    }

    fn list_page<'a>(
        &'a self,
        creds: &'a CsCredentials,
        command: &'a str,
        params: &'a [(String, String)],
        item_key: &'a str,
        page: usize,
        pagesize: usize,
    ) -> BoxFuture<'a, Result<Option<CountedPage>, CsError>> {
        Box::pin(async move {
            let (items, count) = CsClient::list_page(self, creds, command, params, item_key, page, pagesize).await?;
            // Without `count` the window cannot say whether a next page exists.
            Ok(count.and_then(|c| usize::try_from(c).ok()).map(|c| (items, c)))
        })
    }

    fn start_job<'a>(
        &'a self,
        creds: &'a CsCredentials,
        command: &'a str,
        params: &'a [(String, String)],
    ) -> BoxFuture<'a, Result<JobStarted, CsError>> {
        Box::pin(CsClient::start_job(self, creds, command, params))
    }

    fn wait_job<'a>(
        &'a self,
        creds: &'a CsCredentials,
        command: &'a str,
        jobid: &'a str,
    ) -> BoxFuture<'a, Result<Value, CsError>> {
        Box::pin(CsClient::wait_job(self, creds, command, jobid))
    }

    fn job_polling(&self) -> (Duration, Option<Duration>) {
        let o = self.options();
        (o.poll_initial, Some(o.job_timeout))
    }
}

/// Run futures concurrently on the current task and collect their outputs in order (a small
/// `join_all`, so that concurrent backend calls can borrow the request context).
pub async fn join_all<F: Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in futs.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => out[i] = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending { Poll::Pending } else { Poll::Ready(()) }
    })
    .await;
    out.into_iter().map(|o| o.expect("every future finished")).collect()
}

/// `join_all` with at most `limit` of the futures running at once (backend politeness: one EC2
/// request naming a thousand instances must not open a thousand CloudStack calls at once).
pub async fn join_limited<F: Future>(futs: Vec<F>, limit: usize) -> Vec<F::Output> {
    let sem = tokio::sync::Semaphore::new(limit.max(1));
    let sem = &sem;
    join_all(
        futs.into_iter()
            .map(|f| async move {
                let _permit = sem.acquire().await;
                f.await
            })
            .collect(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn join_all_keeps_order() {
        let futs: Vec<_> = (0..5u64)
            .map(|i| async move {
                tokio::time::sleep(std::time::Duration::from_millis(10 * (5 - i))).await;
                i
            })
            .collect();
        assert_eq!(join_all(futs).await, vec![0, 1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn join_limited_bounds_concurrency() {
        let running = std::sync::atomic::AtomicUsize::new(0);
        let peak = std::sync::atomic::AtomicUsize::new(0);
        let futs: Vec<_> = (0..20)
            .map(|i| {
                let (running, peak) = (&running, &peak);
                async move {
                    let now = running.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    peak.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                    running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    i
                }
            })
            .collect();
        assert_eq!(join_limited(futs, 4).await, (0..20).collect::<Vec<_>>());
        assert!(peak.load(std::sync::atomic::Ordering::SeqCst) <= 4);
    }
}
