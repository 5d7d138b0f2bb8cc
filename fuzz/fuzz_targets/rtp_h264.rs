#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pullcast::fuzzing::rtp_h264(data));
