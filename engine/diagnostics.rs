//! Diagnostics about a policy set: what is wrong, where (file:line:col) and how to fix it.
//!
//! Loading and compiling collect every diagnostic instead of stopping at the first, so a
//! platform engineer fixes a broken policy set in one round trip. Rendering follows cargo's
//! layout so the messages look familiar.

use serde::Serialize;
use std::fmt::{self, Write as _};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// How serious a diagnostic is. Errors reject the policy set; warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A position in a policy file, with the line's text so the diagnostic can be rendered
/// after the source is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    /// Path relative to the policy root.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    #[serde(skip)]
    pub line_text: String,
    /// How many characters the caret underline spans.
    #[serde(skip)]
    pub width: usize,
}

impl Location {
    /// A location with no line to point at (a missing file, a directory).
    pub fn file(file: impl Into<PathBuf>) -> Self {
        Location {
            file: file.into(),
            line: 0,
            column: 0,
            line_text: String::new(),
            width: 0,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
        }
    }
}

/// One finding about the policy set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A stable machine-readable code, e.g. `unknown-key` or `missing-upstream`.
    pub code: &'static str,
    pub message: String,
    pub location: Option<Box<Location>>,
    pub help: Option<String>,
    /// Secondary locations, e.g. the first definition of a duplicate.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Note>,
}

/// A secondary message attached to a diagnostic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    pub message: String,
    pub location: Option<Location>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            location: None,
            help: None,
            notes: Vec::new(),
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    pub fn at(mut self, location: Location) -> Self {
        self.location = Some(Box::new(location));
        self
    }

    pub fn at_opt(mut self, location: Option<Location>) -> Self {
        self.location = location.map(Box::new);
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn note(mut self, message: impl Into<String>, location: Option<Location>) -> Self {
        self.notes.push(Note {
            message: message.into(),
            location,
        });
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders the diagnostic the way cargo does: headline, arrow, source line, carets, help.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(out, "{label}[{}]: {}", self.code, self.message);
        if let Some(loc) = &self.location {
            render_location(&mut out, loc, "-->");
        }
        for note in &self.notes {
            let _ = writeln!(out, "   = note: {}", note.message);
            if let Some(loc) = &note.location {
                render_location(&mut out, loc, "::>");
            }
        }
        if let Some(help) = &self.help {
            let _ = writeln!(out, "   = help: {help}");
        }
        out
    }
}

fn render_location(out: &mut String, loc: &Location, arrow: &str) {
    let _ = writeln!(out, "  {arrow} {loc}");
    if loc.line == 0 || loc.line_text.is_empty() {
        return;
    }
    let number = loc.line.to_string();
    let pad = " ".repeat(number.len());
    let _ = writeln!(out, " {pad} |");
    let _ = writeln!(out, " {number} | {}", loc.line_text);
    let _ = writeln!(
        out,
        " {pad} | {}{}",
        " ".repeat(loc.column.saturating_sub(1)),
        "^".repeat(loc.width.max(1))
    );
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

/// Every diagnostic from one load or compile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    pub fn error_count(&self) -> usize {
        self.0.iter().filter(|d| d.is_error()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    /// Sorted by file and position so output is stable across runs.
    pub fn sorted(mut self) -> Self {
        self.0.sort_by(|a, b| {
            let key = |d: &Diagnostic| d.location.as_ref().map(|l| (l.file.clone(), l.line, l.column));
            key(a).cmp(&key(b))
        });
        self
    }

    /// The whole set rendered as text, with a closing summary line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for d in &self.0 {
            out.push_str(&d.render());
            out.push('\n');
        }
        let errors = self.error_count();
        let warnings = self.0.len() - errors;
        if errors > 0 {
            let _ = writeln!(
                out,
                "error: the policy set has {errors} error{} and {warnings} warning{}; it was not loaded",
                plural(errors),
                plural(warnings)
            );
        }
        out
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// A policy file's text with a line index, to turn byte spans into locations.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path relative to the policy root.
    pub path: PathBuf,
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: String) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceFile {
            path: path.into(),
            text,
            line_starts,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The location of a byte span; the underline is clipped to the first line.
    pub fn location(&self, span: Range<usize>) -> Location {
        let start = span.start.min(self.text.len());
        let line_index = match self.line_starts.binary_search(&start) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let line_start = self.line_starts[line_index];
        let line_end = self
            .line_starts
            .get(line_index + 1)
            .map(|e| e - 1)
            .unwrap_or(self.text.len());
        let line_text = self.text.get(line_start..line_end).unwrap_or("").trim_end_matches('\r');
        let column = self.text.get(line_start..start).map(|s| s.chars().count()).unwrap_or(0) + 1;
        let end = span.end.clamp(start, line_start + line_text.len());
        let width = self.text.get(start..end).map(|s| s.chars().count()).unwrap_or(1);
        Location {
            file: self.path.clone(),
            line: line_index + 1,
            column,
            line_text: line_text.to_string(),
            width,
        }
    }
}

/// The candidate closest to `name` by edit distance, if it is close enough to be a typo.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let threshold = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= threshold)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_one_based_and_count_characters() {
        let src = SourceFile::new("a.toml", "x = 1\nnamé = \"v\"\n".to_string());
        let at = src.text.find("\"v\"").unwrap();
        let loc = src.location(at..at + 3);
        assert_eq!((loc.line, loc.column, loc.width), (2, 8, 3));
        assert_eq!(loc.line_text, "namé = \"v\"");
        assert_eq!(loc.to_string(), "a.toml:2:8");
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        let keys = ["upstream_path", "response_schema", "method"];
        assert_eq!(did_you_mean("upstream_pth", keys), Some("upstream_path"));
        assert_eq!(did_you_mean("methd", keys), Some("method"));
        assert_eq!(did_you_mean("colour", keys), None);
    }

    #[test]
    fn render_points_at_the_span() {
        let src = SourceFile::new("p.toml", "a = 1\nbad_key = 2\n".to_string());
        let d = Diagnostic::error("unknown-key", "unknown key `bad_key`")
            .at(src.location(6..13))
            .help("did you mean `bad`?");
        let text = d.render();
        assert!(text.contains("--> p.toml:2:1"), "{text}");
        assert!(text.contains(" 2 | bad_key = 2"), "{text}");
        assert!(text.contains("^^^^^^^"), "{text}");
        assert!(text.contains("= help: did you mean `bad`?"), "{text}");
    }
}
