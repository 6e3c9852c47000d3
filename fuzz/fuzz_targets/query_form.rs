//! The Query / form parser: any bytes decode to pairs or a clean error, never a panic; decoded
//! pairs survive the parameter model (Params, filters, lists) without panics either.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(pairs) = ec2bridge::ec2::query::decode_pairs(data) {
        let params = ec2bridge::ec2::Params(pairs.into_iter().collect());
        let _ = params.filters();
        let _ = params.list("InstanceId");
        let _ = params.dry_run();
    }
});
