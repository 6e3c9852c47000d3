//! The mapping table over arbitrary CloudStack answers: a read-only action, fuzzed EC2
//! parameters and a fuzzed JSON answer go through the executor (expressions, converters,
//! filters, paging, XML rendering). Never a panic; a rendered answer is well-formed XML.
#![no_main]
#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(init: targets::cloudstack_render_init(), |data: &[u8]| targets::cloudstack_render(data));
