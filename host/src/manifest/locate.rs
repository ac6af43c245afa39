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

impl Locator {
    pub(super) fn new(text: &str) -> Self {
        let mut collector = Collector { stack: Vec::new(), positions: HashMap::new() };
        // A document that does not parse is reported by serde_yaml instead.
        let _ = Parser::new_from_str(text).load(&mut collector, false);
        Locator { positions: collector.positions }
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
