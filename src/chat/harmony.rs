//! The harmony format gpt-oss was trained on, rendered as OpenAI's `openai-harmony` library renders it
//! (`HarmonyEncoding.render_conversation_for_completion`, openai-harmony 0.0.8 `src/encoding.rs`), and parsed
//! back from generated tokens as its `StreamableParser` parses them.
//!
//! A message is `<|start|>{role}[<|channel|>{channel}][ to={recipient}][ {content_type}]<|message|>{content}`
//! closed by `<|end|>`, or `<|call|>` for an assistant message to a recipient. Every text piece is tokenized on
//! its own with special tokens read as text (harmony's `render_text_into` = tiktoken's `encode_ordinary`), so
//! the ids are not always those of tokenizing the joined string. Tools and tool namespaces are not rendered
//! (ossify's chat has no tools).

use anyhow::{anyhow, bail, Result};

use crate::tokenizer::TextTokenizer;

/// The special tokens harmony's renderer and parser use (`FormattingToken` in openai-harmony).
pub const START: &str = "<|start|>";
pub const MESSAGE: &str = "<|message|>";
pub const END: &str = "<|end|>";
pub const RETURN: &str = "<|return|>";
pub const CALL: &str = "<|call|>";
pub const CHANNEL: &str = "<|channel|>";
pub const CONSTRAIN: &str = "<|constrain|>";

/// openai-harmony's `SystemContent.new()` defaults.
pub const DEFAULT_MODEL_IDENTITY: &str =
    "You are ChatGPT, a large language model trained by OpenAI.";
pub const DEFAULT_KNOWLEDGE_CUTOFF: &str = "2024-06";
pub const CHANNELS: [&str; 3] = ["analysis", "commentary", "final"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReasoningEffort {
    Low,
    Medium,
    High,
}

impl ReasoningEffort {
    pub fn as_str(self) -> &'static str {
        match self {
            ReasoningEffort::Low => "low",
            ReasoningEffort::Medium => "medium",
            ReasoningEffort::High => "high",
        }
    }
}

/// The system message's content (openai-harmony `SystemContent`).
#[derive(Clone, Debug)]
pub struct SystemContent {
    pub model_identity: Option<String>,
    pub reasoning_effort: Option<ReasoningEffort>,
    pub knowledge_cutoff: Option<String>,
    /// "Current date: ..." (harmony writes it only when set; `SystemContent.new()` leaves it unset)
    pub conversation_start_date: Option<String>,
    pub valid_channels: Vec<String>,
    pub channel_required: bool,
}

impl Default for SystemContent {
    fn default() -> Self {
        SystemContent {
            model_identity: Some(DEFAULT_MODEL_IDENTITY.into()),
            reasoning_effort: Some(ReasoningEffort::Medium),
            knowledge_cutoff: Some(DEFAULT_KNOWLEDGE_CUTOFF.into()),
            conversation_start_date: None,
            valid_channels: CHANNELS.iter().map(|c| c.to_string()).collect(),
            channel_required: true,
        }
    }
}

impl SystemContent {
    /// The text harmony renders: sections joined by blank lines.
    pub fn render(&self) -> String {
        let mut sections = Vec::new();
        let mut top = Vec::new();
        if let Some(m) = &self.model_identity {
            top.push(m.clone());
        }
        if let Some(k) = &self.knowledge_cutoff {
            top.push(format!("Knowledge cutoff: {k}"));
        }
        if let Some(d) = &self.conversation_start_date {
            top.push(format!("Current date: {d}"));
        }
        if !top.is_empty() {
            sections.push(top.join("\n"));
        }
        if let Some(e) = self.reasoning_effort {
            sections.push(format!("Reasoning: {}", e.as_str()));
        }
        if !self.valid_channels.is_empty() {
            let mut h = format!("# Valid channels: {}.", self.valid_channels.join(", "));
            if self.channel_required {
                h.push_str(" Channel must be included for every message.");
            }
            sections.push(h);
        }
        sections.join("\n\n")
    }
}

/// What a message holds.
#[derive(Clone, Debug)]
pub enum Content {
    Text(String),
    System(SystemContent),
    /// Developer instructions (`DeveloperContent.with_instructions`).
    Developer(Option<String>),
}

#[derive(Clone, Debug)]
pub struct Message {
    pub role: Role,
    /// The author's name (a tool's name; `role:name` for others).
    pub name: Option<String>,
    pub channel: Option<String>,
    pub recipient: Option<String>,
    pub content_type: Option<String>,
    pub content: Content,
}

impl Message {
    pub fn text(role: Role, text: impl Into<String>) -> Message {
        Message {
            role,
            name: None,
            channel: None,
            recipient: None,
            content_type: None,
            content: Content::Text(text.into()),
        }
    }

    pub fn system(s: SystemContent) -> Message {
        Message {
            content: Content::System(s),
            ..Message::text(Role::System, "")
        }
    }

    pub fn developer(instructions: impl Into<String>) -> Message {
        Message {
            content: Content::Developer(Some(instructions.into())),
            ..Message::text(Role::Developer, "")
        }
    }

    pub fn assistant(channel: &str, text: impl Into<String>) -> Message {
        Message {
            channel: Some(channel.into()),
            ..Message::text(Role::Assistant, text)
        }
    }

    /// The content as text (what a parsed message holds).
    pub fn content_text(&self) -> String {
        match &self.content {
            Content::Text(t) => t.clone(),
            Content::System(s) => s.render(),
            Content::Developer(i) => i
                .as_ref()
                .map(|i| format!("# Instructions\n\n{i}"))
                .unwrap_or_default(),
        }
    }
}

/// A rendered conversation: special tokens and text pieces, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    pub pieces: Vec<Piece>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Special(&'static str),
    Text(String),
    /// Text in which special tokens are read as tokens.
    TextWithSpecials(String),
}

impl Rendered {
    fn special(&mut self, s: &'static str) {
        self.pieces.push(Piece::Special(s));
    }

    fn text(&mut self, s: impl Into<String>) {
        self.pieces.push(Piece::Text(s.into()));
    }

    /// The conversation as one string (what `decode` of its ids gives).
    pub fn to_text(&self) -> String {
        self.pieces
            .iter()
            .map(|p| match p {
                Piece::Special(s) => *s,
                Piece::Text(t) | Piece::TextWithSpecials(t) => t.as_str(),
            })
            .collect()
    }

    /// Token ids as harmony makes them: each special token its id, each text piece tokenized on its own with
    /// special tokens read as text.
    pub fn to_ids(&self, tok: &TextTokenizer) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        for p in &self.pieces {
            match p {
                Piece::Special(s) => out.push(special_id(tok, s)?),
                Piece::Text(t) => out.extend(tok.encode_ordinary(t)?),
                Piece::TextWithSpecials(t) => out.extend(tok.encode(t, true)?),
            }
        }
        Ok(out)
    }
}

/// The id of a special token in `tok`'s vocabulary; an error names the token when the vocabulary lacks it.
pub fn special_id(tok: &TextTokenizer, s: &str) -> Result<u32> {
    match tok.encode(s, true)?.as_slice() {
        [id] => Ok(*id),
        _ => bail!(
            "the vocabulary ({}) has no special token {s}: not a harmony (gpt-oss) tokenizer",
            tok.describe()
        ),
    }
}

fn render_message(m: &Message, out: &mut Rendered) -> Result<()> {
    out.special(START);
    if m.role == Role::Tool {
        let name = m
            .name
            .as_ref()
            .ok_or_else(|| anyhow!("a tool message needs the tool's name"))?;
        out.text(name.clone());
    } else {
        out.text(m.role.as_str());
        if let Some(n) = &m.name {
            out.text(format!(":{n}"));
        }
    }
    // openai-harmony 0.0.8 writes the recipient before the channel (later sources reorder them)
    if let Some(r) = &m.recipient {
        if r != "all" {
            out.text(format!(" to={r}"));
        }
    }
    if let Some(c) = &m.channel {
        out.special(CHANNEL);
        out.text(c.clone());
    }
    if let Some(ct) = &m.content_type {
        // openai-harmony 0.0.8 reads special tokens here (" <|constrain|>json" is 3 tokens)
        out.pieces.push(Piece::TextWithSpecials(format!(" {ct}")));
    }
    out.special(MESSAGE);
    match &m.content {
        Content::System(_) if m.role != Role::System => {
            bail!("system content may only appear in system messages")
        }
        Content::Developer(_) if m.role != Role::Developer => {
            bail!("developer content may only appear in developer messages")
        }
        _ => out.text(m.content_text()),
    }
    if m.role == Role::Assistant && m.recipient.is_some() {
        out.special(CALL);
    } else {
        out.special(END);
    }
    Ok(())
}

/// `render_conversation` with openai-harmony's default `auto_drop_analysis = True`: when the last assistant
/// message is on the final channel, analysis messages before the first final message are left out.
pub fn render_conversation(messages: &[Message]) -> Result<Rendered> {
    let last_assistant_final = messages
        .iter()
        .rev()
        .find(|m| m.role == Role::Assistant)
        .is_some_and(|m| m.channel.as_deref() == Some("final"));
    let first_final = messages
        .iter()
        .position(|m| m.channel.as_deref() == Some("final"));
    let mut out = Rendered::default();
    for (i, m) in messages.iter().enumerate() {
        let drop = last_assistant_final
            && first_final.is_some_and(|f| i < f)
            && m.channel.as_deref() == Some("analysis");
        if !drop {
            render_message(m, &mut out)?;
        }
    }
    Ok(out)
}

/// `render_conversation_for_completion(conversation, next_turn_role)`: the conversation, then
/// `<|start|>{role}` for the model to continue.
pub fn render_for_completion(messages: &[Message], next: Role) -> Result<Rendered> {
    let mut out = render_conversation(messages)?;
    out.special(START);
    out.text(next.as_str());
    Ok(out)
}

/// One message parsed from generated tokens.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ParsedMessage {
    pub role: String,
    pub channel: Option<String>,
    pub recipient: Option<String>,
    pub content_type: Option<String>,
    pub content: String,
}

/// Parses generated text piece by piece, as openai-harmony's `StreamableParser` (started with the assistant
/// role, since the prompt ends in `<|start|>assistant`): a header up to `<|message|>`, content up to
/// `<|end|>` / `<|return|>` / `<|call|>`, then `<|start|>` and the next header.
#[derive(Debug)]
pub struct StreamParser {
    state: State,
    header: String,
    content: String,
    next_role: Option<String>,
    pub messages: Vec<ParsedMessage>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    ExpectStart,
    Header,
    Content,
}

/// What the parser made of one piece.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Text added to the current message's content, and that message's channel.
    Content {
        channel: Option<String>,
        text: String,
    },
    /// Nothing to show (header text, a start token, the end of a message).
    None,
}

impl StreamParser {
    /// A parser for what the model writes after `<|start|>assistant`.
    pub fn for_assistant() -> StreamParser {
        StreamParser {
            state: State::Header,
            header: String::new(),
            content: String::new(),
            next_role: Some("assistant".into()),
            messages: Vec::new(),
        }
    }

    /// The channel of the message being written (known once its header is complete).
    pub fn current_channel(&self) -> Option<String> {
        match self.state {
            State::Content => parse_header(&self.header, self.next_role.as_deref()).channel,
            _ => None,
        }
    }

    /// Feeds one token's text; `special` says whether it is a special token.
    pub fn push(&mut self, piece: &str, special: bool) -> Result<Event> {
        match self.state {
            State::ExpectStart => {
                if special && piece == START {
                    self.state = State::Header;
                    self.header.clear();
                    Ok(Event::None)
                } else {
                    bail!("expected {START}, the model wrote {piece:?}")
                }
            }
            State::Header => {
                if special && piece == MESSAGE {
                    self.state = State::Content;
                    self.content.clear();
                } else {
                    self.header.push_str(piece);
                }
                Ok(Event::None)
            }
            State::Content => {
                if special && matches!(piece, END | RETURN | CALL) {
                    self.finish_message();
                    Ok(Event::None)
                } else {
                    self.content.push_str(piece);
                    Ok(Event::Content {
                        channel: self.current_channel(),
                        text: piece.to_string(),
                    })
                }
            }
        }
    }

    /// Ends the stream (generation stopped): a message still being written is kept as it is.
    pub fn finish(&mut self) {
        if self.state == State::Content {
            self.finish_message();
        }
    }

    fn finish_message(&mut self) {
        let mut m = parse_header(&self.header, self.next_role.as_deref());
        m.content = std::mem::take(&mut self.content);
        self.messages.push(m);
        self.next_role = None;
        self.header.clear();
        self.state = State::ExpectStart;
    }
}

/// A header as `parse_header_from_tokens` reads it: `<|channel|>name` anywhere, then role, recipient
/// (`to=...`) and content type separated by whitespace.
fn parse_header(header: &str, role: Option<&str>) -> ParsedMessage {
    let mut h = header.to_string();
    let mut channel = None;
    if let Some(idx) = h.find(CHANNEL) {
        let after = &h[idx + CHANNEL.len()..];
        let end = after
            .find(|c: char| c.is_whitespace() || c == '<')
            .unwrap_or(after.len());
        channel = Some(after[..end].to_string());
        h = format!("{}{}", &h[..idx], &after[end..]);
    }
    let h = h.trim().replace(CONSTRAIN, &format!(" {CONSTRAIN}"));
    let mut parts: Vec<&str> = h.split_ascii_whitespace().collect();
    let role = match role {
        Some(r) => r.to_string(),
        None => {
            if parts.is_empty() {
                String::new()
            } else {
                parts.remove(0).to_string()
            }
        }
    };
    if parts.first() == Some(&role.as_str()) {
        parts.remove(0);
    }
    let (mut recipient, mut content_type) = (None, None);
    if let Some(last) = parts.pop() {
        if let Some(r) = last.strip_prefix("to=") {
            recipient = Some(r.to_string());
        } else if parts.is_empty() {
            recipient = Some(last.to_string());
        } else {
            content_type = Some(last.to_string());
            if let Some(r) = parts.pop() {
                recipient = Some(r.strip_prefix("to=").unwrap_or(r).to_string());
            }
        }
    }
    ParsedMessage {
        role,
        channel,
        recipient,
        content_type,
        content: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_analysis_then_final() {
        let mut p = StreamParser::for_assistant();
        let pieces = [
            (CHANNEL, true),
            ("analysis", false),
            (MESSAGE, true),
            ("think", false),
            (END, true),
            (START, true),
            ("assistant", false),
            (CHANNEL, true),
            ("final", false),
            (MESSAGE, true),
            ("4", false),
            (RETURN, true),
        ];
        let mut shown = Vec::new();
        for (t, s) in pieces {
            if let Event::Content { channel, text } = p.push(t, s).unwrap() {
                shown.push((channel.unwrap(), text));
            }
        }
        assert_eq!(
            shown,
            vec![
                ("analysis".into(), "think".into()),
                ("final".into(), "4".into())
            ]
        );
        assert_eq!(p.messages.len(), 2);
        assert_eq!(p.messages[1].role, "assistant");
        assert_eq!(p.messages[1].content, "4");
    }

    #[test]
    fn parses_a_tool_call_header() {
        let m = parse_header(
            " to=functions.get_weather<|channel|>commentary <|constrain|>json",
            Some("assistant"),
        );
        assert_eq!(m.channel.as_deref(), Some("commentary"));
        assert_eq!(m.recipient.as_deref(), Some("functions.get_weather"));
        assert_eq!(m.content_type.as_deref(), Some("<|constrain|>json"));
    }
}
