#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(u) = shared::telegram::Update::parse(data) {
        if u.kind == "polk" { panic!("selftest: found it"); }
    }
});
