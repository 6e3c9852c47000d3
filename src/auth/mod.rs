//! Who is calling: SigV2 / SigV4 verifiers for Query requests, WS-Security for SOAP, and the
//! credential sources that know each user's keys. The outcome is a `Principal`.

pub mod wssec;

use crate::cloudstack::CsCredentials;

/// An authenticated caller. Every CloudStack call made for it is signed with its own keys.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The EC2 access key the caller signed with (= its CloudStack API key).
    pub access_key: String,
    pub cloudstack: CsCredentials,
    /// CloudStack account name, when known (used for `ownerId`).
    pub account: Option<String>,
}
