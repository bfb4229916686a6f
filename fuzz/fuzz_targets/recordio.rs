//! See `osips_fuzz::recordio`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| osips_fuzz::recordio(data));
