//! Any bytes through the loader and every rule: an error or objects (and findings), never a
//! panic, a hang or unbounded memory (libFuzzer's `-rss_limit_mb` and `-timeout` hold it to that).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh_model::load::{load_str, LoadOptions};
use mesh_model::{rules, Snapshot, Source};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match load_str(text, Source::Stdin, &LoadOptions::default()) {
        Ok(objects) => {
            let snap = Snapshot::new(objects);
            let _ = rules::check(&snap);
            let _ = mesh_model::plan::compile(&snap);
        }
        Err(e) => assert!(e.line.is_some(), "a load error without a position: {e}"),
    }
});
