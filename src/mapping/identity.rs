//! Who the caller is, as STS and IAM tell it (docs/accounts.md): `GetCallerIdentity` and
//! `GetUser` at the EC2 endpoint, because Terraform's AWS provider and Ansible's amazon.aws
//! modules ask them for the account id before they touch EC2. Nothing else of STS or IAM.
//!
//! The caller is the CloudStack user whose API key signed the request: `listUsers` with the
//! caller's own keys shows the users of its account, and its own entry carries its API key.
//! Account = the 12-digit number of the account's uuid (the `ownerId` of every EC2 answer),
//! Arn = `arn:aws:iam::<account>:user/<user name>`, UserId = `ids::iam_user_id(user uuid)`.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::Executor;
use super::exec::Inner;
use super::expr::scalar_text;
use crate::auth::Principal;
use crate::base::{Code, Ec2Error};
use crate::ec2::Ec2Request;
use crate::ec2::render::{IdentityApi, escape};
use crate::ids;

/// The CloudStack user behind an access key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub user_name: String,
    pub account_id: String,
    pub account_name: String,
    pub domain_id: String,
    /// CloudStack's `created` of the user, as EC2 writes times (empty when unknown).
    pub created: String,
}

impl Caller {
    fn from_user(u: &Value) -> Option<Caller> {
        let s = |k: &str| u.get(k).map(scalar_text).unwrap_or_default();
        let c = Caller {
            user_id: s("id"),
            user_name: s("username"),
            account_id: s("accountid"),
            account_name: s("account"),
            domain_id: s("domainid"),
            created: super::convert::iso8601(&s("created")).unwrap_or_default(),
        };
        (!c.user_id.is_empty() && !c.account_id.is_empty()).then_some(c)
    }

    /// The 12-digit account number (`ownerId`, STS `Account`).
    pub fn account_number(&self) -> String {
        ids::account_number(&self.account_id)
    }

    pub fn arn(&self) -> String {
        user_arn(&self.account_number(), &self.user_name)
    }
}

pub fn user_arn(account_number: &str, user_name: &str) -> String {
    format!("arn:aws:iam::{account_number}:user/{user_name}")
}

/// What an STS/IAM action this gateway does not answer gets (as those services answer it).
pub fn invalid_action(api: IdentityApi, action: &str) -> Ec2Error {
    Ec2Error::new(
        Code::InvalidAction,
        format!(
            "Could not find operation {} for version {}",
            action.chars().take(128).collect::<String>(),
            api.version()
        ),
    )
}

/// The users of the caller's account as the caller sees them (`listUsers`, all pages).
async fn list_users(inner: &Inner, who: &Principal, params: &[(String, String)]) -> Result<Vec<Value>, Ec2Error> {
    inner
        .backend
        .list_all(&who.cloudstack, "listUsers", params, "user")
        .await
        .map_err(|e| super::cserr::map(&inner.table, &e, &[], None))
}

/// The caller's CloudStack user, cached per access key for `metadata_ttl`.
pub async fn caller(inner: &Inner, who: &Principal) -> Result<Arc<Caller>, Ec2Error> {
    let key = &who.cloudstack.api_key;
    if let Some(e) = inner.callers.get(key)
        && e.0.elapsed() < inner.opts.metadata_ttl
    {
        return Ok(e.1.clone());
    }
    let users = list_users(inner, who, &[]).await?;
    let me = users.iter().find(|u| u.get("apikey").and_then(Value::as_str) == Some(key.as_str()));
    // A CloudStack that hides API keys from listUsers: a single user can only be the caller.
    let me = me.or_else(|| (users.len() == 1).then(|| &users[0]));
    let Some(c) = me.and_then(Caller::from_user) else {
        tracing::warn!(users = users.len(), "the caller's CloudStack user is not among the users listUsers shows it");
        return Err(Ec2Error::internal());
    };
    let c = Arc::new(c);
    if inner.callers.len() > 10_000 {
        inner.callers.clear();
    }
    inner.callers.insert(key.clone(), (Instant::now(), c.clone()));
    Ok(c)
}

impl Executor {
    /// An STS or IAM request: the inner XML of `<ActionResult>`.
    pub async fn identity(&self, api: IdentityApi, req: &Ec2Request, who: &Principal) -> Result<String, Ec2Error> {
        let inner = &*self.inner;
        let allowed: &[&str] = match (api, req.action.as_str()) {
            (IdentityApi::Sts, "GetCallerIdentity") => &[],
            (IdentityApi::Iam, "GetUser") => &["UserName"],
            _ => return Err(invalid_action(api, &req.action)),
        };
        if let Some(p) = req.params.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(Ec2Error::new(
                Code::UnknownParameter,
                format!("The parameter {p} is not recognized for {}.", req.action),
            ));
        }
        let me = caller(inner, who).await?;
        match api {
            IdentityApi::Sts => Ok(format!(
                "<Arn>{}</Arn><UserId>{}</UserId><Account>{}</Account>",
                escape(&me.arn()),
                escape(&ids::iam_user_id(&me.user_id)),
                me.account_number()
            )),
            IdentityApi::Iam => {
                let user = match req.params.get("UserName") {
                    None => (*me).clone(),
                    Some(n) if n == me.user_name => (*me).clone(),
                    Some(n) => {
                        let p = [("username".to_string(), n.to_string())];
                        let found = list_users(inner, who, &p).await?;
                        found
                            .iter()
                            .filter(|u| u.get("username").and_then(Value::as_str) == Some(n))
                            .find_map(Caller::from_user)
                            .filter(|c| c.account_id == me.account_id)
                            .ok_or_else(|| {
                                Ec2Error::new(Code::NoSuchEntity, format!("The user with name {n} cannot be found."))
                            })?
                    }
                };
                let created = if user.created.is_empty() { "1970-01-01T00:00:00.000Z" } else { &user.created };
                Ok(format!(
                    "<User><Path>/</Path><UserName>{}</UserName><UserId>{}</UserId><Arn>{}</Arn>\
                     <CreateDate>{}</CreateDate></User>",
                    escape(&user.user_name),
                    escape(&ids::iam_user_id(&user.user_id)),
                    escape(&user.arn()),
                    escape(created)
                ))
            }
        }
    }
}
