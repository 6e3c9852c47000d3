//! One error type for every stage, and the catalog that gives each EC2 code its HTTP status.
//! Rendering (Query `<Response><Errors>` document, SOAP fault) happens in one place.

use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Ec2Error {
    pub code: Cow<'static, str>,
    pub message: String,
}

/// EC2 codes whose HTTP status is not 400 (ec2-protocol.md §2.5, §4.2). Every other code is a
/// client error answered with 400.
const STATUS: &[(&str, u16)] = &[
    ("AuthFailure", 401),
    ("SignatureDoesNotMatch", 403),
    ("MissingAuthenticationToken", 403),
    ("UnauthorizedOperation", 403),
    ("OptInRequired", 403),
    ("MalformedQueryString", 404),
    ("MethodNotAllowed", 405),
    ("RequestEntityTooLarge", 413),
    ("DryRunOperation", 412),
    ("InternalError", 500),
    ("InsufficientInstanceCapacity", 500),
    ("InsufficientAddressCapacity", 500),
    ("RequestLimitExceeded", 503),
    ("Unavailable", 503),
    ("ServiceUnavailable", 503),
];

impl Ec2Error {
    pub fn new(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Ec2Error { code: code.into(), message: message.into() }
    }

    pub fn status(&self) -> u16 {
        STATUS.iter().find(|(c, _)| *c == self.code).map(|(_, s)| *s).unwrap_or(400)
    }

    /// Server-class errors are `aws:Server.<Code>` in SOAP faults; the rest `aws:Client.<Code>`.
    pub fn is_server(&self) -> bool {
        self.status() >= 500
    }

    // Constructors for the codes used all over the gateway.
    pub fn missing_parameter(name: &str) -> Self {
        Self::new("MissingParameter", format!("The request must contain the parameter {name}"))
    }
    pub fn invalid_value(param: &str, value: &str, why: &str) -> Self {
        // The value is the client's: quote a bounded prefix, not a 100 KB parameter.
        let value = match value.char_indices().nth(256) {
            Some((i, _)) => format!("{}...", &value[..i]),
            None => value.to_string(),
        };
        Self::new(
            "InvalidParameterValue",
            format!("Value ({value}) for parameter {param} is invalid. {why}").trim_end().to_string(),
        )
    }
    pub fn combination(message: impl Into<String>) -> Self {
        Self::new("InvalidParameterCombination", message)
    }
    pub fn internal() -> Self {
        Self::new("InternalError", "An internal error has occurred")
    }
    pub fn unavailable() -> Self {
        Self::new("Unavailable", "The service is unavailable. Please try again shortly.")
    }
    pub fn dry_run_ok() -> Self {
        Self::new("DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
    }

    // Authentication and request-shape errors (ec2-protocol.md §2.5); wording as AWS sends it.
    pub fn auth_failure() -> Self {
        Self::new("AuthFailure", "AWS was not able to validate the provided access credentials")
    }
    pub fn signature_mismatch() -> Self {
        Self::new(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your AWS \
             Secret Access Key and signing method. Consult the service documentation for details.",
        )
    }
    pub fn request_expired(detail: impl std::fmt::Display) -> Self {
        Self::new("RequestExpired", format!("Request has expired. {detail}"))
    }
    pub fn missing_authentication_token() -> Self {
        Self::new(
            "MissingAuthenticationToken",
            "The request must contain either a valid (registered) AWS access key ID or X.509 certificate.",
        )
    }
    pub fn incomplete_signature(message: impl Into<String>) -> Self {
        Self::new("IncompleteSignature", message)
    }
    pub fn missing_action() -> Self {
        Self::new("MissingAction", "The request must contain the parameter Action")
    }
    pub fn invalid_action(action: &str) -> Self {
        Self::new("InvalidAction", format!("The action {action} is not valid for this web service."))
    }
    pub fn malformed_query_string(why: impl Into<String>) -> Self {
        Self::new("MalformedQueryString", why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_statuses() {
        assert_eq!(Ec2Error::new("AuthFailure", "x").status(), 401);
        assert_eq!(Ec2Error::new("RequestLimitExceeded", "x").status(), 503);
        assert_eq!(Ec2Error::new("InvalidInstanceID.NotFound", "x").status(), 400);
        assert_eq!(Ec2Error::dry_run_ok().status(), 412);
        assert!(Ec2Error::internal().is_server());
    }
}
