//! The CloudStack answer decoder (envelope, error document, async-job status): any status and
//! body decode to a value or a `CsError`, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (status, body) = match data.split_first() {
        Some((s, rest)) => (200 + u16::from(*s) * 2, rest),
        None => (200, data),
    };
    for command in ["listVirtualMachines", "queryAsyncJobResult", "deployVirtualMachine"] {
        let _ = ec2bridge::cloudstack::client::decode_answer(command, status, body);
    }
});
