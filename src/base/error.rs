//! One error type for every stage, and the catalog of every EC2 error code the gateway can answer.
//! Each code is declared once below with its HTTP status and whether a client may retry it; the
//! status table, `ec2bridge errors`, docs/errors.md and the load-time check of mapping files'
//! `code =` all read this list. Rendering (Query `<Response><Errors>`, SOAP fault) happens in
//! `ec2::render`.

use std::fmt;

/// Declares the catalog: `Variant = "WireCode", status, retryable;`.
macro_rules! catalog {
    ($($variant:ident = $code:literal, $status:literal, $retry:literal;)*) => {
        /// An EC2 error code the gateway can answer. Only these codes ever reach a client.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            /// Every code, in catalog order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as it appears on the wire (`InvalidInstanceID.NotFound`).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $code,)*
                }
            }

            /// The HTTP status EC2 answers this code with.
            pub const fn status(self) -> u16 {
                match self {
                    $(Code::$variant => $status,)*
                }
            }

            /// True when the same request may succeed later (throttling, capacity, outages):
            /// the SDKs retry these.
            pub const fn retryable(self) -> bool {
                match self {
                    $(Code::$variant => $retry,)*
                }
            }
        }
    };
}

// The catalog. HTTP statuses follow EC2 (docs/ec2-wire.md, "Error documents"): authentication
// problems are 401/403, request-shape problems of the HTTP layer 404/405/413, DryRun 412,
// capacity and internal failures 500, throttling and outages 503, everything else 400.
catalog! {
    // Authentication and signing.
    AuthFailure = "AuthFailure", 401, false;
    SignatureDoesNotMatch = "SignatureDoesNotMatch", 403, false;
    MissingAuthenticationToken = "MissingAuthenticationToken", 403, false;
    UnauthorizedOperation = "UnauthorizedOperation", 403, false;
    OptInRequired = "OptInRequired", 403, false;
    IncompleteSignature = "IncompleteSignature", 400, false;
    RequestExpired = "RequestExpired", 400, false;
    InvalidSecurity = "InvalidSecurity", 400, false;
    // Request shape.
    MalformedQueryString = "MalformedQueryString", 404, false;
    MethodNotAllowed = "MethodNotAllowed", 405, false;
    DryRunOperation = "DryRunOperation", 412, false;
    RequestEntityTooLarge = "RequestEntityTooLarge", 413, false;
    IncompleteBody = "IncompleteBody", 400, false;
    InvalidSoapRequest = "InvalidSOAPRequest", 400, false;
    MissingAction = "MissingAction", 400, false;
    InvalidAction = "InvalidAction", 400, false;
    // What EC2 answers a request it cannot make sense of, e.g. an unknown DescribeImageAttribute name.
    InvalidRequest = "InvalidRequest", 400, false;
    // IAM GetUser of a user name the caller's account does not have (docs/accounts.md).
    NoSuchEntity = "NoSuchEntity", 404, false;
    MissingParameter = "MissingParameter", 400, false;
    UnknownParameter = "UnknownParameter", 400, false;
    InvalidParameterValue = "InvalidParameterValue", 400, false;
    InvalidParameterCombination = "InvalidParameterCombination", 400, false;
    IdempotentParameterMismatch = "IdempotentParameterMismatch", 400, false;
    UnsupportedOperation = "UnsupportedOperation", 400, false;
    InvalidId = "InvalidID", 400, false;
    // Server side, capacity and throttling.
    InternalError = "InternalError", 500, true;
    InsufficientInstanceCapacity = "InsufficientInstanceCapacity", 500, true;
    InsufficientAddressCapacity = "InsufficientAddressCapacity", 500, true;
    RequestLimitExceeded = "RequestLimitExceeded", 503, true;
    Unavailable = "Unavailable", 503, true;
    ServiceUnavailable = "ServiceUnavailable", 503, true;
    // Limits.
    AddressLimitExceeded = "AddressLimitExceeded", 400, false;
    InstanceLimitExceeded = "InstanceLimitExceeded", 400, false;
    ResourceLimitExceeded = "ResourceLimitExceeded", 400, false;
    VolumeLimitExceeded = "VolumeLimitExceeded", 400, false;
    TagLimitExceeded = "TagLimitExceeded", 400, false;
    // State.
    IncorrectState = "IncorrectState", 400, false;
    IncorrectInstanceState = "IncorrectInstanceState", 400, false;
    OperationNotPermitted = "OperationNotPermitted", 400, false;
    DependencyViolation = "DependencyViolation", 400, false;
    CannotDelete = "CannotDelete", 400, false;
    VolumeInUse = "VolumeInUse", 400, false;
    // Instances, reservations, instance types, zones.
    InvalidInstanceIdMalformed = "InvalidInstanceID.Malformed", 400, false;
    InvalidInstanceIdNotFound = "InvalidInstanceID.NotFound", 400, false;
    InvalidReservationIdMalformed = "InvalidReservationID.Malformed", 400, false;
    InvalidReservationIdNotFound = "InvalidReservationID.NotFound", 400, false;
    InvalidInstanceType = "InvalidInstanceType", 400, false;
    InvalidZoneNotFound = "InvalidZone.NotFound", 400, false;
    // Images.
    InvalidAmiIdMalformed = "InvalidAMIID.Malformed", 400, false;
    InvalidAmiIdNotFound = "InvalidAMIID.NotFound", 400, false;
    InvalidAmiNameMalformed = "InvalidAMIName.Malformed", 400, false;
    InvalidAmiNameDuplicate = "InvalidAMIName.Duplicate", 400, false;
    InvalidAmiAttributeItemValue = "InvalidAMIAttributeItemValue", 400, false;
    // Volumes and snapshots.
    InvalidVolumeIdMalformed = "InvalidVolumeID.Malformed", 400, false;
    InvalidVolumeNotFound = "InvalidVolume.NotFound", 400, false;
    InvalidAttachmentNotFound = "InvalidAttachment.NotFound", 400, false;
    InvalidSnapshotIdMalformed = "InvalidSnapshotID.Malformed", 400, false;
    InvalidSnapshotNotFound = "InvalidSnapshot.NotFound", 400, false;
    // Security groups.
    InvalidGroupIdMalformed = "InvalidGroupId.Malformed", 400, false;
    InvalidGroupNotFound = "InvalidGroup.NotFound", 400, false;
    InvalidGroupDuplicate = "InvalidGroup.Duplicate", 400, false;
    InvalidGroupReserved = "InvalidGroup.Reserved", 400, false;
    InvalidPermissionMalformed = "InvalidPermission.Malformed", 400, false;
    InvalidPermissionDuplicate = "InvalidPermission.Duplicate", 400, false;
    InvalidPermissionNotFound = "InvalidPermission.NotFound", 400, false;
    // Addresses.
    InvalidAllocationIdMalformed = "InvalidAllocationID.Malformed", 400, false;
    InvalidAllocationIdNotFound = "InvalidAllocationID.NotFound", 400, false;
    InvalidAssociationIdNotFound = "InvalidAssociationID.NotFound", 400, false;
    InvalidAddressNotFound = "InvalidAddress.NotFound", 400, false;
    InvalidIpAddressInUse = "InvalidIPAddress.InUse", 400, false;
    // Key pairs.
    InvalidKeyPairNotFound = "InvalidKeyPair.NotFound", 400, false;
    InvalidKeyPairDuplicate = "InvalidKeyPair.Duplicate", 400, false;
    InvalidKeyPairFormat = "InvalidKeyPair.Format", 400, false;
    // VPCs and subnets (for kinds declared in mapping files).
    InvalidVpcIdMalformed = "InvalidVpcID.Malformed", 400, false;
    InvalidVpcIdNotFound = "InvalidVpcID.NotFound", 400, false;
    InvalidSubnetIdMalformed = "InvalidSubnetID.Malformed", 400, false;
    InvalidSubnetIdNotFound = "InvalidSubnetID.NotFound", 400, false;
    InvalidVpcRange = "InvalidVpc.Range", 400, false;
    InvalidSubnetRange = "InvalidSubnet.Range", 400, false;
    InvalidSubnetConflict = "InvalidSubnet.Conflict", 400, false;
    InvalidInternetGatewayIdMalformed = "InvalidInternetGatewayId.Malformed", 400, false;
    InvalidInternetGatewayIdNotFound = "InvalidInternetGatewayID.NotFound", 400, false;
    InvalidRouteTableIdMalformed = "InvalidRouteTableId.Malformed", 400, false;
    InvalidRouteTableIdNotFound = "InvalidRouteTableID.NotFound", 400, false;
    InvalidRouteNotFound = "InvalidRoute.NotFound", 400, false;
    RouteAlreadyExists = "RouteAlreadyExists", 400, false;
    InvalidAssociationIdMalformed = "InvalidAssociationID.Malformed", 400, false;
    InvalidDhcpOptionsIdMalformed = "InvalidDhcpOptionsId.Malformed", 400, false;
    InvalidDhcpOptionIdNotFound = "InvalidDhcpOptionID.NotFound", 400, false;
    ResourceAlreadyAssociated = "Resource.AlreadyAssociated", 400, false;
    GatewayNotAttached = "Gateway.NotAttached", 400, false;
    DefaultVpcAlreadyExists = "DefaultVpcAlreadyExists", 400, false;
    VpcIdNotSpecified = "VPCIdNotSpecified", 400, false;
    MissingInput = "MissingInput", 400, false;
    InvalidParameter = "InvalidParameter", 400, false;
    // Network interfaces and NAT gateways.
    InvalidNetworkInterfaceIdMalformed = "InvalidNetworkInterfaceID.Malformed", 400, false;
    InvalidNetworkInterfaceIdNotFound = "InvalidNetworkInterfaceID.NotFound", 400, false;
    InvalidNetworkInterfaceInUse = "InvalidNetworkInterface.InUse", 400, false;
    InvalidAttachmentIdNotFound = "InvalidAttachmentID.NotFound", 400, false;
    InsufficientFreeAddressesInSubnet = "InsufficientFreeAddressesInSubnet", 400, false;
    PrivateIpAddressLimitExceeded = "PrivateIpAddressLimitExceeded", 400, false;
    NatGatewayMalformed = "NatGatewayMalformed", 400, false;
    NatGatewayNotFound = "NatGatewayNotFound", 400, false;
    // Network ACLs.
    InvalidNetworkAclIdMalformed = "InvalidNetworkAclId.Malformed", 400, false;
    InvalidNetworkAclIdNotFound = "InvalidNetworkAclID.NotFound", 400, false;
    InvalidNetworkAclEntryNotFound = "InvalidNetworkAclEntry.NotFound", 400, false;
    NetworkAclEntryAlreadyExists = "NetworkAclEntryAlreadyExists", 400, false;
    // Site-to-site VPN.
    InvalidCustomerGatewayIdMalformed = "InvalidCustomerGatewayId.Malformed", 400, false;
    InvalidCustomerGatewayIdNotFound = "InvalidCustomerGatewayID.NotFound", 400, false;
    InvalidVpnGatewayIdMalformed = "InvalidVpnGatewayId.Malformed", 400, false;
    InvalidVpnGatewayIdNotFound = "InvalidVpnGatewayID.NotFound", 400, false;
    InvalidVpnConnectionId = "InvalidVpnConnectionID", 400, false;
    InvalidVpnConnectionIdNotFound = "InvalidVpnConnectionID.NotFound", 400, false;
    InvalidVpnGatewayAttachmentNotFound = "InvalidVpnGatewayAttachment.NotFound", 400, false;
    InvalidVpcState = "InvalidVpcState", 400, false;
    VpnGatewayAttachmentLimitExceeded = "VpnGatewayAttachmentLimitExceeded", 400, false;
    InvalidOptionConflict = "InvalidOption.Conflict", 400, false;
}

impl Code {
    /// The catalog entry for a wire code (mapping files name codes this way).
    pub fn parse(code: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| c.as_str() == code)
    }

    /// Server-class codes are `aws:Server.<Code>` in SOAP faults; the rest `aws:Client.<Code>`.
    pub const fn is_server(self) -> bool {
        self.status() >= 500
    }

    /// The catalog as a Markdown table (printed by `ec2bridge errors --markdown`, kept in
    /// docs/errors.md; a test checks the two agree).
    pub fn markdown_table() -> String {
        let mut out = String::from("| code | HTTP status | retryable |\n|---|---|---|\n");
        for c in Code::ALL {
            out.push_str(&format!(
                "| `{}` | {} | {} |\n",
                c.as_str(),
                c.status(),
                if c.retryable() { "yes" } else { "no" }
            ));
        }
        out
    }
}

/// `ec2bridge errors`: one line per code (`code status retryable`), or the Markdown table.
pub fn catalog_listing(markdown: bool) -> String {
    if markdown {
        return Code::markdown_table();
    }
    let width = Code::ALL.iter().map(|c| c.as_str().len()).max().unwrap_or(0);
    Code::ALL
        .iter()
        .map(|c| {
            let retry = if c.retryable() { "retryable" } else { "-" };
            format!("{:width$}  {}  {retry}\n", c.as_str(), c.status())
        })
        .collect()
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// Comparing with the wire form: tests assert what a client sees.
impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for Code {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Ec2Error {
    pub code: Code,
    pub message: String,
}

impl Ec2Error {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Ec2Error { code, message: message.into() }
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// Server-class errors are `aws:Server.<Code>` in SOAP faults; the rest `aws:Client.<Code>`.
    pub fn is_server(&self) -> bool {
        self.code.is_server()
    }

    pub fn is(&self, code: Code) -> bool {
        self.code == code
    }

    // Constructors for the codes used all over the gateway.
    pub fn missing_parameter(name: &str) -> Self {
        Self::new(Code::MissingParameter, format!("The request must contain the parameter {name}"))
    }
    pub fn invalid_value(param: &str, value: &str, why: &str) -> Self {
        // The value is the client's: quote a bounded prefix, not a 100 KB parameter.
        let value = match value.char_indices().nth(256) {
            Some((i, _)) => format!("{}...", &value[..i]),
            None => value.to_string(),
        };
        Self::new(
            Code::InvalidParameterValue,
            format!("Value ({value}) for parameter {param} is invalid. {why}").trim_end().to_string(),
        )
    }
    /// `InvalidParameterValue` with a message of the caller's own wording.
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidParameterValue, message)
    }
    pub fn combination(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidParameterCombination, message)
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(Code::UnsupportedOperation, message)
    }
    pub fn internal() -> Self {
        Self::new(Code::InternalError, "An internal error has occurred")
    }
    pub fn unavailable() -> Self {
        Self::new(Code::Unavailable, "The service is unavailable. Please try again shortly.")
    }
    pub fn dry_run_ok() -> Self {
        Self::new(Code::DryRunOperation, "Request would have succeeded, but DryRun flag is set.")
    }

    // Authentication and request-shape errors (docs/ec2-wire.md, "Error documents"); wording as
    // AWS sends it.
    pub fn auth_failure() -> Self {
        Self::new(Code::AuthFailure, "AWS was not able to validate the provided access credentials")
    }
    pub fn signature_mismatch() -> Self {
        Self::new(
            Code::SignatureDoesNotMatch,
            "The request signature we calculated does not match the signature you provided. Check your AWS \
             Secret Access Key and signing method. Consult the service documentation for details.",
        )
    }
    pub fn request_expired(detail: impl std::fmt::Display) -> Self {
        Self::new(Code::RequestExpired, format!("Request has expired. {detail}"))
    }
    pub fn missing_authentication_token() -> Self {
        Self::new(
            Code::MissingAuthenticationToken,
            "The request must contain either a valid (registered) AWS access key ID or X.509 certificate.",
        )
    }
    pub fn incomplete_signature(message: impl Into<String>) -> Self {
        Self::new(Code::IncompleteSignature, message)
    }
    pub fn missing_action() -> Self {
        Self::new(Code::MissingAction, "The request must contain the parameter Action")
    }
    pub fn invalid_action(action: &str) -> Self {
        Self::new(Code::InvalidAction, format!("The action {action} is not valid for this web service."))
    }
    pub fn malformed_query_string(why: impl Into<String>) -> Self {
        Self::new(Code::MalformedQueryString, why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_statuses() {
        assert_eq!(Code::AuthFailure.status(), 401);
        assert_eq!(Code::RequestLimitExceeded.status(), 503);
        assert_eq!(Code::InvalidInstanceIdNotFound.status(), 400);
        assert_eq!(Ec2Error::dry_run_ok().status(), 412);
        assert!(Ec2Error::internal().is_server());
        assert!(Code::RequestLimitExceeded.retryable() && !Code::AuthFailure.retryable());
    }

    #[test]
    fn wire_codes_are_unique_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.as_str()), "{c} declared twice");
            assert_eq!(Code::parse(c.as_str()), Some(*c));
        }
        assert_eq!(Code::parse("InvalidInstanceId.NotFound"), None);
    }

    /// The statuses EC2 is documented to answer with (docs/ec2-wire.md): every code not listed
    /// here is a 400.
    #[test]
    fn non_400_statuses() {
        let non_400: Vec<(&str, u16)> =
            Code::ALL.iter().filter(|c| c.status() != 400).map(|c| (c.as_str(), c.status())).collect();
        assert_eq!(
            non_400,
            [
                ("AuthFailure", 401),
                ("SignatureDoesNotMatch", 403),
                ("MissingAuthenticationToken", 403),
                ("UnauthorizedOperation", 403),
                ("OptInRequired", 403),
                ("MalformedQueryString", 404),
                ("MethodNotAllowed", 405),
                ("DryRunOperation", 412),
                ("RequestEntityTooLarge", 413),
                ("NoSuchEntity", 404),
                ("InternalError", 500),
                ("InsufficientInstanceCapacity", 500),
                ("InsufficientAddressCapacity", 500),
                ("RequestLimitExceeded", 503),
                ("Unavailable", 503),
                ("ServiceUnavailable", 503),
            ]
        );
    }
}
