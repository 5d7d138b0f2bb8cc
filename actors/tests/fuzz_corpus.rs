//! Replays the committed fuzz corpus of every server fuzz target on stable: each file of
//! `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` goes through the same entry
//! function the cargo-fuzz target calls (`pullcast_server::fuzzing`). Also checks that the
//! fuzz targets in `fuzz/fuzz_targets/` and the two target lists (core and server) name the
//! same targets, so no target goes without a replay. See `fuzz/README.md`.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fuzz_folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

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
fn every_server_target_replays_its_corpus_without_a_panic() {
    let fuzz = fuzz_folder();
    let mut failures = Vec::new();
    for &(name, entry) in pullcast_server::fuzzing::TARGETS {
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

#[test]
fn every_fuzz_target_has_a_replayed_entry() {
    let on_disk: BTreeSet<String> = files(&fuzz_folder().join("fuzz_targets"))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .filter_map(|p| p.file_stem().and_then(|s| s.to_str()).map(str::to_string))
        .collect();
    let listed: BTreeSet<String> = pullcast::fuzzing::TARGETS
        .iter()
        .chain(pullcast_server::fuzzing::TARGETS)
        .map(|(name, _)| name.to_string())
        .collect();
    assert!(!on_disk.is_empty(), "no fuzz/fuzz_targets/*.rs found");
    assert_eq!(
        on_disk, listed,
        "fuzz/fuzz_targets/*.rs and the TARGETS lists of pullcast::fuzzing and \
         pullcast_server::fuzzing must name the same targets"
    );
}
