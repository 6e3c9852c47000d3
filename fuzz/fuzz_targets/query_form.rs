//! The Query / form parser: any bytes decode to pairs or a clean error, never a panic; decoded
//! pairs survive the parameter model (Params, filters, lists) without panics either.
#![no_main]
#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::query_form(data));
