//! The result of `check`: `file:line: severity: message` diagnostics, a summary, an exit status.

use std::fmt;

use serde::Serialize;

use super::CheckError;

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Applies, but probably not as meant (e.g. a field the API server drops).
    Warning,
    /// The API server or the operator would refuse it.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Warning => "warning",
            Self::Error => "error",
        })
    }
}

/// One finding, at a line of an input file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The file as given or found (`<stdin>` for standard input).
    pub file: String,
    /// The line (1-based) of the offending field, or of its object.
    pub line: usize,
    /// How bad it is.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}: {}", self.file, self.line, self.severity, self.message)
    }
}

/// How `check` prints its report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// `file:line: severity: message` lines and a summary line.
    #[default]
    Text,
    /// One JSON object: `files`, `channels`, `errors`, `warnings`, `diagnostics`, `failures`.
    Json,
}

/// Everything `check` found.
#[derive(Debug, Default)]
pub struct Report {
    /// The findings, by file (in input order) and line.
    pub diagnostics: Vec<Diagnostic>,
    /// How many files (or standard input) were read.
    pub files: usize,
    /// How many `WhatsAppChannel` objects were checked.
    pub channels: usize,
    /// Input that could not be read, or a checker that could not be built: exit status 2.
    pub failures: Vec<CheckError>,
}

impl Report {
    /// How many errors.
    pub fn errors(&self) -> usize {
        self.count(Severity::Error)
    }

    /// How many warnings.
    pub fn warnings(&self) -> usize {
        self.count(Severity::Warning)
    }

    fn count(&self, severity: Severity) -> usize {
        self.diagnostics.iter().filter(|d| d.severity == severity).count()
    }

    /// 2 when input could not be read, 1 when there are errors, else 0.
    pub fn exit_code(&self) -> u8 {
        if !self.failures.is_empty() {
            2
        } else if self.errors() > 0 {
            1
        } else {
            0
        }
    }

    /// `checked N channels in M files: E errors, W warnings`.
    pub fn summary(&self) -> String {
        format!(
            "checked {} in {}: {}, {}",
            plural(self.channels, "channel"),
            plural(self.files, "file"),
            plural(self.errors(), "error"),
            plural(self.warnings(), "warning"),
        )
    }

    /// The diagnostics, one per line, then the summary line.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for d in &self.diagnostics {
            out.push_str(&d.to_string());
            out.push('\n');
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    /// The report as one JSON object.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "files": self.files,
            "channels": self.channels,
            "errors": self.errors(),
            "warnings": self.warnings(),
            "diagnostics": self.diagnostics,
            "failures": self.failures.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_and_exit_codes() {
        let mut report = Report { files: 1, channels: 2, ..Report::default() };
        assert_eq!(report.summary(), "checked 2 channels in 1 file: 0 errors, 0 warnings");
        assert_eq!(report.exit_code(), 0);
        report.diagnostics.push(Diagnostic {
            file: "a.yaml".into(),
            line: 3,
            severity: Severity::Warning,
            message: "hm".into(),
        });
        assert_eq!(report.exit_code(), 0);
        report.diagnostics.push(Diagnostic {
            file: "a.yaml".into(),
            line: 4,
            severity: Severity::Error,
            message: "no".into(),
        });
        assert_eq!(report.exit_code(), 1);
        assert_eq!(
            report.text(),
            "a.yaml:3: warning: hm\na.yaml:4: error: no\nchecked 2 channels in 1 file: 1 error, 1 warning\n"
        );
        assert_eq!(report.json()["diagnostics"][1]["severity"], "error");
        report.failures.push(CheckError::Load(super::super::load::LoadError::StdinTwice));
        assert_eq!(report.exit_code(), 2);
    }
}
