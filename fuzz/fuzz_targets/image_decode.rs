//! See `osips_fuzz::image_decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| osips_fuzz::image_decode(data));
