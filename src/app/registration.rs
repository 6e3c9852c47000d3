//! The registration endpoint's ports (src/ec2/registration.rs) implemented by the application's
//! parts: the store keeps keys and certificates, CloudStack checks a pair of keys.

use crate::base::{Code, Ec2Error};
use crate::cloudstack::{CsClient, CsCredentials, CsError};
use crate::ec2::registration::{AccountOf, BoxFuture, KeyCheck, KeyChecker, PutCertificate, RegistrationStore};

/// The real store (sqlx; secrets sealed at rest).
impl RegistrationStore for crate::store::Store {
    fn put_user_keys<'a>(
        &'a self,
        access_key: &'a str,
        secret_key: &'a str,
        owner: &'a AccountOf,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            Ok(crate::store::Store::put_user_keys(self, access_key, secret_key, &owner.account, &owner.domain).await?)
        })
    }
    fn user_secret<'a>(&'a self, access_key: &'a str) -> BoxFuture<'a, anyhow::Result<Option<String>>> {
        Box::pin(async move { Ok(self.get_user_keys(access_key).await?.map(|u| u.secret_key)) })
    }
    fn put_certificate<'a>(
        &'a self,
        access_key: &'a str,
        pem: &'a str,
        proven: bool,
    ) -> BoxFuture<'a, anyhow::Result<PutCertificate>> {
        Box::pin(async move {
            match crate::store::Store::put_certificate_proven(self, access_key, pem, proven).await {
                Ok(_) => Ok(PutCertificate::Stored),
                Err(crate::store::StoreError::CertificateInUse) => Ok(PutCertificate::TakenByOther),
                Err(e) => Err(e.into()),
            }
        })
    }
    fn find_certificate<'a>(&'a self, fingerprint: &'a str) -> BoxFuture<'a, anyhow::Result<Option<String>>> {
        Box::pin(
            async move { Ok(crate::store::Store::find_certificate(self, fingerprint).await?.map(|c| c.access_key)) },
        )
    }
    fn delete_certificate<'a>(&'a self, access_key: &'a str) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move { Ok(crate::store::Store::delete_certificate(self, access_key).await? > 0) })
    }
    fn claim_once<'a>(
        &'a self,
        digest: [u8; 32],
        until_unix: i64,
        now_unix: i64,
    ) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(
            async move { Ok(crate::store::Store::claim_once(self, &hex::encode(digest), until_unix, now_unix).await?) },
        )
    }
}

/// `listAccounts` signed with the keys: any user may call it and it names the user's account.
impl KeyChecker for CsClient {
    fn check<'a>(&'a self, access_key: &'a str, secret_key: &'a str) -> BoxFuture<'a, Result<KeyCheck, Ec2Error>> {
        Box::pin(async move {
            let creds = CsCredentials { api_key: access_key.to_string(), secret_key: secret_key.to_string() };
            match self.call(&creds, "listAccounts", &[("listall".to_string(), "false".to_string())]).await {
                Ok(v) => {
                    let first = v.get("account").and_then(|a| a.get(0));
                    let field =
                        |k: &str| first.and_then(|a| a.get(k)).and_then(|n| n.as_str()).unwrap_or("").to_string();
                    Ok(KeyCheck::Valid(AccountOf { account: field("name"), domain: field("domain") }))
                }
                Err(CsError::Api { errorcode: 401 | 403 | 432, .. }) => Ok(KeyCheck::Rejected),
                Err(CsError::Transport(_)) => Err(Ec2Error::unavailable()),
                Err(e) => {
                    tracing::warn!(error = %e, "CloudStack key check failed");
                    Err(Ec2Error::new(Code::InternalError, "CloudStack could not check the keys"))
                }
            }
        })
    }
}
