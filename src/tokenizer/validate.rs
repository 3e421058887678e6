//! The validation step for tokenizer.json, run on every one ossify reads before its ids are used: every id an
//! integer inside the vocabulary, no id given to two tokens, and every added token at the id the file states.
//!
//! The `tokenizers` library does not refuse these files: it keeps one of two tokens that share an id, and
//! places an added token whose id is taken or out of order at the next free id (warning "Token '..' was
//! expected to have ID '..' but was given ID '..'", tokenizers/src/tokenizer/serialization.rs). Either way
//! every later special token moves, and a converted GGUF would carry the wrong ids.

use std::collections::HashMap;

use anyhow::{bail, Result};
use serde_json::Value;

/// An id from tokenizer.json, or an error naming where it was found.
fn id_of(v: Option<&Value>, origin: &str, what: &dyn Fn() -> String) -> Result<u32> {
    match v.and_then(Value::as_u64).map(u32::try_from) {
        Some(Ok(id)) => Ok(id),
        _ => bail!(
            "{origin}: {} has id {}, not a token id (an integer from 0 to {})",
            what(),
            v.map_or("none".to_string(), Value::to_string),
            u32::MAX
        ),
    }
}

/// Checks `tj` (the parsed file) and what the library made of it. `vocab_size` is the model's (the embedding
/// rows) when known: every id must be below it.
pub fn validate_tokenizer_json(
    tj: &Value,
    tokenizer: &tokenizers::Tokenizer,
    vocab_size: Option<usize>,
    origin: &str,
) -> Result<()> {
    let inside = |id: u32, what: &dyn Fn() -> String| -> Result<()> {
        if let Some(n) = vocab_size.filter(|&n| id as usize >= n) {
            bail!(
                "{origin}: {} has id {id}, outside the model's vocabulary (vocab_size {n})",
                what()
            );
        }
        Ok(())
    };
    let mut owner: HashMap<u32, String> = HashMap::new();
    if let Some(vocab) = tj
        .get("model")
        .and_then(|m| m.get("vocab"))
        .and_then(Value::as_object)
    {
        for (tok, v) in vocab {
            let what = || format!("model.vocab token {}", quoted(tok));
            let id = id_of(Some(v), origin, &what)?;
            inside(id, &what)?;
            if let Some(prev) = owner.insert(id, tok.clone()) {
                bail!(
                    "{origin}: model.vocab gives id {id} to two tokens, {} and {}",
                    quoted(&prev),
                    quoted(tok)
                );
            }
        }
    }
    let added = match tj.get("added_tokens") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(a)) => a.as_slice(),
        Some(other) => bail!("{origin}: added_tokens should be a list, found {other}"),
    };
    let mut added_ids: HashMap<u32, &str> = HashMap::new();
    for (i, t) in added.iter().enumerate() {
        let Some(content) = t.get("content").and_then(Value::as_str) else {
            bail!("{origin}: added_tokens[{i}] has no string 'content'");
        };
        let what = || format!("added_tokens[{i}] {}", quoted(content));
        let id = id_of(t.get("id"), origin, &what)?;
        inside(id, &what)?;
        if let Some(prev) = added_ids.insert(id, content) {
            bail!(
                "{origin}: added_tokens gives id {id} to two tokens, {} and {}",
                quoted(prev),
                quoted(content)
            );
        }
        if let Some(vocab_tok) = owner.get(&id).filter(|v| v.as_str() != content) {
            bail!(
                "{origin}: added_tokens[{i}] {} has id {id}, which model.vocab gives to {}",
                quoted(content),
                quoted(vocab_tok)
            );
        }
        let placed = tokenizer.token_to_id(content);
        if placed != Some(id) {
            bail!(
                "{origin}: added_tokens[{i}] {} has id {id} in the file, but the tokenizer places it at {} \
                 (ids must follow the vocabulary without gaps or clashes)",
                quoted(content),
                placed.map_or("no id".to_string(), |p| p.to_string())
            );
        }
    }
    Ok(())
}

/// Loads tokenizer.json `bytes` with the `tokenizers` library, which panics on some malformed files instead of
/// returning an error (0.22: a JSON syntax error inside `decoder` hits `expect("Helper")`, a `Precompiled`
/// normalizer without a valid charsmap `expect("Precompiled")`; found by `fuzz/` tokenizer_json). The JSON
/// syntax is checked first, and a panic left is caught, with the panic message kept out of the terminal, and
/// reported as the one error line it should have been. Returns the library's tokenizer and the parsed file.
pub fn load_tokenizer_json(bytes: &[u8], origin: &str) -> Result<(tokenizers::Tokenizer, Value)> {
    let tj: Value = serde_json::from_slice(bytes)
        .map_err(|e| anyhow::anyhow!("{origin}: not valid JSON: {e}"))?;
    let cannot =
        |why: String| anyhow::anyhow!("{origin}: the tokenizers library cannot load it: {why}");
    // The hook is process-wide: swapped for a silent one only around this call (loading a tokenizer happens
    // before any worker thread starts), then put back.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let loaded = std::panic::catch_unwind(|| tokenizers::Tokenizer::from_bytes(bytes));
    std::panic::set_hook(hook);
    match loaded {
        Ok(Ok(t)) => Ok((t, tj)),
        Ok(Err(e)) => Err(cannot(e.to_string())),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "it panicked".into());
            Err(cannot(format!("malformed ({})", msg.escape_debug())))
        }
    }
}

/// A token for an error line: quoted, with control characters escaped so a file cannot write to the terminal.
fn quoted(s: &str) -> String {
    format!("{s:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden_tokenizer() -> (Value, Vec<u8>) {
        let p =
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden/tiny/tokenizer.json");
        let bytes = std::fs::read(p).unwrap();
        (serde_json::from_slice(&bytes).unwrap(), bytes)
    }

    fn check(tj: &Value, vocab: Option<usize>) -> Result<()> {
        let bytes = serde_json::to_vec(tj).unwrap();
        // The library refuses some files itself (a negative id); that is an error too.
        let tok = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
        validate_tokenizer_json(tj, &tok, vocab, "t/tokenizer.json")
    }

    #[test]
    fn golden_passes_and_each_clash_is_named() {
        let (tj, _) = golden_tokenizer();
        check(&tj, Some(544)).unwrap();
        // Issue 8: an added token at 100000 was silently placed at the next free id.
        let mut v = tj.clone();
        v["added_tokens"][3]["id"] = 100000.into();
        let e = check(&v, None).unwrap_err().to_string();
        assert!(
            e.contains("added_tokens[3]") && e.contains("100000") && e.contains("places it at"),
            "{e}"
        );
        let e = check(&v, Some(544)).unwrap_err().to_string();
        assert!(
            e.contains("outside the model's vocabulary (vocab_size 544)"),
            "{e}"
        );
        // Issue 8: a duplicate id shifted every later special token by one.
        let mut v = tj.clone();
        v["added_tokens"][4]["id"] = v["added_tokens"][3]["id"].clone();
        let e = check(&v, Some(544)).unwrap_err().to_string();
        assert!(
            e.contains("added_tokens gives id") && e.contains("two tokens"),
            "{e}"
        );
        // Two vocabulary tokens with one id.
        let mut v = tj.clone();
        let first = v["model"]["vocab"]
            .as_object()
            .unwrap()
            .keys()
            .next()
            .unwrap()
            .clone();
        let second = v["model"]["vocab"]
            .as_object()
            .unwrap()
            .keys()
            .nth(1)
            .unwrap()
            .clone();
        let id = v["model"]["vocab"][&first].clone();
        v["model"]["vocab"][&second] = id;
        let e = check(&v, Some(544)).unwrap_err().to_string();
        assert!(e.contains("model.vocab gives id"), "{e}");
        // Negative and fractional ids.
        let mut v = tj.clone();
        v["added_tokens"][0]["id"] = (-1).into();
        assert!(check(&v, None).is_err());
        let mut v = tj;
        v["model"]["vocab"][&first] = 1.5.into();
        assert!(check(&v, None).is_err());
    }
}
