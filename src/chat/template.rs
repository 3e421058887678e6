//! A checkpoint's own chat template (chat_template.jinja, tokenizer_config.json's `chat_template`, or a GGUF's
//! `tokenizer.chat_template`), rendered through minijinja the way transformers' `apply_chat_template` renders it
//! with jinja2: `trim_blocks` and `lstrip_blocks` on, `raise_exception`, `strftime_now` and a `tojson` that
//! writes as Python's `json.dumps(ensure_ascii=False)` does; Python's string and dict methods
//! (`.startswith`, `.items()`) through minijinja-contrib's pycompat.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use minijinja::{Environment, Error, ErrorKind, Value};

use crate::tokenizer::GgufVocab;

/// Finds the chat template of a checkpoint path: a GGUF's `tokenizer.chat_template`, or in a folder (or, for
/// OpenAI's `original/`, the folder around it) chat_template.jinja, then tokenizer_config.json's
/// `chat_template` (a string). None when there is none.
pub fn find_chat_template(model: &Path) -> Result<Option<(String, String)>> {
    if model.is_file() {
        let v = GgufVocab::from_gguf_path(model)?;
        return Ok(v
            .chat_template
            .map(|t| (t, format!("{} tokenizer.chat_template", model.display()))));
    }
    let mut dirs = vec![model.to_path_buf()];
    if model.file_name().is_some_and(|n| n == "original") {
        if let Some(p) = model.parent() {
            dirs.push(p.to_path_buf());
        }
    }
    for d in dirs {
        let j = d.join("chat_template.jinja");
        if j.is_file() {
            let t =
                std::fs::read_to_string(&j).with_context(|| format!("reading {}", j.display()))?;
            return Ok(Some((t, j.display().to_string())));
        }
        let c = d.join("tokenizer_config.json");
        if c.is_file() {
            let text =
                std::fs::read_to_string(&c).with_context(|| format!("reading {}", c.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{}: not JSON", c.display()))?;
            if let Some(t) = v.get("chat_template").and_then(|t| t.as_str()) {
                return Ok(Some((
                    t.to_string(),
                    format!("{} chat_template", c.display()),
                )));
            }
        }
    }
    Ok(None)
}

/// Renders `template` with `messages` (a JSON array of `{role, content, thinking?}`) and extra variables
/// (`reasoning_effort`, `model_identity`, ...). `today` is what `strftime_now` formats (year, month, day).
pub fn render(
    template: &str,
    messages: &serde_json::Value,
    extra: &serde_json::Map<String, serde_json::Value>,
    add_generation_prompt: bool,
    today: (i32, u32, u32),
) -> Result<String> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |msg: String| -> Result<Value, Error> {
        Err(Error::new(ErrorKind::InvalidOperation, msg))
    });
    env.add_function(
        "strftime_now",
        move |fmt: String| -> Result<String, Error> { strftime(&fmt, today) },
    );
    env.add_filter("tojson", |v: Value| -> Result<String, Error> {
        let j: serde_json::Value = serde_json::to_value(&v)
            .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
        Ok(python_json(&j))
    });
    env.add_template("chat", template)
        .map_err(|e| anyhow!("the chat template does not parse: {e:#}"))?;
    let t = env
        .get_template("chat")
        .map_err(|e| anyhow!("the chat template: {e}"))?;
    let mut ctx = extra.clone();
    ctx.insert("messages".into(), messages.clone());
    ctx.insert(
        "add_generation_prompt".into(),
        serde_json::Value::Bool(add_generation_prompt),
    );
    t.render(Value::from_serialize(&ctx))
        .map_err(|e| anyhow!("rendering the chat template: {e:#}"))
}

/// `json.dumps(v, ensure_ascii=False)`: `", "` and `": "` separators (keys come out sorted: serde_json's map
/// is ordered, where Python keeps insertion order).
pub fn python_json(v: &serde_json::Value) -> String {
    use serde_json::Value as J;
    match v {
        J::Array(a) => format!(
            "[{}]",
            a.iter().map(python_json).collect::<Vec<_>>().join(", ")
        ),
        J::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("{}: {}", J::String(k.clone()), python_json(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// The date parts of C's strftime that chat templates use (%Y %m %d %B %b %y %-d %%).
fn strftime(fmt: &str, (y, m, d): (i32, u32, u32)) -> Result<String, Error> {
    let month = MONTHS
        .get(m.saturating_sub(1) as usize)
        .copied()
        .unwrap_or("?");
    let mut out = String::new();
    let mut it = fmt.chars();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('Y') => out.push_str(&format!("{y:04}")),
            Some('y') => out.push_str(&format!("{:02}", y.rem_euclid(100))),
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('B') => out.push_str(month),
            Some('b') => out.push_str(&month[..3.min(month.len())]),
            Some('-') if it.clone().next() == Some('d') => {
                it.next();
                out.push_str(&d.to_string());
            }
            Some('%') => out.push('%'),
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("strftime_now: %{} is not supported", other.unwrap_or(' ')),
                ))
            }
        }
    }
    Ok(out)
}

/// Today's date (UTC) as (year, month, day), from the system clock.
pub fn today_utc() -> (i32, u32, u32) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    civil_from_days((secs / 86_400) as i64)
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((y + i64::from(m <= 2)) as i32, m, d)
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Result<(i32, u32, u32)> {
    let bad = || anyhow!("--date {s:?}: expected YYYY-MM-DD");
    let mut p = s.splitn(3, '-');
    let y: i32 = p.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
    let m: u32 = p.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
    let d: u32 = p.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    Ok((y, m, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_305), (2025, 8, 5));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn strftime_parts() {
        assert_eq!(
            strftime("%Y-%m-%d %d %B %b %-d %%", (2025, 8, 5)).unwrap(),
            "2025-08-05 05 August Aug 5 %"
        );
        assert!(strftime("%H", (2025, 8, 5)).is_err());
    }

    #[test]
    fn json_as_python_writes_it() {
        let v: serde_json::Value = serde_json::from_str(r#"{"a":[1,"ü"],"b":null}"#).unwrap();
        assert_eq!(python_json(&v), r#"{"a": [1, "ü"], "b": null}"#);
    }
}
