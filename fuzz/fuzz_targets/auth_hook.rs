#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pullcast_server::fuzzing::auth_hook(data));
