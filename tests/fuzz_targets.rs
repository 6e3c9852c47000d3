//! The fuzz targets (fuzz/README.md) as bounded random-input tests, so that `cargo test` (and CI,
//! which has no cargo-fuzz) runs them: every committed corpus entry, then seeded mutations of
//! the corpus (bit flips, inserted/removed/duplicated ranges, splices between entries, tokens the
//! parsers care about) for a fixed number of inputs per target. Not coverage-guided, unlike
//! libFuzzer: it finds panics near the corpus, not deep ones. A failure prints the seed and the
//! input (hex) so it can be committed to the corpus and replayed. More inputs:
//! `EC2BRIDGE_FUZZ_ITERS=100000 cargo test --test fuzz_targets`.

#[path = "../fuzz/targets.rs"]
mod targets;

use std::path::Path;

/// xorshift64*: a small deterministic generator (no dependency, same inputs on every run).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

/// Byte strings the parsers branch on.
const TOKENS: &[&[u8]] = &[
    b"%",
    b"%2",
    b"%ZZ",
    b"%00",
    b"%FF",
    b"&",
    b"=",
    b"+",
    b".",
    b"..",
    b".1.",
    b"Filter.1.Name",
    b"Value.",
    b"\xff",
    b"\x00",
    b"\xc2\xa0",
    b"\xe2\x80\x8b",
    b"<!DOCTYPE x [<!ENTITY a \"b\">]>",
    b"<!--x-->",
    b"]]>",
    b"&amp;",
    b"&#0;",
    b"\"",
    b"'",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"null",
    b"-1",
    b"99999999999999999999",
    b"1e999",
    b"\\u0000",
    b"\\ud800",
    b"AWS4-HMAC-SHA256 ",
    b"Credential=",
    b"SignedHeaders=",
    b"Signature=",
    b"X-Amz-Date",
    b"20290101T000000Z",
    b"SignatureVersion=2",
    b"SignatureMethod=HmacSHA256",
    b"Expires=",
    b"Timestamp=",
    b"jobstatus",
    b"errorcode",
    b"Filter.1.Name=tag:Name&Filter.1.Value.1=",
    b"MaxResults=5&NextToken=",
    b"\"tags\":[{\"key\":\"a\",\"value\":\"b\"}]",
    b"\"created\":\"2024-01-02T03:04:05.999999999+1459\"",
    b"\"size\":-1e308",
];

fn mutate(rng: &mut Rng, corpus: &[Vec<u8>], input: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        let len = input.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(len + 1);
                input.insert(i, rng.next() as u8);
            }
            3 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(16)).min(len);
                input.drain(a..b);
            }
            4 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(32)).min(len);
                let piece = input[a..b].to_vec();
                let at = rng.below(len + 1);
                input.splice(at..at, piece.iter().cycle().take(piece.len() * (1 + rng.below(8))).copied());
            }
            5 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                let at = rng.below(len + 1);
                input.splice(at..at, t.iter().copied());
            }
            6 if !corpus.is_empty() => {
                let other = &corpus[rng.below(corpus.len())];
                let from = rng.below(other.len() + 1);
                let to = rng.below(len + 1);
                input.truncate(to);
                input.extend_from_slice(&other[from..]);
            }
            _ => {
                let n = rng.below(64);
                input.extend((0..n).map(|_| rng.next() as u8));
            }
        }
    }
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    let out: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).expect("corpus file")).collect();
    assert!(!out.is_empty(), "empty corpus {}", dir.display());
    out
}

fn iterations(default: usize) -> usize {
    std::env::var("EC2BRIDGE_FUZZ_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn run(target: &str, iters: usize, f: fn(&[u8])) {
    let corpus = corpus(target);
    for (i, c) in corpus.iter().enumerate() {
        if std::panic::catch_unwind(|| f(c)).is_err() {
            panic!("{target}: input corpus[{i}] failed");
        }
    }
    let seed = 0x9E37_79B9_7F4A_7C15 ^ target.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    let mut rng = Rng(seed);
    for i in 0..iters {
        let mut input = corpus[rng.below(corpus.len())].clone();
        mutate(&mut rng, &corpus, &mut input);
        input.truncate(64 * 1024);
        let r = std::panic::catch_unwind(|| f(&input));
        if r.is_err() {
            let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
            panic!("{target}: input {i} (seed {seed:#x}) failed; input (hex): {hex}");
        }
    }
}

#[test]
fn query_form() {
    run("query_form", iterations(20_000), targets::query_form);
}

#[test]
fn sig_canonical() {
    run("sig_canonical", iterations(5_000), targets::sig_canonical);
}

#[test]
fn soap_wssec() {
    // Each well-formed input costs an RSA verification: fewer inputs.
    run("soap_wssec", iterations(1_500), targets::soap_wssec);
}

#[test]
fn cloudstack_json() {
    run("cloudstack_json", iterations(20_000), targets::cloudstack_json);
}

#[test]
fn cloudstack_render() {
    run("cloudstack_render", iterations(5_000), targets::cloudstack_render);
}

/// The harness itself: a target that panics on some mutation is caught and reported.
#[test]
#[should_panic(expected = "query_form: input")]
fn a_panicking_target_is_reported() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // Every corpus entry passes (none is longer than the longest); mutations that grow the
    // longest one do not.
    static LONGEST: AtomicUsize = AtomicUsize::new(0);
    fn picky(data: &[u8]) {
        assert!(data.len() <= LONGEST.load(Ordering::Relaxed), "found");
    }
    LONGEST.store(corpus("query_form").iter().map(Vec::len).max().unwrap_or(0), Ordering::Relaxed);
    run("query_form", 2_000, picky);
}
