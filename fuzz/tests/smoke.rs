//! The fuzz smoke run of `make test` (issue 15): every target replays its
//! seed corpus (`fuzz/corpus/<target>/`) and every kept regression case
//! (`fuzz/regressions/<target>/`, the inputs fuzzing once found failing),
//! then runs a fixed number of seeded mutations of the corpus. Deterministic:
//! a failure names the target and the input that failed, and reruns the
//! same. `SIGNET_FUZZ_SMOKE_RUNS` sets the mutations per target.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use signet_fuzz::{TARGETS, Target};

/// Mutations per target when `SIGNET_FUZZ_SMOKE_RUNS` is not set.
const DEFAULT_RUNS: usize = 3000;

/// Fragments a mutation may insert: JSON syntax, boundary numbers, times,
/// CSV quoting, what a parser's edge cases are made of.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"null",
    b"true",
    b"-1",
    b"0",
    b"1e999",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"4294967296",
    b"\"\"",
    b"[]",
    b"{}",
    b"\\u0000",
    b"\\ud800",
    b"\"2026-10-25T01:30:00Z\"",
    b"\"+262143-12-31T23:59:59Z\"",
    b"\"24:00:00\"",
    b"\"9999-12-31\"",
    b"\r\n",
    b"\"\"\"",
    b",,,",
    b"\xef\xbb\xbf",
    b"\xff",
];

/// xorshift64*: a small deterministic source for the mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
    }
}

/// `seed` changed by one to four random edits, or spliced with `other`.
fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(6) {
            0 if !data.is_empty() => {
                let i = at.min(data.len() - 1);
                data[i] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let i = at.min(data.len() - 1);
                data[i] = *b"\"{}[],:-09aZ \\\n\0\x7f\xc3"
                    .get(rng.below(20))
                    .unwrap_or(&0);
            }
            2 => {
                let end = (at + rng.below(16)).min(data.len());
                data.drain(at..end);
            }
            3 => {
                let end = (at + rng.below(32)).min(data.len());
                let copy = data[at..end].to_vec();
                let to = rng.below(data.len() + 1);
                data.splice(to..to, copy);
            }
            4 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                data.splice(at..at, token.iter().copied());
            }
            _ => {
                let from = rng.below(other.len() + 1);
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
        }
    }
    data
}

fn inputs(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "README.md"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).expect("a corpus file reads");
            (path, bytes)
        })
        .collect()
}

/// Runs `target` on `data`; whether the input passed every check.
fn run(target: Target, what: &str, data: &[u8]) -> bool {
    catch_unwind(AssertUnwindSafe(|| (target.run)(data))).unwrap_or_else(|_| {
        panic!(
            "fuzz target {} failed on {what} ({} bytes): {:?}",
            target.name,
            data.len(),
            String::from_utf8_lossy(&data[..data.len().min(2000)])
        )
    })
}

/// Issue 15: every target survives its corpus, its regression cases and
/// seeded mutations of them (S1, S11, S13, D5, D6, L7, U1, U4).
#[test]
fn every_target_survives_its_corpus_regressions_and_mutations() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let runs = std::env::var("SIGNET_FUZZ_SMOKE_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_RUNS);
    for target in TARGETS {
        let corpus = inputs(&root.join("corpus").join(target.name));
        assert!(
            !corpus.is_empty(),
            "fuzz/corpus/{} has no seed",
            target.name
        );
        let regressions = inputs(&root.join("regressions").join(target.name));
        let mut accepted = 0;
        for (path, bytes) in corpus.iter().chain(&regressions) {
            let passed = run(*target, &path.display().to_string(), bytes);
            println!(
                "{}: {}",
                if passed { "accepted" } else { "refused" },
                path.display()
            );
            accepted += usize::from(passed);
        }
        // The corpus reaches past the parser, or mutating it tests little.
        assert!(
            accepted > 0,
            "no seed of fuzz/corpus/{} is accepted",
            target.name
        );
        let seeds: Vec<&[u8]> = corpus
            .iter()
            .chain(&regressions)
            .map(|(_, b)| b.as_slice())
            .collect();
        let mut rng = Rng(0x5167_6e65_7466_757a ^ target.name.len() as u64);
        for i in 0..runs {
            let seed = seeds[rng.below(seeds.len())];
            let other = seeds[rng.below(seeds.len())];
            let data = mutate(&mut rng, seed, other);
            accepted += usize::from(run(*target, &format!("mutation {i}"), &data));
        }
        println!(
            "{}: {} corpus, {} regression and {runs} mutated inputs, {accepted} accepted",
            target.name,
            corpus.len(),
            regressions.len()
        );
    }
}

/// Every target refuses input over its bound without parsing it, and the
/// empty input (S13: sizes bounded before decoding).
#[test]
fn every_target_takes_empty_and_oversized_input() {
    let big = vec![b'['; signet_fuzz::MAX_INPUT_BYTES + 1];
    for target in TARGETS {
        assert!(!run(*target, "the empty input", b""));
        assert!(!run(*target, "an oversized input", &big));
    }
}
