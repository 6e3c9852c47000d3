//! CloudStack's error model (docs/cloudstack-wire.md "Errors"): HTTP status == `errorcode`, a `cserrorcode`
//! naming the exception class, `uuidList`, and the exact texts clients and the gateway see.

use serde_json::{Value, json};

/// `cserrorcode` values (CSExceptionErrorCode).
pub mod cs {
    pub const CLOUD_RUNTIME: u32 = 4250;
    pub const INSUFFICIENT_ADDRESS_CAPACITY: u32 = 4320;
    pub const INSUFFICIENT_CAPACITY: u32 = 4325;
    pub const INVALID_PARAMETER_VALUE: u32 = 4350;
    pub const NETWORK_RULE_CONFLICT: u32 = 4360;
    pub const PERMISSION_DENIED: u32 = 4365;
    pub const RESOURCE_ALLOCATION: u32 = 4370;
    pub const RESOURCE_IN_USE: u32 = 4375;
    pub const RESOURCE_UNAVAILABLE: u32 = 4380;
    pub const REQUEST_LIMIT: u32 = 4545;
    /// A ServerApiException raised directly (parameter validation).
    pub const SERVER_API: u32 = 9999;
}

/// The text ApiServer substitutes for 530/533/534 when the caller is not an administrator.
pub const USER_ERROR_MESSAGE: &str = "Internal error executing command, please contact your system administrator";
/// The 401 text of the servlet's signature check.
pub const UNAUTHORIZED_TEXT: &str = "unable to verify user credentials and/or request signature";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimError {
    /// HTTP status and `errorcode`.
    pub code: u16,
    /// `cserrorcode`; None for the servlet's 401.
    pub cs: Option<u32>,
    pub text: String,
    pub uuids: Vec<String>,
}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?}: {}", self.code, self.cs, self.text)
    }
}

impl std::error::Error for SimError {}

pub type SimResult<T> = Result<T, SimError>;

impl SimError {
    pub fn new(code: u16, cs: Option<u32>, text: impl Into<String>) -> Self {
        SimError { code, cs, text: text.into(), uuids: Vec::new() }
    }
    /// 401 from the signature check (no cserrorcode).
    pub fn unauthorized() -> Self {
        Self::new(401, None, UNAUTHORIZED_TEXT)
    }
    /// 401 for a command the caller's role may not use.
    pub fn not_available(command: &str) -> Self {
        Self::new(
            401,
            Some(cs::SERVER_API),
            format!("The given command '{command}' either does not exist, is not available for user."),
        )
    }
    /// 431 raised directly by parameter processing (cserrorcode 9999).
    pub fn param(text: impl Into<String>) -> Self {
        Self::new(431, Some(cs::SERVER_API), text)
    }
    /// 431 from an InvalidParameterValueException in the service layer (4350).
    pub fn invalid(text: impl Into<String>) -> Self {
        Self::new(431, Some(cs::INVALID_PARAMETER_VALUE), text)
    }
    pub fn missing(cmd: &str, name: &str) -> Self {
        Self::param(format!("Unable to execute API command {cmd} due to missing parameter {name}"))
    }
    /// Unknown or malformed value of a UUID-typed parameter.
    pub fn bad_uuid(cmd: &str, name: &str, value: &str) -> Self {
        Self::param(format!(
            "Unable to execute API command {cmd} due to invalid value. Invalid parameter {name} value={value} due to incorrect long value format, or entity does not exist or due to incorrect parameter annotation for the field in api cmd class."
        ))
    }
    /// A value that does not parse as the parameter's type (number, date).
    pub fn bad_value(cmd: &str, name: &str, value: &str) -> Self {
        Self::param(format!("Unable to execute API command {cmd} due to invalid value {value} for parameter {name}"))
    }
    pub fn permission(text: impl Into<String>) -> Self {
        Self::new(531, Some(cs::PERMISSION_DENIED), text)
    }
    pub fn allocation(text: impl Into<String>) -> Self {
        Self::new(535, Some(cs::RESOURCE_ALLOCATION), text)
    }
    pub fn in_use(text: impl Into<String>) -> Self {
        Self::new(536, Some(cs::RESOURCE_IN_USE), text)
    }
    pub fn conflict(text: impl Into<String>) -> Self {
        Self::new(537, Some(cs::NETWORK_RULE_CONFLICT), text)
    }
    pub fn internal(text: impl Into<String>) -> Self {
        Self::new(530, Some(cs::CLOUD_RUNTIME), text)
    }
    pub fn capacity(text: impl Into<String>) -> Self {
        Self::new(533, Some(cs::INSUFFICIENT_CAPACITY), text)
    }
    pub fn address_capacity(text: impl Into<String>) -> Self {
        Self::new(533, Some(cs::INSUFFICIENT_ADDRESS_CAPACITY), text)
    }
    pub fn with_uuid(mut self, uuid: impl Into<String>) -> Self {
        self.uuids.push(uuid.into());
        self
    }

    /// A generic error of a given code, as fault injection produces it.
    pub fn of_code(code: u16, text: Option<&str>) -> Self {
        let (cs, default_text) = match code {
            401 => (None, UNAUTHORIZED_TEXT),
            429 => (Some(cs::REQUEST_LIMIT), "There are too many API calls, please try again later"),
            431 => (Some(cs::INVALID_PARAMETER_VALUE), "Invalid parameter value (injected fault)"),
            530 => (Some(cs::CLOUD_RUNTIME), "Internal error (injected fault)"),
            531 => (Some(cs::PERMISSION_DENIED), "Permission denied (injected fault)"),
            532 => (Some(cs::RESOURCE_ALLOCATION), "Account resource limit exceeded (injected fault)"),
            533 => (Some(cs::INSUFFICIENT_CAPACITY), "Insufficient capacity (injected fault)"),
            534 => (Some(cs::RESOURCE_UNAVAILABLE), "Resource unavailable (injected fault)"),
            535 => (Some(cs::RESOURCE_ALLOCATION), "Resource allocation failed (injected fault)"),
            536 => (Some(cs::RESOURCE_IN_USE), "Resource in use (injected fault)"),
            537 => (Some(cs::NETWORK_RULE_CONFLICT), "Network rule conflict (injected fault)"),
            503 => (None, "Management server is in maintenance, not accepting new jobs"),
            _ => (Some(cs::CLOUD_RUNTIME), "Error (injected fault)"),
        };
        Self::new(code, cs, text.unwrap_or(default_text))
    }

    /// What a non-admin caller is shown (ApiServer hides 530/533/534 texts).
    pub fn for_caller(mut self, is_admin: bool) -> Self {
        if !is_admin && matches!(self.code, 530 | 533 | 534) {
            self.text = USER_ERROR_MESSAGE.to_string();
        }
        self
    }

    /// The body inside the envelope.
    pub fn body(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("uuidList".into(), json!(self.uuids));
        m.insert("errorcode".into(), json!(self.code));
        if let Some(cs) = self.cs {
            m.insert("cserrorcode".into(), json!(cs));
        }
        m.insert("errortext".into(), json!(self.text));
        Value::Object(m)
    }

    /// The `jobresult` of a failed job: errorcode + errortext only.
    pub fn job_body(&self) -> Value {
        json!({"errorcode": self.code, "errortext": self.text})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let e = SimError::missing("deployvirtualmachine", "zoneid");
        assert_eq!(e.code, 431);
        assert_eq!(
            e.body(),
            json!({"uuidList":[],"errorcode":431,"cserrorcode":9999,"errortext":"Unable to execute API command deployvirtualmachine due to missing parameter zoneid"})
        );
        let u = SimError::unauthorized().body();
        assert!(u.get("cserrorcode").is_none());
        assert_eq!(SimError::internal("boom").for_caller(false).text, USER_ERROR_MESSAGE);
        assert_eq!(SimError::internal("boom").for_caller(true).text, "boom");
        assert_eq!(SimError::invalid("x").for_caller(false).text, "x");
        assert_eq!(SimError::internal("x").job_body(), json!({"errorcode":530,"errortext":"x"}));
    }
}
