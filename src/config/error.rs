use std::fmt;
use std::ops::Range;

/// Why a policy could not be loaded.
///
/// Names the file (or `<string>` for text given directly), the line and
/// column of the offending value when the mistake is in the text, and what was
/// expected. Displays as `FILE:LINE:COL: message`, the form editors and
/// terminals turn into a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    origin: String,
    location: Option<(usize, usize)>,
    message: String,
}

impl PolicyError {
    pub(crate) fn new(origin: &str, message: impl Into<String>) -> Self {
        PolicyError {
            origin: origin.to_owned(),
            location: None,
            message: message.into(),
        }
    }

    /// An error about the text at byte range `span` of `text`.
    pub(crate) fn at(
        origin: &str,
        text: &str,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Self {
        let mut error = PolicyError::new(origin, message);
        error.location = Some(line_and_column(text, span.start));
        error
    }

    /// The file the policy came from, `<string>` for text, or `preset NAME`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The line of the mistake, counting from 1, when it is in the text.
    pub fn line(&self) -> Option<usize> {
        self.location.map(|(line, _)| line)
    }

    /// The column of the mistake, counting characters from 1.
    pub fn column(&self) -> Option<usize> {
        self.location.map(|(_, column)| column)
    }

    /// What is wrong and what was expected, without the location.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some((line, column)) => write!(f, "{}:{line}:{column}: {}", self.origin, self.message),
            None => write!(f, "{}: {}", self.origin, self.message),
        }
    }
}

impl std::error::Error for PolicyError {}

pub(crate) fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::line_and_column;

    #[test]
    fn lines_and_columns_count_from_one_in_characters() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_and_column(text, 0), (1, 1));
        assert_eq!(line_and_column(text, 4), (1, 5));
        assert_eq!(line_and_column(text, 6), (2, 1));
        // 'é' is two bytes but one column.
        assert_eq!(line_and_column(text, 9), (2, 3));
        // Past the end and inside a character are clamped, not a panic.
        assert_eq!(line_and_column(text, 8), (2, 2));
        assert_eq!(line_and_column(text, 999), (3, 1));
    }
}
