//! The forward pass refuses broken checkpoints before computing, with errors that name the tensor.

use std::path::Path;

use ossify::checkpoint::Checkpoint;
use ossify::gpt_oss::{ForwardOptions, GptOssConfig, Model, TensorSource};
use ossify_formats::TensorView;

/// A checkpoint with one tensor hidden, or given a wrong shape, or another config.
struct Tampered<'c> {
    inner: &'c Checkpoint,
    config: Option<GptOssConfig>,
    hide: Option<&'static str>,
    reshape: Option<(&'static str, Vec<usize>)>,
}

impl TensorSource for Tampered<'_> {
    fn config(&self) -> &GptOssConfig {
        self.config.as_ref().unwrap_or(&self.inner.config)
    }
    fn get(&self, name: &str) -> Option<TensorView<'_>> {
        if self.hide == Some(name) {
            return None;
        }
        let mut t = self.inner.get(name)?;
        if let Some((n, shape)) = &self.reshape {
            if *n == name {
                t.shape = shape.clone();
            }
        }
        Some(t)
    }
    fn origin(&self) -> String {
        "tampered".into()
    }
}

fn tiny() -> Checkpoint {
    Checkpoint::open(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/tiny"),
        None,
    )
    .unwrap()
}

fn error_of(src: &Tampered) -> String {
    match Model::new(src, ForwardOptions::default()) {
        Ok(_) => panic!("a broken checkpoint was accepted"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn missing_tensor_is_named() {
    let c = tiny();
    for name in [
        "model.layers.2.self_attn.sinks",
        "model.layers.1.mlp.experts.down_proj_scales",
        "lm_head.weight",
    ] {
        let e = error_of(&Tampered {
            inner: &c,
            config: None,
            hide: Some(name),
            reshape: None,
        });
        let base = name.trim_end_matches("_scales");
        assert!(e.contains(base), "{name}: {e}");
    }
}

#[test]
fn wrong_shape_is_named() {
    let c = tiny();
    let e = error_of(&Tampered {
        inner: &c,
        config: None,
        hide: None,
        reshape: Some(("model.layers.0.self_attn.q_proj.weight", vec![96, 64])),
    });
    assert!(e.contains("model.layers.0.self_attn.q_proj.weight"), "{e}");
    assert!(e.contains("[64, 96]"), "{e}");
    // Bytes that do not fit the claimed shape are caught too.
    let e = error_of(&Tampered {
        inner: &c,
        config: None,
        hide: None,
        reshape: Some(("model.layers.0.mlp.router.bias", vec![5])),
    });
    assert!(e.contains("model.layers.0.mlp.router.bias"), "{e}");
}

#[test]
fn not_a_gpt_oss_checkpoint() {
    let c = tiny();
    let e = error_of(&Tampered {
        inner: &c,
        config: None,
        hide: Some("model.embed_tokens.weight"),
        reshape: None,
    });
    assert!(e.contains("token embedding"), "{e}");
}

#[test]
fn impossible_config_is_refused() {
    let c = tiny();
    let edits: [fn(&mut GptOssConfig); 4] = [
        |k| k.num_experts_per_tok = 0,
        |k| k.num_key_value_heads = 3,
        |k| k.head_dim = 0,
        |k| {
            k.layer_types.pop();
        },
    ];
    for edit in edits {
        let mut cfg = c.config.clone();
        edit(&mut cfg);
        let e = error_of(&Tampered {
            inner: &c,
            config: Some(cfg),
            hide: None,
            reshape: None,
        });
        assert!(e.contains("config"), "{e}");
    }
}
