//! ec2bridge: an EC2-compatible gateway in front of Apache CloudStack.
//!
//! The request path (README, "How a request flows") is visible in the module list:
//! `server` (HTTP) -> `ec2` (Query/SOAP front ends, request model, XML) -> `auth`
//! (SigV2/SigV4/WS-Security -> principal) -> `mapping` (table + executor) -> `cloudstack`
//! (signed backend client). `store` persists registrations and the id reverse-lookup cache.
//! `base` is the leaf every layer shares: the EC2 error type and its catalog, the id scheme
//! (`ids`, re-exported here), small utilities; `ops` (metrics, log set-up, the request id) is a
//! leaf too. `sim` is the built-in CloudStack simulator (Cargo feature `sim`, on by default); only
//! `app`, the composition layer behind `ec2bridge serve`, wires it in. tests/module_layers.rs
//! keeps the modules free of import cycles.

pub mod app;
pub mod auth;
pub mod base;
pub use base::ids;
pub mod cloudstack;
pub mod config;
pub mod ec2;
pub mod journal;
pub mod mapping;
pub mod objects;
pub mod ops;
pub mod server;
#[cfg(feature = "sim")]
pub mod sim;
pub mod store;
