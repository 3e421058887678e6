//! Hostile and broken GGUF input: every case must come back as an error that says what is wrong — never a panic,
//! never an allocation sized by an unchecked field. Cases follow the checks in ggml's gguf.cpp.

mod gguf_common;

use gguf_common::data_dir;
use ossify_formats::gguf::{GgufError, GgufFile};

/// Builds GGUF bytes by hand, so each test can break exactly one thing.
#[derive(Clone, Default)]
struct Raw(Vec<u8>);

impl Raw {
    fn header(version: u32, n_tensors: u64, n_kv: u64) -> Raw {
        let mut r = Raw(b"GGUF".to_vec());
        r.u32(version).u64(n_tensors).u64(n_kv);
        r
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    /// A u32 key/value.
    fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.str(key).u32(4).u32(v)
    }
    /// A tensor info: name, ne (innermost first), ggml type, offset.
    fn tensor(&mut self, name: &str, ne: &[u64], ty: u32, offset: u64) -> &mut Self {
        self.str(name).u32(ne.len() as u32);
        for &d in ne {
            self.u64(d);
        }
        self.u32(ty).u64(offset)
    }
    /// Pads to 32 and appends `n` data bytes.
    fn data(&mut self, n: usize) -> &mut Self {
        let pad = self.0.len().div_ceil(32) * 32;
        self.0.resize(pad + n, 0);
        self
    }
    fn parse(&self) -> Result<GgufFile, GgufError> {
        GgufFile::from_bytes(self.0.clone())
    }
}

fn err(r: &Raw) -> String {
    match r.parse() {
        Ok(_) => panic!("accepted a broken file"),
        Err(e) => e.to_string(),
    }
}

fn valid() -> Raw {
    let mut r = Raw::header(3, 1, 1);
    r.kv_u32("a.b", 1).tensor("t", &[4, 2], 0, 0).data(32);
    r
}

#[test]
fn the_hand_built_file_is_valid() {
    let f = valid().parse().unwrap();
    assert_eq!(f.tensors[0].shape, vec![2, 4]);
    assert_eq!(f.tensors[0].size, 32);
}

#[test]
fn rejects_bad_magic_and_versions() {
    let mut r = valid();
    r.0[0] = b'X';
    assert!(err(&r).contains("not a GGUF"));
    for v in [0u32, 1, 4, 0x0300_0000] {
        let mut r = valid();
        r.0[4..8].copy_from_slice(&v.to_le_bytes());
        assert!(err(&r).contains("version"), "version {v}");
    }
    let mut r = valid();
    r.0[4..8].copy_from_slice(&2u32.to_le_bytes());
    r.parse().unwrap(); // version 2 has the same layout
}

#[test]
fn rejects_huge_counts_before_allocating() {
    for n in [u64::MAX, 1 << 40, 1000] {
        let mut r = Raw::header(3, n, 0);
        r.data(64);
        assert!(err(&r).contains("tensors"), "n_tensors {n}");
        let mut r = Raw::header(3, 0, n);
        r.data(64);
        assert!(err(&r).contains("key/value"), "n_kv {n}");
    }
}

#[test]
fn rejects_huge_string_lengths() {
    for len in [u64::MAX, 1 << 40, 100] {
        let mut r = Raw::header(3, 0, 1);
        r.u64(len).bytes(&[b'a'; 64]);
        assert!(err(&r).contains("truncated: key #0"), "key length {len}");

        let mut r = Raw::header(3, 0, 1);
        r.str("k").u32(8).u64(len).bytes(&[b'a'; 64]);
        let e = err(&r);
        assert!(e.contains("truncated") && e.contains("'k'"), "{e}");

        let mut r = Raw::header(3, 1, 0);
        r.u64(len).bytes(&[0; 40]);
        assert!(err(&r).contains("name of tensor #0"));
    }
}

#[test]
fn rejects_huge_array_lengths() {
    for (elem_type, len) in [
        (0u32, u64::MAX),
        (4, 1 << 61),
        (8, 1 << 40),
        (9, 1 << 33),
        (10, 3),
    ] {
        let mut r = Raw::header(3, 0, 1);
        r.str("arr").u32(9).u32(elem_type).u64(len).bytes(&[0; 16]);
        let e = err(&r);
        assert!(e.contains("'arr'"), "{e}");
    }
}

#[test]
fn rejects_bad_value_types_and_deep_nesting() {
    let mut r = Raw::header(3, 0, 1);
    r.str("k").u32(13).u32(0);
    assert!(err(&r).contains("unknown value type id 13"));
    let mut r = Raw::header(3, 0, 1);
    r.str("k").u32(9).u32(77).u64(0);
    assert!(err(&r).contains("unknown value type id 77"));
    // An array of arrays of arrays ... deeper than we accept.
    let mut r = Raw::header(3, 0, 1);
    r.str("deep").u32(9);
    for _ in 0..10 {
        r.u32(9).u64(1);
    }
    r.u32(0).u64(0);
    assert!(err(&r).contains("nested deeper"));
}

#[test]
fn rejects_empty_duplicate_and_non_utf8_keys() {
    let mut r = Raw::header(3, 0, 1);
    r.str("").u32(4).u32(1);
    assert!(err(&r).contains("empty"));
    let mut r = Raw::header(3, 0, 2);
    r.kv_u32("k", 1).kv_u32("k", 2);
    assert!(err(&r).contains("duplicate key 'k'"));
    let mut r = Raw::header(3, 0, 1);
    r.u64(2).bytes(&[0xff, 0xfe]).u32(4).u32(1);
    assert!(err(&r).contains("UTF-8"));
}

#[test]
fn rejects_bad_alignment() {
    for a in [0u32, 3, 48] {
        let mut r = Raw::header(3, 0, 1);
        r.kv_u32("general.alignment", a);
        assert!(err(&r).contains("alignment"), "{a}");
    }
    let mut r = Raw::header(3, 0, 1);
    r.str("general.alignment").u32(10).u64(32); // right value, wrong type
    assert!(err(&r).contains("alignment"));
}

#[test]
fn rejects_bad_tensor_infos() {
    let cases: Vec<(Raw, &str)> = vec![
        (
            {
                let mut r = Raw::header(3, 1, 0);
                r.tensor("t", &[], 0, 0).data(32);
                r
            },
            "0 dimensions",
        ),
        (
            {
                let mut r = Raw::header(3, 1, 0);
                r.tensor("t", &[1, 1, 1, 1, 1], 0, 0).data(32);
                r
            },
            "5 dimensions",
        ),
        (
            {
                let mut r = Raw::header(3, 1, 0);
                r.tensor("t", &[4, 0], 0, 0).data(32);
                r
            },
            "dimension 1 is 0",
        ),
        (
            {
                let mut r = Raw::header(3, 1, 0);
                r.tensor("t", &[u64::MAX], 0, 0).data(32);
                r
            },
            "dimension 0",
        ),
        (
            {
                let mut r = Raw::header(3, 1, 0);
                r.tensor("t", &[1 << 32, 1 << 32, 1 << 32], 0, 0).data(32);
                r
            },
            "too many elements",
        ),
        (
            {
                let mut r = Raw::header(3, 1, 0);
                r.tensor("t", &[1 << 62, 4], 0, 0).data(32);
                r
            },
            "too many elements",
        ),
        (
            {
                let mut r = Raw::header(3, 1, 0);
                r.tensor("t", &[4], 99, 0).data(32);
                r
            },
            "ggml type id 99",
        ),
        (
            {
                let mut r = Raw::header(3, 1, 0);
                r.tensor("t", &[4], 4, 0).data(32);
                r
            },
            "ggml type id 4",
        ),
        (
            {
                let mut r = Raw::header(3, 1, 0);
                r.tensor("t", &[48], 39, 0).data(64);
                r
            },
            "block size 32",
        ),
        (
            {
                let mut r = Raw::header(3, 1, 0);
                r.tensor("t", &[4], 0, 32).data(128);
                r
            },
            "expected 0",
        ),
        (
            {
                let mut r = Raw::header(3, 2, 0);
                r.tensor("t", &[4], 0, 0).tensor("u", &[4], 0, 16).data(64);
                r
            },
            "offset 16, expected 32",
        ),
        (
            {
                let mut r = Raw::header(3, 2, 0);
                r.tensor("t", &[4], 0, 0).tensor("t", &[4], 0, 32).data(64);
                r
            },
            "duplicate tensor name 't'",
        ),
        (
            {
                let mut r = Raw::header(3, 1, 0);
                r.tensor(&"x".repeat(64), &[4], 0, 0).data(32);
                r
            },
            "ggml allows at most 63",
        ),
        (
            {
                let mut r = Raw::header(3, 1, 0);
                r.tensor("t", &[64, 64], 0, 0).data(100);
                r
            },
            "outside the file",
        ),
        (
            {
                let mut r = Raw::header(3, 1, 0);
                r.tensor("t", &[4], 0, 0);
                r
            },
            "outside the file",
        ),
    ];
    for (i, (r, want)) in cases.iter().enumerate() {
        let e = err(r);
        assert!(e.contains(want), "case {i}: '{e}' lacks '{want}'");
    }
}

#[test]
fn rejects_every_truncation_of_a_gguf_py_file() {
    let bytes = std::fs::read(data_dir().join("gguf_py_mixed.gguf")).unwrap();
    let full = GgufFile::from_bytes(bytes.clone()).unwrap();
    let last = full.tensors.last().unwrap();
    // Only the zero padding after the last tensor may go missing (llama.cpp checks unpadded sizes too).
    let data_end = (full.data_offset + last.offset) as usize + last.size;
    for n in 0..bytes.len() {
        let r = GgufFile::from_bytes(bytes[..n].to_vec());
        assert_eq!(r.is_ok(), n >= data_end, "truncated to {n} bytes");
    }
}

#[test]
fn open_names_the_file_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.gguf");
    std::fs::write(&path, b"GGUF\x03\0\0\0").unwrap();
    let e = GgufFile::open(&path).unwrap_err().to_string();
    assert!(e.contains("broken.gguf") && e.contains("truncated"), "{e}");
    let e = GgufFile::open(&dir.path().join("missing.gguf"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.gguf"), "{e}");
}

/// xorshift64*, so the mutation tests are reproducible without a crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Whatever a mutated file parses to must be internally consistent: views inside the file and of the size their
/// shape says.
fn consistent(f: &GgufFile) {
    for v in f.tensor_views() {
        v.check().unwrap();
    }
}

#[test]
fn survives_byte_flips_and_random_mutations() {
    let bytes = std::fs::read(data_dir().join("gguf_py_mixed.gguf")).unwrap();
    // Every byte, several ways.
    for i in 0..bytes.len() {
        for x in [0xffu8, 0x80, 0x01, 0x7f] {
            let mut b = bytes.clone();
            b[i] ^= x;
            if let Ok(f) = GgufFile::from_bytes(b) {
                consistent(&f);
            }
        }
        for v in [0x00u8, 0xff] {
            let mut b = bytes.clone();
            b[i] = v;
            if let Ok(f) = GgufFile::from_bytes(b) {
                consistent(&f);
            }
        }
    }
    // Random multi-byte mutations, including whole u64 fields set to extreme values.
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for _ in 0..3000 {
        let mut b = bytes.clone();
        for _ in 0..1 + rng.next() % 4 {
            let i = (rng.next() as usize) % b.len();
            match rng.next() % 3 {
                0 => b[i] = rng.next() as u8,
                1 => {
                    let v = [u64::MAX, 1 << 63, 1 << 32, 0][(rng.next() % 4) as usize];
                    let end = (i + 8).min(b.len());
                    let n = end - i;
                    b[i..end].copy_from_slice(&v.to_le_bytes()[..n]);
                }
                _ => b.truncate(i),
            }
        }
        if let Ok(f) = GgufFile::from_bytes(b) {
            consistent(&f);
        }
    }
}
