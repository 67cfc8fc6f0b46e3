//! Config errors: each located at FILE:LINE:COL (or at the file itself), with
//! a message safe to print to a terminal.

use std::fmt;
use std::ops::Range;

/// One problem in a config file, located.
///
/// `line` and `col` are 1-based (columns count characters); both are 0 for a
/// problem with the file as a whole (it cannot be read, is not a regular
/// file, is too large). `message` never holds control characters: they are
/// shown escaped (`\u{1b}`), so a hostile config cannot drive the terminal.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl ConfigError {
    /// An error at a byte offset of `text`.
    pub fn at(file: &str, text: &str, offset: usize, message: &str) -> ConfigError {
        let (line, col) = line_col(text, offset);
        ConfigError {
            file: printable(file),
            line,
            col,
            message: printable(message),
        }
    }

    /// An error about the file as a whole.
    pub fn file_level(file: &str, message: &str) -> ConfigError {
        ConfigError {
            file: printable(file),
            line: 0,
            col: 0,
            message: printable(message),
        }
    }

    /// Whether this error is about the whole file rather than a place in it.
    pub fn is_file_level(&self) -> bool {
        self.line == 0
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_file_level() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.col, self.message
            )
        }
    }
}

/// Every problem found in one file (at least one), in file order.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Collects located errors for one text.
pub(crate) struct Errors<'a> {
    pub file: &'a str,
    pub text: &'a str,
    pub list: Vec<ConfigError>,
}

impl<'a> Errors<'a> {
    pub fn new(file: &'a str, text: &'a str) -> Self {
        Errors {
            file,
            text,
            list: Vec::new(),
        }
    }

    pub fn at(&mut self, span: Range<usize>, message: impl AsRef<str>) {
        let e = ConfigError::at(self.file, self.text, span.start, message.as_ref());
        if !self.list.contains(&e) {
            self.list.push(e);
        }
    }

    /// The errors in file order (a stable sort: errors at one place keep
    /// the order they were found in).
    pub fn into_sorted(mut self) -> Vec<ConfigError> {
        self.list.sort_by_key(|e| (e.line, e.col));
        self.list
    }
}

/// 1-based line and column (in characters) of a byte offset; an offset inside
/// a character counts as that character.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = text[line_start..offset].chars().count() + 1;
    (line, col)
}

/// `s` with control and bidirectional-override characters escaped, so
/// printing it cannot move the cursor, recolour or forge lines.
pub fn printable(s: &str) -> String {
    if !s.chars().any(is_unsafe_char) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Control characters (C0, DEL, C1) and the Unicode characters that reorder
/// or hide text on screen (bidi embeddings, overrides and isolates).
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A value quoted for a message: escaped, and cut to `MAX` characters so a
/// 300-character version does not fill the screen.
pub fn quoted(s: &str) -> String {
    const MAX: usize = 60;
    let mut shown: String = s.chars().take(MAX).collect();
    if s.chars().count() > MAX {
        shown.push('…');
    }
    format!("\"{}\"", printable(&shown).replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_count_characters() {
        let text = "a = 1\nb = \"é\" x\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        let x = text.find('x').unwrap();
        assert_eq!(line_col(text, x), (2, 9));
        // Inside the two bytes of é: the column of é.
        let e = text.find('é').unwrap();
        assert_eq!(line_col(text, e + 1), (2, 6));
        assert_eq!(line_col(text, 10_000), (3, 1));
    }

    #[test]
    fn messages_and_file_names_never_carry_control_characters() {
        let e = ConfigError::at("p\u{1b}.toml", "x", 0, "version \u{1b}[2J\nforged");
        let shown = e.to_string();
        assert!(!shown.chars().any(is_unsafe_char), "{shown:?}");
        assert!(shown.contains("\\u{1b}[2J\\nforged"), "{shown}");
        assert!(!quoted("a\u{202e}b").contains('\u{202e}'));
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let q = quoted(&"9".repeat(300));
        assert!(q.chars().count() < 70, "{q}");
        assert!(q.ends_with("…\""), "{q}");
    }
}
