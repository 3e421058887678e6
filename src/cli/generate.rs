//! `ossify generate MODEL -p TEXT` and `ossify chat MODEL`: talk to a checkpoint in the harmony format, with
//! the same forward pass that verify-parity checks.
//!
//! The conversation is rendered as openai-harmony renders it (`--template harmony`, the default) or with the
//! checkpoint's own chat template (`--template model`); decoding uses the KV cache, greedy by default
//! (`--temperature`, `--top-p`, `--seed` to sample), and stops at `<|return|>` / `<|call|>`. The final channel
//! streams to standard output; `--show-reasoning` shows the analysis (and commentary) channel on standard error.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};

use crate::chat::generate::{
    generate, GenerateOptions, Generation, HarmonyIds, SamplerOptions, StopReason,
};
use crate::chat::harmony::{
    render_for_completion, Event, Message, ReasoningEffort, Role, SystemContent,
};
use crate::chat::template;
use crate::checkpoint::Checkpoint;
use crate::gpt_oss::{ForwardOptions, Model, Precision};
use crate::parity::input::text_tokenizer;
use crate::tokenizer::TextTokenizer;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TemplateArg {
    /// As OpenAI's openai-harmony library renders it
    Harmony,
    /// The checkpoint's own chat template (chat_template.jinja, tokenizer_config.json or the GGUF's)
    Model,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PrecisionArg {
    /// f32 with every weight decoded exactly (transformers' reference)
    Exact,
    /// activations rounded as llama.cpp's CPU backend rounds them (faster)
    Q8,
}

/// Options shared by `generate` and `chat`.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// A checkpoint folder or GGUF file.
    pub model: PathBuf,
    /// Instructions for the model (harmony's developer message, what other tools call the system prompt).
    #[arg(long, visible_alias = "system-prompt", value_name = "TEXT")]
    pub system: Option<String>,
    /// Reasoning effort written in the system message.
    #[arg(long, value_enum, default_value_t = ReasoningEffort::Medium, ignore_case = true)]
    pub reasoning: ReasoningEffort,
    /// "Current date: ..." in the system message: YYYY-MM-DD or `today` (harmony writes none by default; the
    /// model's own template writes today's).
    #[arg(long, value_name = "DATE")]
    pub date: Option<String>,
    /// How the conversation becomes tokens.
    #[arg(long, value_enum, default_value_t = TemplateArg::Harmony, ignore_case = true)]
    pub template: TemplateArg,
    /// Most tokens to generate per answer.
    #[arg(short = 'n', long, visible_alias = "n-predict", default_value_t = 1024)]
    pub max_tokens: usize,
    /// Sampling temperature; 0 is greedy (the default, deterministic).
    #[arg(long, visible_alias = "temp", default_value_t = 0.0)]
    pub temperature: f32,
    /// Nucleus sampling: keep the most likely tokens up to this total probability.
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Seed of the sampler (default: from the clock; --json reports it). The same seed gives the same text.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Show the analysis (reasoning) and commentary channels on standard error.
    #[arg(long)]
    pub show_reasoning: bool,
    /// Forward-pass precision.
    #[arg(long, value_enum, default_value_t = PrecisionArg::Exact, ignore_case = true)]
    pub precision: PrecisionArg,
    /// Round the YaRN correction range as llama.cpp does (to match its tokens exactly).
    #[arg(long)]
    pub yarn_truncate: bool,
    /// Context length (prompt and answers together).
    #[arg(short = 'c', long, default_value_t = 4096, value_parser = super::parse_ctx)]
    pub ctx: usize,
    /// One JSON object (per answer for chat): tokens, text per channel, timings.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub common: super::CommonArgs,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub decode: DecodeArgs,
    /// The user's message.
    #[arg(
        short = 'p',
        long,
        value_name = "TEXT",
        required_unless_present = "file"
    )]
    pub prompt: Option<String>,
    /// Read the user's message from a file.
    #[arg(short = 'f', long, value_name = "FILE", conflicts_with = "prompt")]
    pub file: Option<PathBuf>,
    /// The prompt is already the model's text (special tokens parsed, no conversation added).
    #[arg(long)]
    pub raw: bool,
}

#[derive(Debug, Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub decode: DecodeArgs,
}

/// A loaded model with its tokenizer and conversation settings.
struct Talker<'a> {
    args: &'a DecodeArgs,
    tok: TextTokenizer,
    ids: HarmonyIds,
    template: Option<(String, String)>,
    today: (i32, u32, u32),
    date: Option<String>,
    seed: u64,
}

impl Talker<'_> {
    fn system_messages(&self) -> Vec<Message> {
        let sys = SystemContent {
            reasoning_effort: Some(self.args.reasoning),
            conversation_start_date: self.date.clone(),
            ..SystemContent::default()
        };
        let mut v = vec![Message::system(sys)];
        if let Some(s) = &self.args.system {
            v.push(Message::developer(s.clone()));
        }
        v
    }

    /// The prompt ids of a conversation (system and developer messages first).
    fn prompt(&self, conv: &[Message]) -> Result<Vec<u32>> {
        match &self.template {
            None => render_for_completion(conv, Role::Assistant)?.to_ids(&self.tok),
            Some((tpl, from)) => {
                let messages = template_messages(conv);
                let mut extra = serde_json::Map::new();
                extra.insert(
                    "reasoning_effort".into(),
                    self.args.reasoning.as_str().into(),
                );
                let text = template::render(tpl, &messages, &extra, true, self.today)
                    .with_context(|| from.clone())?;
                self.tok.encode(&text, true)
            }
        }
    }
}

/// Messages as HF chat templates take them: a developer message's instructions as the first "system"
/// message, assistant analysis as `thinking` beside the final `content`.
fn template_messages(conv: &[Message]) -> serde_json::Value {
    let mut out: Vec<serde_json::Value> = Vec::new();
    let mut thinking: Option<String> = None;
    for m in conv {
        match m.role {
            Role::System => {}
            Role::Developer => {
                if let crate::chat::harmony::Content::Developer(Some(i)) = &m.content {
                    out.push(serde_json::json!({"role": "system", "content": i}));
                }
            }
            Role::Assistant if m.channel.as_deref() == Some("analysis") => {
                thinking = Some(m.content_text());
            }
            Role::Assistant => {
                let mut v = serde_json::json!({"role": "assistant", "content": m.content_text()});
                if let Some(t) = thinking.take() {
                    v["thinking"] = t.into();
                }
                out.push(v);
            }
            r => out.push(serde_json::json!({"role": r.as_str(), "content": m.content_text()})),
        }
    }
    serde_json::Value::Array(out)
}

fn color_allowed() -> bool {
    crate::progress::color_allowed() && std::io::stderr().is_terminal()
}

/// Prints content as it comes: the final channel (or text outside any channel) to stdout, the others to
/// stderr when asked.
struct Printer {
    show_reasoning: bool,
    color: bool,
    last: Option<String>,
    printed_final: bool,
}

impl Printer {
    /// A model that never completed a harmony header (an untrained one, or the wrong template) still shows
    /// what it wrote, special tokens included.
    fn fallback(&mut self, g: &Generation) -> Result<()> {
        if !self.printed_final && g.messages.is_empty() && !g.text.is_empty() {
            let mut out = std::io::stdout().lock();
            out.write_all(g.text.as_bytes())?;
            out.flush()?;
            self.printed_final = true;
        }
        Ok(())
    }

    fn event(&mut self, e: &Event) -> Result<()> {
        let Event::Content { channel, text } = e else {
            return Ok(());
        };
        let final_like = matches!(channel.as_deref(), None | Some("final"));
        if final_like {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
            self.printed_final = true;
        } else if self.show_reasoning {
            let mut err = std::io::stderr().lock();
            if self.last.as_deref() != channel.as_deref() {
                writeln!(err, "[{}]", channel.as_deref().unwrap_or(""))?;
            }
            if self.color {
                write!(err, "\x1b[2m{text}\x1b[0m")?;
            } else {
                write!(err, "{text}")?;
            }
            err.flush()?;
        }
        self.last = channel.clone();
        Ok(())
    }
}

fn channels(g: &Generation) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    for msg in &g.messages {
        let k = msg.channel.clone().unwrap_or_default();
        let prev = m.get(&k).and_then(|v| v.as_str()).unwrap_or("").to_string();
        m.insert(k, format!("{prev}{}", msg.content).into());
    }
    m
}

fn report(t: &Talker<'_>, g: &Generation, prompt_ids: &[u32], mode: &str) -> serde_json::Value {
    let per_s = |n: usize, ms: f64| if ms > 0.0 { n as f64 / ms * 1e3 } else { 0.0 };
    let mut v = serde_json::json!({
        "model": t.args.model.display().to_string(),
        "mode": mode,
        "template": match &t.template { None => "harmony".to_string(), Some((_, from)) => from.clone() },
        "prompt_tokens": g.prompt_tokens,
        "prompt_ids": prompt_ids,
        "tokens": g.tokens,
        "text": g.text,
        "channels": channels(g),
        "messages": g.messages,
        "stop": g.stop,
        "timings": {
            "prompt_ms": g.prompt_ms,
            "prompt_tokens_per_s": per_s(g.prompt_tokens, g.prompt_ms),
            "generate_ms": g.generate_ms,
            "generate_tokens_per_s": per_s(g.tokens.len(), g.generate_ms),
        },
    });
    if t.args.temperature > 0.0 {
        v["seed"] = t.seed.into();
    }
    v
}

fn stats_line(g: &Generation) -> String {
    let per_s = |n: usize, ms: f64| if ms > 0.0 { n as f64 / ms * 1e3 } else { 0.0 };
    let stop = match g.stop {
        StopReason::Return => "<|return|>",
        StopReason::Call => "<|call|>",
        StopReason::EndOfText => "<|endoftext|>",
        StopReason::MaxTokens => "--max-tokens reached",
        StopReason::ContextFull => "context full (--ctx)",
    };
    format!(
        "prompt {} tokens in {:.0} ms ({:.1} tok/s), generated {} in {:.0} ms ({:.1} tok/s), stopped at {stop}",
        g.prompt_tokens,
        g.prompt_ms,
        per_s(g.prompt_tokens, g.prompt_ms),
        g.tokens.len(),
        g.generate_ms,
        per_s(g.tokens.len(), g.generate_ms)
    )
}

/// Assistant messages of a generation, as they go back into the conversation.
fn answer_messages(g: &Generation) -> Vec<Message> {
    g.messages
        .iter()
        .filter(|m| m.role == "assistant")
        .map(|m| {
            let mut msg = Message::assistant(m.channel.as_deref().unwrap_or("final"), &m.content);
            msg.recipient = m.recipient.clone();
            msg.content_type = m.content_type.clone();
            msg
        })
        .collect()
}

fn run_with<F>(a: &DecodeArgs, body: F) -> Result<()>
where
    F: FnOnce(&Talker<'_>, &Model<'_>, &str) -> Result<()>,
{
    if a.ctx == 0 {
        bail!("--ctx must be at least 1");
    }
    if !(a.temperature >= 0.0 && a.temperature.is_finite()) {
        bail!(
            "--temperature {}: must be a finite number >= 0",
            a.temperature
        );
    }
    if !(0.0..=1.0).contains(&a.top_p) {
        bail!("--top-p {}: must be in [0, 1]", a.top_p);
    }
    let ck = Checkpoint::open(&a.model, None)?;
    let tok = text_tokenizer(&ck)?;
    let ids = HarmonyIds::new(&tok);
    let template = match a.template {
        TemplateArg::Harmony => None,
        TemplateArg::Model => Some(template::find_chat_template(&a.model)?.with_context(|| {
            format!(
                "{}: no chat template (chat_template.jinja, tokenizer_config.json or tokenizer.chat_template); use --template harmony",
                a.model.display()
            )
        })?),
    };
    let today = match a.date.as_deref() {
        None | Some("today") => template::today_utc(),
        Some(d) => template::parse_date(d)?,
    };
    let date = a.date.as_ref().map(|_| {
        let (y, m, d) = today;
        format!("{y:04}-{m:02}-{d:02}")
    });
    let seed = a.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    let model = Model::new(
        &ck,
        ForwardOptions {
            yarn_truncate: a.yarn_truncate,
            precision: match a.precision {
                PrecisionArg::Exact => Precision::Exact,
                PrecisionArg::Q8 => Precision::Q8Activations,
            },
            threads: a.common.threads,
            context: a.ctx.min(ck.config.max_position_embeddings.max(1)),
            ..ForwardOptions::default()
        },
    )
    .with_context(|| format!("{}: preparing the forward pass", a.model.display()))?;
    let mode = model.options().mode();
    let t = Talker {
        args: a,
        tok,
        ids,
        template,
        today,
        date,
        seed,
    };
    body(&t, &model, mode)
}

fn decode_options(a: &DecodeArgs, seed: u64) -> GenerateOptions {
    GenerateOptions {
        max_tokens: a.max_tokens,
        ctx: a.ctx,
        sampler: SamplerOptions {
            temperature: a.temperature,
            top_p: a.top_p,
            seed,
        },
    }
}

/// `ossify generate`.
pub fn run_generate(g: &GenerateArgs) -> Result<()> {
    let user = match (&g.prompt, &g.file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => crate::checkpoint::read_input_text(f)?,
        (None, None) => bail!("give the prompt with -p TEXT or -f FILE"),
    };
    let a = &g.decode;
    run_with(a, |t, model, mode| {
        let prompt = if g.raw {
            t.tok.encode(&user, true)?
        } else {
            let mut conv = t.system_messages();
            conv.push(Message::text(Role::User, user.clone()));
            t.prompt(&conv)?
        };
        let mut session = model.session();
        let mut history = Vec::new();
        let mut printer = Printer {
            show_reasoning: a.show_reasoning && !a.json,
            color: color_allowed(),
            last: None,
            printed_final: false,
        };
        let gen = generate(
            &mut session,
            &mut history,
            &prompt,
            &t.tok,
            &t.ids,
            &decode_options(a, t.seed),
            |e| {
                if a.json {
                    Ok(())
                } else {
                    printer.event(e)
                }
            },
        )?;
        if a.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&report(t, &gen, &prompt, mode))?
            );
        } else {
            printer.fallback(&gen)?;
            if printer.printed_final {
                println!();
            }
            if !a.common.quiet {
                eprintln!("{}", stats_line(&gen));
            }
        }
        Ok(())
    })
}

/// `ossify chat`: one user message per line of standard input (a terminal or a pipe); `/exit` or end of input
/// ends it.
pub fn run_chat(c: &ChatArgs) -> Result<()> {
    let a = &c.decode;
    run_with(a, |t, model, mode| {
        let interactive = std::io::stdin().is_terminal();
        let mut conv = t.system_messages();
        let mut session = model.session();
        let mut history = Vec::new();
        let mut turn = 0u64;
        if interactive && !a.common.quiet {
            eprintln!(
                "ossify chat: {} ({}); one message per line, /exit or Ctrl-D to end",
                a.model.display(),
                mode
            );
        }
        let stdin = std::io::stdin();
        let mut lines = stdin.lock().lines();
        loop {
            if interactive {
                eprint!("> ");
                std::io::stderr().flush()?;
            }
            let Some(line) = lines.next() else { break };
            let line = line.context("reading standard input")?;
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            if matches!(line.trim(), "/exit" | "/quit") {
                break;
            }
            conv.push(Message::text(Role::User, line));
            let prompt = t.prompt(&conv)?;
            let mut printer = Printer {
                show_reasoning: a.show_reasoning && !a.json,
                color: color_allowed(),
                last: None,
                printed_final: false,
            };
            let seed = t.seed.wrapping_add(turn);
            let gen = generate(
                &mut session,
                &mut history,
                &prompt,
                &t.tok,
                &t.ids,
                &decode_options(a, seed),
                |e| {
                    if a.json {
                        Ok(())
                    } else {
                        printer.event(e)
                    }
                },
            )?;
            turn += 1;
            if a.json {
                let mut v = report(t, &gen, &prompt, mode);
                v["turn"] = turn.into();
                println!("{}", serde_json::to_string(&v)?);
            } else {
                printer.fallback(&gen)?;
                println!();
                if !a.common.quiet {
                    eprintln!("[{}]", stats_line(&gen));
                }
            }
            let answer = answer_messages(&gen);
            if answer.is_empty() {
                conv.push(Message::assistant("final", gen.text.clone()));
            } else {
                conv.extend(answer);
            }
        }
        Ok(())
    })
}
