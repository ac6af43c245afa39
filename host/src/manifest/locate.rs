//! Where each field of a YAML document is, by dotted path.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use super::Problem;

pub(super) struct Locator {
    positions: HashMap<String, (usize, usize)>,
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, index: usize },
}

struct Collector {
    stack: Vec<Frame>,
    positions: HashMap<String, (usize, usize)>,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
}

impl Collector {
    /// Path of the node starting now, and advance the parent.
    fn enter(&mut self) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map { path, key }) => key.take().map(|k| join(path, &k)),
            Some(Frame::Seq { path, index }) => {
                let p = format!("{path}[{index}]");
                *index += 1;
                Some(p)
            }
        }
    }
}

impl MarkedEventReceiver for Collector {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let at = (mark.line(), mark.col() + 1);
        match ev {
            Event::Scalar(value, ..) => {
                if let Some(Frame::Map { path, key }) = self.stack.last_mut()
                    && key.is_none()
                {
                    // A mapping key: the field's position.
                    self.positions.insert(join(path, &value), at);
                    *key = Some(value);
                    return;
                }
                if let Some(p) = self.enter() {
                    self.positions.entry(p).or_insert(at);
                }
            }
            Event::MappingStart(..) => {
                let path = self.enter().unwrap_or_default();
                self.positions.entry(path.clone()).or_insert(at);
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.enter().unwrap_or_default();
                self.positions.entry(path.clone()).or_insert(at);
                self.stack.push(Frame::Seq { path, index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::Alias(_) => {
                self.enter();
            }
            _ => {}
        }
    }
}

/// Deepest nesting of mappings and sequences a manifest may have. Sluice's
/// own manifests are five levels deep; the limit refuses a hostile
/// document before any work that grows with depth.
pub(super) const MAX_DEPTH: usize = 32;

/// Where brackets (`[`, `{`) nest deeper than [`MAX_DEPTH`], found in one
/// pass over the text. The YAML scanner cannot tell a flow collection
/// from a key until it has read it to its end, and its work for that grows
/// with the square of the nesting: this finds a hostile document first.
/// Quoted strings and comments are skipped; a bracket inside a plain
/// scalar may count, which only matters past the limit.
fn too_deep_flow(text: &str) -> Option<(usize, usize)> {
    let (mut depth, mut line, mut column) = (0usize, 1, 0);
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut previous = '\n';
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        column += 1;
        if c == '\n' {
            (line, column, comment) = (line + 1, 0, false);
            previous = c;
            continue;
        }
        match (quote, c) {
            _ if comment => {}
            (Some('"'), '\\') => {
                chars.next();
                column += 1;
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') if previous.is_whitespace() => comment = true,
            (None, '[' | '{') => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some((line, column));
                }
            }
            (None, ']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        previous = c;
    }
    None
}

impl Locator {
    /// Locate every field, in one pass over the parser's events. `Err` with
    /// the place where nesting passes [`MAX_DEPTH`] (found without reading
    /// further).
    pub(super) fn new(text: &str) -> Result<Self, (usize, usize)> {
        if let Some(at) = too_deep_flow(text) {
            return Err(at);
        }
        let mut collector = Collector { stack: Vec::new(), positions: HashMap::new() };
        let mut parser = Parser::new_from_str(text);
        // A document that does not parse is reported by serde_yaml instead.
        while let Ok((event, mark)) = parser.next_token() {
            if event == Event::StreamEnd {
                break;
            }
            if collector.stack.len() >= MAX_DEPTH && matches!(event, Event::MappingStart(..) | Event::SequenceStart(..))
            {
                return Err((mark.line(), mark.col() + 1));
            }
            collector.on_event(event, mark);
        }
        Ok(Locator { positions: collector.positions })
    }

    /// The position of `path`, or of its nearest located ancestor.
    pub(super) fn find(&self, path: &str) -> Option<(usize, usize)> {
        let mut p = path;
        loop {
            if let Some(&at) = self.positions.get(p) {
                return Some(at);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }

    pub(super) fn problem(&self, path: &str, overridden: &[String], message: String, hint: Option<String>) -> Problem {
        let from_set = overridden.iter().find(|o| path == o.as_str() || path.starts_with(&format!("{o}.")));
        let (message, at) = match from_set {
            Some(o) => (format!("{message} (value given by --set {o}=…)"), None),
            None => (message, self.find(path)),
        };
        Problem { path: path.to_string(), line: at.map(|a| a.0), column: at.map(|a| a.1), message, hint }
    }
}
