//! Diagnostics: one shape for every phase, rendered by miette.
//!
//! A `Diag` is a code (`fak::<phase>::<name>`, each documented in docs/diagnostics.md), a
//! severity, a message, the span it is about with a label, help, and further labelled spans.
//! Phases return `Vec<Diag>`: every error of a file in one run. `Sources` holds the text of
//! every file loaded, so a diagnostic renders itself with the offending line underlined.

use std::fmt;
use std::sync::Arc;

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode};

use crate::ast::Span;

/// Index of a file in `Sources`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize)]
pub struct FileId(pub u32);

#[derive(Clone, Debug)]
pub struct SourceFile {
    /// The name shown to the user: a path, `<stdin>`, `std.shell`.
    pub name: String,
    pub text: Arc<str>,
}

/// Every source text loaded for one policy, addressed by `FileId`.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    files: Vec<SourceFile>,
}

impl Sources {
    pub fn new() -> Sources {
        Sources::default()
    }

    pub fn add(&mut self, name: impl Into<String>, text: impl Into<Arc<str>>) -> FileId {
        let id = FileId(u32::try_from(self.files.len()).unwrap_or(u32::MAX));
        self.files.push(SourceFile { name: name.into(), text: text.into() });
        id
    }

    pub fn get(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(id.0 as usize)
    }

    /// Every file, in `FileId` order.
    pub fn files(&self) -> &[SourceFile] {
        &self.files
    }

    pub fn name(&self, id: FileId) -> &str {
        self.get(id).map_or("<unknown>", |f| f.name.as_str())
    }

    pub fn text(&self, id: FileId) -> &str {
        self.get(id).map_or("", |f| &f.text)
    }

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, id: FileId, offset: usize) -> (usize, usize) {
        let text = self.text(id);
        let offset = offset.min(text.len());
        let before = text.get(..offset).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let col =
            before.rfind('\n').map_or(before.chars().count(), |i| before.get(i + 1..).map_or(0, |s| s.chars().count()))
                + 1;
        (line, col)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Warning,
    Error,
}

/// A place in a source file, for verdicts and diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct Loc {
    pub file: FileId,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Diag {
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    pub file: FileId,
    pub span: Span,
    pub label: String,
    pub help: Option<String>,
    /// Other places that explain this one ("first defined here").
    pub notes: Vec<(Loc, String)>,
}

impl Diag {
    pub fn error(code: &'static str, file: FileId, span: Span) -> Diag {
        Diag {
            code,
            severity: Severity::Error,
            message: String::new(),
            file,
            span,
            label: String::new(),
            help: None,
            notes: Vec::new(),
        }
    }

    pub fn warning(code: &'static str, file: FileId, span: Span) -> Diag {
        Diag { severity: Severity::Warning, ..Diag::error(code, file, span) }
    }

    pub fn at(code: &'static str, loc: Loc) -> Diag {
        Diag::error(code, loc.file, loc.span)
    }

    pub fn message(mut self, m: impl Into<String>) -> Diag {
        self.message = m.into();
        self
    }

    pub fn label(mut self, l: impl Into<String>) -> Diag {
        self.label = l.into();
        self
    }

    pub fn help(mut self, h: impl Into<String>) -> Diag {
        self.help = Some(h.into());
        self
    }

    pub fn note(mut self, loc: Loc, what: impl Into<String>) -> Diag {
        self.notes.push((loc, what.into()));
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

pub fn has_errors(diags: &[Diag]) -> bool {
    diags.iter().any(Diag::is_error)
}

/// How diagnostics are printed (`--error-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// Graphical, coloured when `color` is set.
    #[default]
    Human,
    /// Graphical, no colour, ASCII art: for logs and snapshots.
    Plain,
    /// One JSON object per line.
    Json,
}

/// Renders one diagnostic.
pub fn render(d: &Diag, sources: &Sources, format: Format, color: bool) -> String {
    match format {
        Format::Json => render_json(d, sources),
        Format::Human | Format::Plain => {
            let theme = match (format, color) {
                (Format::Human, true) => GraphicalTheme::unicode(),
                (Format::Human, false) => GraphicalTheme::unicode_nocolor(),
                _ => {
                    GraphicalTheme { characters: miette::ThemeCharacters::ascii(), styles: miette::ThemeStyles::none() }
                }
            };
            let handler = GraphicalReportHandler::new_themed(theme).with_width(100).with_links(false);
            let view = View::new(d, sources);
            let mut out = String::new();
            if handler.render_report(&mut out, &view).is_err() {
                out = format!("{}: {}\n", d.code, d.message);
            }
            out
        }
    }
}

fn render_json(d: &Diag, sources: &Sources) -> String {
    let (line, column) = sources.line_col(d.file, d.span.start);
    let notes: Vec<serde_json::Value> = d
        .notes
        .iter()
        .map(|(loc, what)| {
            let (line, column) = sources.line_col(loc.file, loc.span.start);
            serde_json::json!({"file": sources.name(loc.file), "line": line, "column": column,
                "span": {"start": loc.span.start, "end": loc.span.end}, "label": what})
        })
        .collect();
    let v = serde_json::json!({
        "code": d.code,
        "severity": match d.severity { Severity::Error => "error", Severity::Warning => "warning" },
        "message": d.message,
        "file": sources.name(d.file),
        "line": line,
        "column": column,
        "span": {"start": d.span.start, "end": d.span.end},
        "label": d.label,
        "help": d.help,
        "notes": notes,
    });
    let mut s = v.to_string();
    s.push('\n');
    s
}

/// A diagnostic joined with its source, as miette wants it.
struct View {
    code: &'static str,
    severity: Severity,
    message: String,
    help: Option<String>,
    src: NamedSource<Arc<str>>,
    labels: Vec<LabeledSpan>,
    related: Vec<View>,
}

impl View {
    fn new(d: &Diag, sources: &Sources) -> View {
        let text: Arc<str> = sources.get(d.file).map_or_else(|| Arc::from(""), |f| f.text.clone());
        let clamp = |s: Span, len: usize| {
            let start = s.start.min(len);
            (start, s.end.min(len).saturating_sub(start))
        };
        let (start, len) = clamp(d.span, text.len());
        let label = if d.label.is_empty() { None } else { Some(d.label.clone()) };
        let mut labels = vec![LabeledSpan::new_primary_with_span(label, (start, len))];
        let mut related = Vec::new();
        for (loc, what) in &d.notes {
            if loc.file == d.file {
                let (s, l) = clamp(loc.span, text.len());
                labels.push(LabeledSpan::new_with_span(Some(what.clone()), (s, l)));
            } else {
                let other = Diag::at("note", *loc).message(what.clone());
                let mut v = View::new(&other, sources);
                v.severity = Severity::Warning;
                related.push(v);
            }
        }
        View {
            code: d.code,
            severity: d.severity,
            message: d.message.clone(),
            help: d.help.clone(),
            src: NamedSource::new(sources.name(d.file), text),
            labels,
            related,
        }
    }
}

impl fmt::Debug for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl fmt::Display for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for View {}

impl Diagnostic for View {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        if self.code == "note" {
            None
        } else {
            Some(Box::new(self.code))
        }
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.src)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(self.labels.iter().cloned()))
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        if self.related.is_empty() {
            None
        } else {
            Some(Box::new(self.related.iter().map(|v| v as &dyn Diagnostic)))
        }
    }
}

/// "did you mean `x`?" for a misspelt name, by edit distance.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lname = name.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (levenshtein(&lname, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len().max(name.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(0) + usize::from(ca != *cb);
            let del = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let ins = cur.get(j).copied().unwrap_or(0) + 1;
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}
