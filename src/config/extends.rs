//! `extends`: a policy file is laid over a base, key by key.
//!
//! The base is a preset (`"standard"` when the key is absent, `"connio"`, or
//! `"none"`: every layer's own defaults, nothing listed in `[classify]`) or
//! another policy file, resolved relative to the file that names it, which may
//! extend another in turn, up to [`MAX_CHAIN`] files. The chain ends at
//! `none`, whose file writes every key, so that the resolved document is
//! complete.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::error::PolicyError;
use super::merge::merge;
use super::schema::{RawPolicy, span_of};
use super::{PRESETS, read_bounded};
use crate::settings::SettingsError;

/// The most policy files a chain of `extends` may hold, the first included
/// (the presets at its end are not counted).
pub const MAX_CHAIN: usize = 8;

/// The base every chain ends at: each layer's defaults, written out.
pub(crate) const NONE: &str = include_str!("../../policies/none.toml");

/// One policy text of a chain, for pointing at its lines.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) origin: String,
    pub(crate) text: String,
}

/// A policy text with its bases laid under it.
#[derive(Debug)]
pub(crate) struct Resolved {
    /// The whole policy, `extends` taken out.
    pub(crate) document: Table,
    /// The texts of the chain, the first file first.
    pub(crate) sources: Vec<Source>,
}

/// Where a policy text came from, for reading the files it extends.
pub(crate) struct Origin<'a> {
    pub(crate) name: &'a str,
    /// The file itself, when the text is a file's: its folder is where
    /// relative bases are found, and a chain back to it is a cycle.
    pub(crate) path: Option<&'a Path>,
}

/// `text` with every base of its chain laid under it.
pub(crate) fn resolve(origin: Origin<'_>, text: &str) -> Result<Resolved, PolicyError> {
    // The first text is a link of the chain even when it is no file (an
    // empty path, which no file resolves to).
    let first = origin.path.map_or_else(PathBuf::new, |p| {
        p.canonicalize().unwrap_or_else(|_| p.to_owned())
    });
    let mut chain = vec![first];
    let mut sources = Vec::new();
    let document = resolve_into(origin, text, &mut chain, &mut sources)?;
    Ok(Resolved { document, sources })
}

fn resolve_into(
    origin: Origin<'_>,
    text: &str,
    chain: &mut Vec<PathBuf>,
    sources: &mut Vec<Source>,
) -> Result<Table, PolicyError> {
    let toml_error = |e: toml::de::Error| {
        let message = e.message().trim().replace('\n', "; ");
        match e.span() {
            Some(span) => PolicyError::at(origin.name, text, span, message),
            None => PolicyError::new(origin.name, message),
        }
    };
    // The typed form first, for errors at the line of an unknown key or a
    // value of the wrong type; then the document.
    let _: RawPolicy = toml::from_str(text).map_err(toml_error)?;
    let mut document: Table = toml::from_str(text).map_err(toml_error)?;
    switch_on_written_sections(&mut document);
    sources.push(Source {
        origin: origin.name.to_owned(),
        text: text.to_owned(),
    });
    let extends = match document.remove("extends") {
        Some(Value::String(name)) => name,
        _ => "standard".to_owned(),
    };
    let at_extends = |message: String| match span_of(text, "extends", None) {
        Some(span) => PolicyError::at(origin.name, text, span, message),
        None => PolicyError::new(origin.name, message),
    };
    let mut base = if extends == "none" {
        none_document()
    } else if let Some((name, preset)) = PRESETS.iter().find(|(name, _)| *name == extends) {
        let origin = format!("preset {name}");
        resolve_into(
            Origin {
                name: &origin,
                path: None,
            },
            preset,
            chain,
            sources,
        )?
    } else {
        if chain.len() >= MAX_CHAIN {
            return Err(at_extends(format!(
                "extends {extends:?}: too deep a chain; at most {MAX_CHAIN} policy files may extend one another"
            )));
        }
        let folder = origin
            .path
            .and_then(Path::parent)
            .map_or_else(PathBuf::new, Path::to_owned);
        let path = folder.join(&extends);
        let canonical = path.canonicalize().map_err(|e| {
            at_extends(format!(
                "extends {extends:?}: no preset of that name (expected {}, or a file) and cannot read {}: {e}",
                preset_list(),
                path.display()
            ))
        })?;
        if let Some(first) = chain.iter().position(|p| *p == canonical) {
            let mut names: Vec<String> = chain[first..]
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            names.push(canonical.display().to_string());
            return Err(at_extends(format!(
                "extends {extends:?} makes a cycle: {}",
                names.join(" -> ")
            )));
        }
        let base_text = read_bounded(&path).map_err(at_extends)?;
        chain.push(canonical);
        let name = path.display().to_string();
        let base = resolve_into(
            Origin {
                name: &name,
                path: Some(&path),
            },
            &base_text,
            chain,
            sources,
        )?;
        chain.pop();
        base
    };
    merge("", &mut base, &document);
    Ok(base)
}

/// The `none` base: every key at its default.
pub(crate) fn none_document() -> Table {
    toml::from_str(NONE).expect("policies/none.toml is valid TOML")
}

/// The sections that a policy may leave off: each has an `enabled` key.
pub(crate) const OPTIONAL_SECTIONS: [&str; 5] = [
    "rate_limit",
    "concurrency",
    "adaptive_throttle",
    "circuit_breaker",
    "retry.budget",
];

/// A section a text writes is on unless that text says `enabled = false`:
/// `[rate_limit] per_second = 190` asks for a limit, whatever the base says.
/// Each text of a chain is read this way on its own, so a base (or preset)
/// that writes `enabled = false` keeps its section off for a file that does
/// not write the section.
fn switch_on_written_sections(document: &mut Table) {
    for path in OPTIONAL_SECTIONS {
        let mut table = Some(&mut *document);
        for segment in path.split('.') {
            table = table
                .and_then(|t| t.get_mut(segment))
                .and_then(Value::as_table_mut);
        }
        if let Some(section) = table {
            if !section.is_empty() && !section.contains_key("enabled") {
                section.insert("enabled".to_owned(), Value::Boolean(true));
            }
        }
    }
}

/// A document given whole (through serde): laid over the preset its
/// `extends` names. Files are out of reach here.
pub(crate) fn resolve_document(mut document: Table) -> Result<Table, SettingsError> {
    switch_on_written_sections(&mut document);
    let extends = match document.remove("extends") {
        None => "standard".to_owned(),
        Some(Value::String(name)) => name,
        Some(_) => {
            return Err(SettingsError::new(
                "extends",
                format!("extends must be a preset name: {}", preset_list()),
            ));
        }
    };
    let mut base = if extends == "none" {
        none_document()
    } else if let Some((_, preset)) = PRESETS.iter().find(|(name, _)| *name == extends) {
        let preset: Table = toml::from_str(preset).expect("the presets are valid TOML");
        resolve_document(preset)?
    } else {
        return Err(SettingsError::new(
            "extends",
            format!(
                "extends {extends:?}: a policy given whole can extend a preset ({}); a file path needs Policy::from_path",
                preset_list()
            ),
        ));
    };
    merge("", &mut base, &document);
    Ok(base)
}

fn preset_list() -> String {
    let mut names: Vec<&str> = PRESETS.iter().map(|(name, _)| *name).collect();
    names.push("none");
    names.join(", ")
}
