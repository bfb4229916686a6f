//! See `osips_fuzz::tsv_line`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| osips_fuzz::tsv_line(data));
