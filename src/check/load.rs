//! Reading manifests: files, directories and standard input, split into documents that remember
//! their line numbers, plus a cheap way to find the line of a field within a document.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::schema::Seg;

/// File extensions read when a directory is walked.
pub const EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// Why input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path as given or found.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file is not UTF-8 text.
    #[error("cannot read {path}: not UTF-8 text")]
    NotUtf8 {
        /// The path as given or found.
        path: String,
    },
    /// `-` was given more than once.
    #[error("standard input (`-`) can be read only once")]
    StdinTwice,
}

/// How a source is parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A YAML stream of `---`-separated documents (JSON is YAML too).
    Yaml,
    /// One or more concatenated JSON values.
    Json,
}

/// The text of one input file (or standard input).
#[derive(Clone, Debug)]
pub struct Source {
    /// The name used in messages: the path as given or found, or `<stdin>`.
    pub name: String,
    /// The whole text.
    pub text: String,
    /// How it is parsed.
    pub format: Format,
}

impl Source {
    /// A source from memory (tests, standard input).
    pub fn new(name: impl Into<String>, text: impl Into<String>, format: Format) -> Self {
        Self { name: name.into(), text: text.into(), format }
    }
}

/// Reads every path: files as they are, directories recursively (files ending in `.yaml`,
/// `.yml` or `.json`, in name order, skipping hidden entries and symlinked directories), `-` as
/// standard input. A file reached twice is read once.
pub fn collect(paths: &[PathBuf]) -> (Vec<Source>, Vec<LoadError>) {
    let mut collector = Collector::default();
    for path in paths {
        if path.as_os_str() == "-" {
            collector.stdin();
        } else {
            collector.path(path, true);
        }
    }
    (collector.sources, collector.errors)
}

#[derive(Default)]
struct Collector {
    sources: Vec<Source>,
    errors: Vec<LoadError>,
    seen: HashSet<PathBuf>,
    stdin_read: bool,
}

impl Collector {
    fn stdin(&mut self) {
        if std::mem::replace(&mut self.stdin_read, true) {
            self.errors.push(LoadError::StdinTwice);
            return;
        }
        let mut bytes = Vec::new();
        let name = "<stdin>".to_owned();
        match std::io::stdin().read_to_end(&mut bytes) {
            Ok(_) => self.push(name, bytes, Format::Yaml),
            Err(source) => self.errors.push(LoadError::Read { path: name, source }),
        }
    }

    fn path(&mut self, path: &Path, explicit: bool) {
        let shown = path.display().to_string();
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(source) => return self.errors.push(LoadError::Read { path: shown, source }),
        };
        if meta.is_dir() {
            self.dir(path);
        } else if explicit || has_manifest_extension(path) {
            if let Ok(canonical) = std::fs::canonicalize(path) {
                if !self.seen.insert(canonical) {
                    return;
                }
            }
            match std::fs::read(path) {
                Ok(bytes) => self.push(shown, bytes, format_of(path)),
                Err(source) => self.errors.push(LoadError::Read { path: shown, source }),
            }
        }
    }

    fn dir(&mut self, dir: &Path) {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(source) => return self.errors.push(LoadError::Read { path: dir.display().to_string(), source }),
        };
        let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = dir.join(entry.file_name());
            let symlinked_dir = entry.file_type().is_ok_and(|t| t.is_symlink()) && path.is_dir();
            if !symlinked_dir {
                self.path(&path, false);
            }
        }
    }

    fn push(&mut self, name: String, bytes: Vec<u8>, format: Format) {
        match String::from_utf8(bytes) {
            Ok(text) => self.sources.push(Source { name, text, format }),
            Err(_) => self.errors.push(LoadError::NotUtf8 { path: name }),
        }
    }
}

fn has_manifest_extension(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

fn format_of(path: &Path) -> Format {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("json") => Format::Json,
        _ => Format::Yaml,
    }
}

/// A syntax error, at a line of the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// The line (1-based) in the source.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// One document of a source.
#[derive(Debug)]
pub struct Document {
    /// Finds the lines of the document's fields.
    pub locator: Locator,
    /// The parsed value; `None` for an empty document (only comments or nothing).
    pub value: Result<Option<Value>, SyntaxError>,
}

/// Splits a source into its documents.
pub fn documents(source: &Source) -> Vec<Document> {
    match source.format {
        Format::Yaml => split_yaml(&source.text)
            .into_iter()
            .map(|(first_line, text)| Document {
                value: parse_yaml(&text, first_line),
                locator: Locator::new(&text, first_line),
            })
            .collect(),
        Format::Json => json_documents(&source.text),
    }
}

/// Splits a YAML stream at its `---` and `...` markers (a marker at the start of a line is
/// always a marker, even inside a scalar). Returns each document's text and first line; marker
/// lines are kept as blank lines, so the document's line numbers stay those of the source.
fn split_yaml(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut first_line = 1;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let number = i + 1;
        if is_marker(line, "---") {
            docs.push((first_line, std::mem::take(&mut current)));
            current.push_str("   ");
            current.push_str(&line[3..]);
            first_line = number;
        } else if is_marker(line, "...") {
            docs.push((first_line, std::mem::take(&mut current)));
            first_line = number + 1;
        } else {
            current.push_str(line);
        }
    }
    docs.push((first_line, current));
    docs
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker).is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
}

fn parse_yaml(text: &str, first_line: usize) -> Result<Option<Value>, SyntaxError> {
    let has_content = text.lines().any(|l| {
        let t = l.trim_start();
        !t.is_empty() && !t.starts_with('#') && !t.starts_with('%')
    });
    if !has_content {
        return Ok(None);
    }
    let mut yaml: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| SyntaxError {
        line: first_line + e.location().map_or(0, |l| l.line().saturating_sub(1)),
        message: format!("invalid YAML: {}", strip_location(&e.to_string())),
    })?;
    let syntax = |message: String| SyntaxError { line: first_line, message };
    yaml.apply_merge().map_err(|e| syntax(format!("invalid YAML: {e}")))?;
    match yaml_to_json(yaml).map_err(syntax)? {
        Value::Null => Ok(None),
        value => Ok(Some(value)),
    }
}

/// serde_yaml puts "at line L column C" in its messages; our lines are of the whole source.
fn strip_location(message: &str) -> &str {
    message.find(" at line ").map_or(message, |i| &message[..i])
}

/// Converts YAML to JSON the way Kubernetes does: mapping keys become strings, tags are dropped.
fn yaml_to_json(yaml: serde_yaml::Value) -> Result<Value, String> {
    use serde_yaml::Value as Y;
    Ok(match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(|| format!("the number {n} has no JSON form"))?
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect::<Result<_, _>>()?),
        Y::Mapping(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                let key = match k {
                    Y::String(s) => s,
                    Y::Bool(b) => b.to_string(),
                    Y::Number(n) => n.to_string(),
                    Y::Null => "null".to_owned(),
                    other => return Err(format!("a mapping key must be a scalar, not {other:?}")),
                };
                out.insert(key, yaml_to_json(v)?);
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => yaml_to_json(tagged.value)?,
    })
}

fn json_documents(text: &str) -> Vec<Document> {
    let line_at = |offset: usize| 1 + text[..offset].bytes().filter(|&b| b == b'\n').count();
    let mut docs = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let mut end = 0;
    loop {
        let start = end + (text[end..].len() - text[end..].trim_start().len());
        match stream.next() {
            None => break,
            Some(Ok(value)) => {
                end = stream.byte_offset();
                let first_line = line_at(start);
                docs.push(Document { locator: Locator::new(&text[start..end], first_line), value: Ok(Some(value)) });
            }
            Some(Err(e)) => {
                let first_line = line_at(start);
                docs.push(Document {
                    locator: Locator::new(&text[start..], first_line),
                    value: Err(SyntaxError {
                        line: e.line().max(first_line),
                        message: format!("invalid JSON: {}", strip_location(&e.to_string())),
                    }),
                });
                break;
            }
        }
    }
    docs
}

/// Finds the line of a field in a document by following keys and `- ` items by their
/// indentation: good for block-style YAML and pretty-printed JSON, without a second parser. A
/// field it cannot follow (flow style, one-line JSON, a missing field) resolves to the nearest
/// enclosing field it found, else to the document's first line.
#[derive(Clone, Debug)]
pub struct Locator {
    tokens: Vec<Token>,
    first_line: usize,
}

#[derive(Clone, Debug)]
struct Token {
    line: usize,
    col: usize,
    key: Option<String>,
}

impl Token {
    fn is_item(&self) -> bool {
        self.key.is_none()
    }
}

impl Locator {
    /// Indexes `text`, whose first line is line `first_line` of its source.
    pub fn new(text: &str, first_line: usize) -> Self {
        let mut tokens = Vec::new();
        let mut content_line = None;
        // Inside a block scalar (`key: |`): lines indented deeper than this column are text.
        let mut block: Option<usize> = None;
        for (i, raw) in text.lines().enumerate() {
            let line = first_line + i;
            let body = raw.trim_start_matches([' ', '\t']);
            let mut col = raw.len() - body.len();
            if let Some(parent) = block {
                if body.trim().is_empty() || col > parent {
                    continue;
                }
                block = None;
            }
            if body.trim().is_empty() || body.starts_with('#') {
                continue;
            }
            content_line.get_or_insert(line);
            let mut rest = body;
            loop {
                if rest == "-" || rest.starts_with("- ") || rest.starts_with("-\t") {
                    tokens.push(Token { line, col, key: None });
                    let after = &rest[1..];
                    let trimmed = after.trim_start();
                    if is_block_scalar(trimmed) {
                        block = Some(col);
                        break;
                    }
                    col += 1 + after.len() - trimmed.len();
                    rest = trimmed;
                    if rest.is_empty() {
                        break;
                    }
                    continue;
                }
                if let Some((key, value)) = split_key(rest) {
                    tokens.push(Token { line, col, key: Some(key) });
                    if is_block_scalar(value) {
                        block = Some(col);
                    }
                }
                break;
            }
        }
        Self { tokens, first_line: content_line.unwrap_or(first_line) }
    }

    /// The document's first line with content.
    pub fn first_line(&self) -> usize {
        self.first_line
    }

    /// The line of the field at `path` (keys and list indexes from the document's root), or of
    /// its nearest enclosing field that can be found, or the document's first line.
    pub fn line_of(&self, path: &[Seg]) -> usize {
        let tokens = &self.tokens;
        let mut line = self.first_line;
        let (mut lo, mut hi) = (0, tokens.len());
        let mut parent: Option<&Token> = None;
        for seg in path {
            let Some(first) = tokens.get(lo).filter(|_| lo < hi) else {
                break;
            };
            let col = first.col;
            if let Some(p) = parent {
                // Children are indented deeper; a key's list items may share its column.
                let items_of_key = first.is_item() && !p.is_item();
                if col < p.col || (col == p.col && !items_of_key) {
                    break;
                }
            }
            let at_col = (lo..hi).filter(|&j| tokens[j].col == col);
            let found = match seg {
                Seg::Key(k) => at_col.into_iter().find(|&j| tokens[j].key.as_deref() == Some(k.as_str())),
                Seg::Index(n) => at_col.into_iter().filter(|&j| tokens[j].is_item()).nth(*n),
            };
            let Some(j) = found else {
                break;
            };
            let t = &tokens[j];
            line = t.line;
            let ends = |u: &Token| u.col < t.col || (u.col == t.col && (t.is_item() || !u.is_item()));
            hi = (j + 1..hi).find(|&m| ends(&tokens[m])).unwrap_or(hi);
            lo = j + 1;
            parent = Some(t);
        }
        line
    }
}

/// Splits `key: value` (plain, single- or double-quoted key) into the key and the rest.
fn split_key(s: &str) -> Option<(String, &str)> {
    let (key, after) = match s.chars().next()? {
        '"' => {
            let mut escaped = false;
            let close = s[1..].char_indices().find_map(|(i, c)| {
                let hit = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                hit.then_some(i + 1)
            })?;
            let key = serde_json::from_str::<String>(&s[..=close]).unwrap_or_else(|_| s[1..close].to_owned());
            (key, &s[close + 1..])
        }
        '\'' => {
            let bytes = s.as_bytes();
            let mut i = 1;
            loop {
                match bytes.get(i)? {
                    b'\'' if bytes.get(i + 1) == Some(&b'\'') => i += 2,
                    b'\'' => break,
                    _ => i += 1,
                }
            }
            (s[1..i].replace("''", "'"), &s[i + 1..])
        }
        c if "[]{}#&*!|>%@`,?".contains(c) => return None,
        _ => {
            let bytes = s.as_bytes();
            let colon = (0..bytes.len())
                .find(|&i| bytes[i] == b':' && bytes.get(i + 1).is_none_or(|b| *b == b' ' || *b == b'\t'))?;
            if s[..colon].contains(" #") {
                return None;
            }
            return Some((s[..colon].trim_end().to_owned(), &s[colon + 1..]));
        }
    };
    let after = after.trim_start();
    after.strip_prefix(':').map(|value| (key, value))
}

/// Whether a value starts a block scalar (`|`, `>-`, `|2+`…), ignoring a trailing comment.
fn is_block_scalar(value: &str) -> bool {
    let v = value.trim();
    let v = v.find(" #").map_or(v, |i| v[..i].trim_end());
    let mut chars = v.chars();
    matches!(chars.next(), Some('|' | '>')) && chars.all(|c| c == '+' || c == '-' || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Seg {
        Seg::Key(k.to_owned())
    }

    #[test]
    fn yaml_streams_split_at_markers_and_keep_source_lines() {
        let text = "# header\n---\napiVersion: v1\nkind: A\n--- # second\nkind: B\n...\n---\n\n";
        let source = Source::new("s.yaml", text, Format::Yaml);
        let docs = documents(&source);
        let values: Vec<_> = docs.iter().map(|d| d.value.clone().expect("parses")).collect();
        assert_eq!(values.iter().flatten().count(), 2, "{values:?}");
        let kinds: Vec<_> = docs
            .iter()
            .filter_map(|d| d.value.as_ref().ok()?.as_ref().map(|v| (d.locator.first_line(), v["kind"].clone())))
            .collect();
        assert_eq!(kinds, vec![(3, "A".into()), (6, "B".into())]);
    }

    #[test]
    fn yaml_syntax_errors_point_at_the_source_line() {
        let source = Source::new("s.yaml", "kind: A\n---\nkind: B\n  bad: [\n", Format::Yaml);
        let docs = documents(&source);
        let err = docs[1].value.as_ref().expect_err("invalid");
        assert!(err.line >= 3 && err.line <= 5, "{err:?}");
        assert!(err.message.starts_with("invalid YAML: ") && !err.message.contains(" at line "));
    }

    #[test]
    fn yaml_merge_keys_and_tags_are_resolved() {
        let text = "base: &b {x: 1}\nobj:\n  <<: *b\n  y: !custom 2\n";
        let docs = documents(&Source::new("m.yaml", text, Format::Yaml));
        let value = docs[0].value.clone().expect("parses").expect("a value");
        assert_eq!(value["obj"], serde_json::json!({"x": 1, "y": 2}));
    }

    #[test]
    fn the_locator_follows_keys_items_and_block_scalars() {
        let text = "\
# comment
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: X
  metadata:
    name: a
    annotations:
      note: |
        spec:
          phoneNumber: not-this-one
- kind: Y
  spec:
    'quoted': 1
    \"phoneNumber\": \"+1\"
    list:
      - a: 1
      - a: 2
other: {}
";
        let loc = Locator::new(text, 10);
        assert_eq!(loc.first_line(), 11);
        assert_eq!(loc.line_of(&[]), 11);
        assert_eq!(loc.line_of(&[key("items")]), 13);
        assert_eq!(loc.line_of(&[key("items"), Seg::Index(0)]), 14);
        assert_eq!(loc.line_of(&[key("items"), Seg::Index(0), key("metadata"), key("name")]), 17);
        assert_eq!(loc.line_of(&[key("items"), Seg::Index(1)]), 22);
        assert_eq!(loc.line_of(&[key("items"), Seg::Index(1), key("spec"), key("phoneNumber")]), 25);
        assert_eq!(loc.line_of(&[key("items"), Seg::Index(1), key("spec"), key("quoted")]), 24);
        let second_a = [key("items"), Seg::Index(1), key("spec"), key("list"), Seg::Index(1), key("a")];
        assert_eq!(loc.line_of(&second_a), 28);
        // Missing fields resolve to the nearest enclosing one; a sibling's field is never taken.
        assert_eq!(loc.line_of(&[key("items"), Seg::Index(0), key("spec"), key("phoneNumber")]), 14);
        assert_eq!(loc.line_of(&[key("items"), Seg::Index(1), key("spec"), key("queue")]), 23);
        assert_eq!(loc.line_of(&[key("other")]), 29);
        assert_eq!(loc.line_of(&[key("nope")]), 11);
    }

    #[test]
    fn json_values_get_their_own_lines() {
        let text = "{\n  \"kind\": \"A\",\n  \"spec\": {\n    \"phoneNumber\": \"x\"\n  }\n}\n\n{\"kind\": \"B\"}\n";
        let docs = documents(&Source::new("a.json", text, Format::Json));
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].locator.line_of(&[key("spec"), key("phoneNumber")]), 4);
        assert_eq!(docs[1].locator.first_line(), 8);
        assert_eq!(docs[1].locator.line_of(&[key("kind")]), 8);
        let bad = documents(&Source::new("b.json", "{\n  \"kind\": \n}\n", Format::Json));
        assert_eq!(bad[0].value.as_ref().expect_err("invalid").line, 3);
    }

    #[test]
    fn split_key_handles_plain_and_quoted_keys() {
        assert_eq!(split_key("url: https://x:1/a"), Some(("url".into(), " https://x:1/a")));
        assert_eq!(split_key("a:"), Some(("a".into(), "")));
        assert_eq!(split_key("\"a\\\"b\": 1"), Some(("a\"b".into(), " 1")));
        assert_eq!(split_key("'it''s' : 1"), Some(("it's".into(), " 1")));
        assert_eq!(split_key("just text"), None);
        assert_eq!(split_key("{a: 1}"), None);
        assert!(is_block_scalar(" |-  # text"));
        assert!(!is_block_scalar(" a|"));
    }
}
