//! `--calibration`: the importance matrix ossify's forward pass collects equals the one transformers' experts
//! see (golden/quantize/make_imatrix.py), and it reaches the MSE encoder.

use std::path::PathBuf;

use ossify::checkpoint::Checkpoint;
use ossify::quantize::calibrate::importance_over;
use ossify::quantize::ImportanceMatrix;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn importance_matches_transformers() {
    let tokens: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root().join("golden/reference/tokens.json")).unwrap(),
    )
    .unwrap();
    let seqs: Vec<Vec<u32>> = tokens["sequences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s.as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_u64().unwrap() as u32)
                .collect()
        })
        .collect();
    let refs: Vec<&[u32]> = seqs.iter().map(|s| s.as_slice()).collect();
    let ckpt = Checkpoint::open(&root().join("golden/tiny-bf16-noisy"), None).unwrap();
    let ours = importance_over(&ckpt, &refs).unwrap();
    let theirs =
        ImportanceMatrix::read_gguf(&root().join("golden/quantize/tiny-bf16-noisy.imatrix.gguf"))
            .unwrap();
    let names: Vec<&str> = theirs.tensors().collect();
    assert_eq!(names.len(), 12);
    assert_eq!(ours.tensors().collect::<Vec<_>>(), names);
    let mut compared = 0;
    for n in names {
        assert_eq!(
            ours.counts(n),
            theirs.counts(n),
            "{n}: tokens routed per expert"
        );
        for e in 0..4 {
            let (Some(a), Some(b)) = (ours.expert(n, e), theirs.expert(n, e)) else {
                assert_eq!(ours.expert(n, e).is_some(), theirs.expert(n, e).is_some());
                continue;
            };
            for (x, y) in a.iter().zip(&b) {
                assert!(
                    (x - y).abs() <= 1e-4 * y.abs().max(1e-3),
                    "{n} expert {e}: {x} vs {y}"
                );
                compared += 1;
            }
        }
    }
    assert!(compared > 1000);
}
