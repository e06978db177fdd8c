//! The line parser: one pass over the text, no regexes, allocations only for what is kept.

use crate::model::{Exposition, Family, MetricKind, ParseError, Sample};
use crate::number::{NumberError, parse_timestamp_ms, parse_value};
use std::collections::HashMap;

/// Parses an exposition, keeping every good line and recording each bad one in
/// [`Exposition::errors`]. Never panics, whatever the input.
pub fn parse(text: &str) -> Exposition {
    run(text, false)
}

/// Parses an exposition, failing on the first bad line.
pub fn parse_strict(text: &str) -> Result<Exposition, ParseError> {
    let mut exposition = run(text, true);
    match exposition.errors.pop() {
        Some(error) => Err(error),
        None => Ok(exposition),
    }
}

/// Whether `name` is a valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_metric_name(name: &str) -> bool {
    name.as_bytes().first().is_some_and(|b| !b.is_ascii_digit()) && name.bytes().all(is_metric_name_byte)
}

/// Whether `name` is a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(name: &str) -> bool {
    name.as_bytes().first().is_some_and(|b| !b.is_ascii_digit()) && name.bytes().all(is_label_name_byte)
}

fn is_metric_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

fn is_label_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Which metadata lines a family has had, so that a repeated one is an error.
struct Seen {
    index: usize,
    help: bool,
    kind: bool,
    unit: bool,
}

/// Families in order, plus an index by name borrowed from the text to spare allocations.
struct Metadata<'a> {
    families: Vec<Family>,
    seen: HashMap<&'a str, Seen>,
}

impl<'a> Metadata<'a> {
    fn entry(&mut self, name: &'a str) -> (&mut Seen, &mut Family) {
        let families = &mut self.families;
        let seen = self.seen.entry(name).or_insert_with(|| {
            families.push(Family {
                name: name.to_owned(),
                kind: MetricKind::Untyped,
                help: None,
                unit: None,
            });
            Seen { index: families.len() - 1, help: false, kind: false, unit: false }
        });
        let family = &mut families[seen.index];
        (seen, family)
    }
}

fn run(text: &str, stop_at_first_error: bool) -> Exposition {
    let mut metadata = Metadata { families: Vec::new(), seen: HashMap::new() };
    let mut samples = Vec::new();
    let mut errors = Vec::new();
    let mut eof_line = None;
    for (index, raw) in text.split('\n').enumerate() {
        let line_no = index + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let line = line.trim_start_matches([' ', '\t']);
        if line.is_empty() {
            continue;
        }
        let result = if let Some(eof) = eof_line {
            Err(format!("content after `# EOF` on line {eof}"))
        } else if let Some(comment) = line.strip_prefix('#') {
            match parse_comment(comment, &mut metadata) {
                Ok(Comment::Eof) => {
                    eof_line = Some(line_no);
                    Ok(())
                }
                Ok(Comment::Other) => Ok(()),
                Err(message) => Err(message),
            }
        } else {
            parse_sample(line, line_no).map(|sample| samples.push(sample))
        };
        if let Err(message) = result {
            errors.push(ParseError { line: line_no, message });
            // After `# EOF` one error says it all.
            if stop_at_first_error || eof_line.is_some() {
                break;
            }
        }
    }
    Exposition { families: metadata.families, samples, errors }
}

/// A position in one line. Every stop is at an ASCII byte or the end, so slices fall on char
/// boundaries.
struct Cursor<'a> {
    line: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(line: &'a str) -> Self {
        Cursor { line, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.line.as_bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.line.len()
    }

    fn rest(&self) -> &'a str {
        &self.line[self.pos..]
    }

    /// The next character, for messages; `None` at the end.
    fn next_char(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    /// Skips spaces and tabs; true if there were any.
    fn skip_blanks(&mut self) -> bool {
        let start = self.pos;
        self.take_while(is_blank);
        self.pos > start
    }

    /// `pred` must hold only for ASCII bytes, or for all non-blank ones as in [`Cursor::token`].
    fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        let len =
            self.line.as_bytes()[start..].iter().position(|&b| !pred(b)).unwrap_or(self.line.len() - start);
        self.pos = start + len;
        &self.line[start..self.pos]
    }

    /// Everything up to the next blank.
    fn token(&mut self) -> &'a str {
        self.take_while(|b| !is_blank(b))
    }
}

/// Garbage echoed in a message is cut short so one bad line cannot flood a report.
fn shorten(text: &str) -> &str {
    match text.char_indices().nth(40) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

fn found(c: &Cursor<'_>) -> String {
    match c.next_char() {
        Some(ch) => format!("found {ch:?}"),
        None => "found end of line".to_owned(),
    }
}

enum Comment {
    Eof,
    Other,
}

/// A line that started with `#`; `rest` follows the `#`.
fn parse_comment<'a>(rest: &'a str, metadata: &mut Metadata<'a>) -> Result<Comment, String> {
    let mut c = Cursor::new(rest);
    if !c.skip_blanks() {
        return Ok(Comment::Other);
    }
    let keyword = c.token();
    if keyword == "EOF" {
        c.skip_blanks();
        return Ok(if c.at_end() { Comment::Eof } else { Comment::Other });
    }
    if !matches!(keyword, "HELP" | "TYPE" | "UNIT") {
        return Ok(Comment::Other);
    }
    c.skip_blanks();
    let name = c.token();
    if name.is_empty() {
        return Err(format!("missing metric name in `# {keyword}` line"));
    }
    if !is_metric_name(name) {
        return Err(format!("invalid metric name `{}` in `# {keyword}` line", shorten(name)));
    }
    c.skip_blanks();
    match keyword {
        "HELP" => {
            let help = unescape_help(c.rest());
            let (seen, family) = metadata.entry(name);
            if seen.help {
                return Err(format!("second HELP line for `{name}`"));
            }
            seen.help = true;
            family.help = Some(help);
        }
        "TYPE" => {
            let word = c.token();
            if word.is_empty() {
                return Err(format!("missing metric type for `{name}`"));
            }
            let kind = MetricKind::from_type_word(word)
                .ok_or_else(|| format!("unknown metric type `{}` for `{name}`", shorten(word)))?;
            expect_end(&mut c, || format!("metric type of `{name}`"))?;
            let (seen, family) = metadata.entry(name);
            if seen.kind {
                return Err(format!("second TYPE line for `{name}`"));
            }
            seen.kind = true;
            family.kind = kind;
        }
        _ => {
            let unit = c.token();
            if !unit.bytes().all(is_metric_name_byte) {
                return Err(format!("invalid unit `{}` for `{name}`", shorten(unit)));
            }
            expect_end(&mut c, || format!("unit of `{name}`"))?;
            let (seen, family) = metadata.entry(name);
            if seen.unit {
                return Err(format!("second UNIT line for `{name}`"));
            }
            seen.unit = true;
            family.unit = (!unit.is_empty()).then(|| unit.to_owned());
        }
    }
    Ok(Comment::Other)
}

fn expect_end(c: &mut Cursor<'_>, after: impl Fn() -> String) -> Result<(), String> {
    c.skip_blanks();
    if c.at_end() { Ok(()) } else { Err(format!("unexpected `{}` after {}", shorten(c.rest()), after())) }
}

/// HELP text escapes `\\` and `\n`, and in OpenMetrics also `\"`. Any other backslash is kept as
/// written, as Prometheus does: a help text is not worth losing a family's metadata over.
fn unescape_help(text: &str) -> String {
    if !text.contains('\\') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(ch) = chars.next() {
        if ch != '\\' {
            out.push(ch);
            continue;
        }
        match chars.clone().next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') => out.push('"'),
            _ => {
                out.push('\\');
                continue;
            }
        }
        chars.next();
    }
    out
}

fn parse_sample(line: &str, line_no: usize) -> Result<Sample, String> {
    let mut c = Cursor::new(line);
    let name = c.take_while(is_metric_name_byte);
    if name.is_empty() {
        return Err(if c.peek() == Some(b'{') {
            "missing metric name before `{`".to_owned()
        } else {
            format!("invalid metric name: starts with {:?}", c.next_char().unwrap_or(' '))
        });
    }
    if name.as_bytes()[0].is_ascii_digit() {
        return Err(format!("invalid metric name `{}`: starts with a digit", shorten(name)));
    }
    if !matches!(c.peek(), None | Some(b' ' | b'\t' | b'{')) {
        return Err(format!("invalid character {:?} in metric name `{name}`", c.next_char().unwrap_or(' ')));
    }
    c.skip_blanks();
    let mut labels = Vec::new();
    if c.eat(b'{') {
        parse_labels(&mut c, name, &mut labels)?;
        c.skip_blanks();
    }
    let token = c.token();
    if token.is_empty() {
        return Err(format!("missing value for `{name}`"));
    }
    let value = parse_value(token).map_err(|e| number_message(e, "value", token, name))?;
    c.skip_blanks();
    let mut timestamp_ms = None;
    if !c.at_end() && c.peek() != Some(b'#') {
        let token = c.token();
        let ms = parse_timestamp_ms(token).map_err(|e| number_message(e, "timestamp", token, name))?;
        timestamp_ms = Some(ms);
        c.skip_blanks();
    }
    match c.peek() {
        None => {}
        Some(b'#') => skip_exemplar(&mut c, name)?,
        Some(_) => {
            return Err(format!("unexpected `{}` after timestamp of `{name}`", shorten(c.rest())));
        }
    }
    Ok(Sample { name: name.to_owned(), labels, value, timestamp_ms, line: line_no })
}

fn number_message(error: NumberError, what: &str, token: &str, name: &str) -> String {
    let token = shorten(token);
    match error {
        NumberError::Invalid => format!("invalid {what} `{token}` for `{name}`"),
        NumberError::OutOfRange => format!("{what} `{token}` out of range for `{name}`"),
    }
}

/// Reads `name="value",...}` after the `{`, allowing blanks between tokens and a trailing comma.
fn parse_labels(c: &mut Cursor<'_>, name: &str, labels: &mut Vec<(String, String)>) -> Result<(), String> {
    loop {
        c.skip_blanks();
        if c.eat(b'}') {
            return Ok(());
        }
        if c.at_end() {
            return Err(format!("unterminated label set for `{name}`"));
        }
        let label = c.take_while(is_label_name_byte);
        if label.is_empty() {
            return Err(format!("expected label name or `}}` for `{name}`, {}", found(c)));
        }
        if label.as_bytes()[0].is_ascii_digit() {
            return Err(format!("invalid label name `{}` for `{name}`: starts with a digit", shorten(label)));
        }
        c.skip_blanks();
        if !c.eat(b'=') {
            return Err(format!("expected `=` after label name `{label}` for `{name}`, {}", found(c)));
        }
        c.skip_blanks();
        if !c.eat(b'"') {
            return Err(format!("expected `\"` to open value of label `{label}` for `{name}`, {}", found(c)));
        }
        let value = label_value(c, label, name)?;
        if labels.iter().any(|(seen, _)| seen == label) {
            return Err(format!("duplicate label `{label}` for `{name}`"));
        }
        labels.push((label.to_owned(), value));
        c.skip_blanks();
        if c.eat(b'}') {
            return Ok(());
        }
        if c.at_end() {
            return Err(format!("unterminated label set for `{name}`"));
        }
        if !c.eat(b',') {
            return Err(format!(
                "expected `,` or `}}` after value of label `{label}` for `{name}`, {}",
                found(c)
            ));
        }
    }
}

/// Reads a label value after its opening quote, through the closing one.
fn label_value(c: &mut Cursor<'_>, label: &str, name: &str) -> Result<String, String> {
    let line = c.line;
    let bytes = line.as_bytes();
    let unterminated = || format!("unterminated label value for `{name}`");
    let special = |b: &u8| *b == b'"' || *b == b'\\';
    let mut start = c.pos;
    let mut at = start + bytes[start..].iter().position(special).ok_or_else(unterminated)?;
    if bytes[at] == b'"' {
        c.pos = at + 1;
        return Ok(line[start..at].to_owned());
    }
    let mut value = String::with_capacity(at - start + 16);
    loop {
        value.push_str(&line[start..at]);
        if bytes[at] == b'"' {
            c.pos = at + 1;
            return Ok(value);
        }
        match bytes.get(at + 1) {
            Some(b'\\') => value.push('\\'),
            Some(b'"') => value.push('"'),
            Some(b'n') => value.push('\n'),
            Some(_) => {
                let escaped = line[at + 1..].chars().next().unwrap_or(' ');
                return Err(format!("invalid escape `\\{escaped}` in value of label `{label}` for `{name}`"));
            }
            None => return Err(unterminated()),
        }
        start = at + 2;
        at = start + bytes[start..].iter().position(special).ok_or_else(unterminated)?;
    }
}

/// An OpenMetrics exemplar, `# {labels} value [timestamp]`: checked for shape, then dropped.
fn skip_exemplar(c: &mut Cursor<'_>, name: &str) -> Result<(), String> {
    let invalid = |why: &str| format!("invalid exemplar for `{name}`: {why}");
    c.eat(b'#');
    c.skip_blanks();
    if !c.eat(b'{') {
        return Err(invalid("expected `{` after `#`"));
    }
    let mut labels = Vec::new();
    parse_labels(c, name, &mut labels).map_err(|message| invalid(&message))?;
    c.skip_blanks();
    let value = c.token();
    if value.is_empty() {
        return Err(invalid("missing value"));
    }
    parse_value(value).map_err(|_| invalid(&format!("invalid value `{}`", shorten(value))))?;
    c.skip_blanks();
    let timestamp = c.token();
    if !timestamp.is_empty() {
        // Exemplar timestamps are always OpenMetrics float seconds.
        parse_value(timestamp)
            .ok()
            .filter(|t| t.is_finite())
            .ok_or_else(|| invalid(&format!("invalid timestamp `{}`", shorten(timestamp))))?;
    }
    c.skip_blanks();
    if !c.at_end() {
        return Err(invalid(&format!("unexpected `{}`", shorten(c.rest()))));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
