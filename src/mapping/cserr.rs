//! CloudStack failures -> EC2 errors, by errorcode/cserrorcode and command through the `[[error]]`
//! rules of the table (first match wins; rules naming the command before `*` rules). CloudStack's English text is never matched; it may be
//! quoted in the message where a rule says `{text}`.

use super::table::Table;
use crate::base::{Code, Ec2Error};
use crate::cloudstack::CsError;

pub fn map(t: &Table, e: &CsError, ids: &[String]) -> Ec2Error {
    let (command, errorcode, cserrorcode, text, is_job) = match e {
        CsError::Api { command, errorcode, cserrorcode, text } => (command, *errorcode, *cserrorcode, text, false),
        CsError::JobFailed { command, errorcode, text } => (command, *errorcode, None, text, true),
        CsError::Transport(_) => return Ec2Error::unavailable(),
        CsError::JobTimeout { .. } => {
            return Ec2Error::new(
                Code::InternalError,
                "An internal error has occurred: the cloud did not finish the operation in time",
            );
        }
        CsError::BadResponse(_) => return Ec2Error::internal(),
    };
    // Rules naming the command win over `*` rules wherever they are written, so that an area's
    // file can carry its own command's rules although common.toml's generic rules load first.
    let specific = t.errors.iter().filter(|r| r.commands.iter().any(|c| c.eq_ignore_ascii_case(command)));
    let generic = t.errors.iter().filter(|r| r.commands.iter().any(|c| c == "*"));
    for r in specific.chain(generic) {
        if (is_job && !r.on_job) || (!is_job && !r.on_api) {
            continue;
        }
        if r.errorcode.is_some_and(|c| c != errorcode) {
            continue;
        }
        if r.cserrorcode.is_some() && r.cserrorcode != cserrorcode {
            continue;
        }
        let msg = r
            .message
            .replace("{text}", text.trim())
            .replace("{command}", command)
            .replace("{ids}", &ids.join(", "))
            .replace("{errorcode}", &errorcode.to_string());
        return Ec2Error::new(r.code, msg);
    }
    Ec2Error::internal()
}
