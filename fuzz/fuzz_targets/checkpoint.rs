//! See `osips_fuzz::checkpoint`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| osips_fuzz::checkpoint(data));
