#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pullcast::fuzzing::media_port(data));
