//! ec2bridge: an EC2-compatible gateway in front of Apache CloudStack.
//!
//! The request path (see `design.md`) is visible in the module list:
//! `server` (HTTP) -> `ec2` (Query/SOAP front ends, request model, errors, XML) -> `auth`
//! (SigV2/SigV4/WS-Security -> principal) -> `mapping` (table + executor) -> `cloudstack`
//! (signed backend client). `ids` derives EC2 ids, `store` persists registrations and the id
//! reverse-lookup cache. `sim` is the built-in CloudStack simulator (Cargo feature `sim`, on by
//! default); the gateway core never imports it: `app`, the composition layer behind
//! `ec2bridge serve`, wires it in as the default backend.

pub mod app;
pub mod auth;
pub mod base;
pub mod cloudstack;
pub mod config;
pub mod ec2;
pub mod ids;
pub mod mapping;
pub mod ops;
pub mod server;
#[cfg(feature = "sim")]
pub mod sim;
pub mod store;
