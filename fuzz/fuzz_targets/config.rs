//! See `osips_fuzz::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| osips_fuzz::config(data));
