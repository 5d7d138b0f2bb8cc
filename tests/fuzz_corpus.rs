//! Replays the committed fuzz corpus of every core fuzz target on stable: each file of
//! `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` goes through the same entry
//! function the cargo-fuzz target calls (`pullcast::fuzzing`). A panic in any of them fails
//! the test, naming the file. See `fuzz/README.md`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn files(folder: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_core_target_replays_its_corpus_without_a_panic() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut failures = Vec::new();
    for &(name, entry) in pullcast::fuzzing::TARGETS {
        let corpus = files(&fuzz.join("corpus").join(name));
        assert!(
            !corpus.is_empty(),
            "fuzz/corpus/{name}/ is missing or empty: every target needs its seed corpus"
        );
        let regressions = files(&fuzz.join("regressions").join(name));
        for file in corpus.iter().chain(&regressions) {
            let bytes = std::fs::read(file).expect("a corpus file is readable");
            if catch_unwind(AssertUnwindSafe(|| entry(&bytes))).is_err() {
                failures.push(file.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "inputs that panic: {failures:#?}");
}
