//! The CSV file of an access group's member import (L7): its bounds, its
//! columns and the end-date forms, parsed into rows.
//!
//! Owns: [`parse`], from the uploaded bytes to one [`ImportRow`] per data
//! row, and the file-level refusals ([`ImportError`]). Must not: judge an
//! e-mail address or a display name (the hub's identity rules do that), look
//! up users or members, or decide what a row does to a group — the hub's
//! import does all of that with the rows this returns.
//!
//! The format: UTF-8 text (a byte-order mark is skipped), comma-separated,
//! cells trimmed, blank lines skipped; columns `email`, `name`, `end_date`
//! in that order, or in any order under a header line (a first line with no
//! address in it that names a column: `email` — also `e-mail`, `e_mail` —,
//! `name`, `end_date`; every cell of it must name one, once, and `email`
//! must be there). Every data row has exactly as many cells as the file has
//! columns (three without a header): a row with an extra or a missing cell
//! is refused on its own, with why. An end date is empty (none),
//! `YYYY-MM-DD` (through the end of that day: access ends at the next
//! midnight UTC) or RFC 3339.

use chrono::{DateTime, NaiveDate, Utc};

/// The largest import file, in bytes.
pub const MAX_IMPORT_BYTES: usize = 1024 * 1024;
/// The most data rows one import may hold.
pub const MAX_IMPORT_ROWS: usize = 5000;
/// How many columns a file without a header has: email, name, end date.
pub const COLUMNS_WITHOUT_HEADER: usize = 3;
/// The most characters of a cell quoted back in a message.
const QUOTED_CHARS: usize = 40;

/// Why a whole file is refused (no row of it is imported).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// Larger than [`MAX_IMPORT_BYTES`]; nothing was parsed.
    #[error("an import file is at most {MAX_IMPORT_BYTES} bytes")]
    TooLarge,
    /// Not UTF-8.
    #[error("the file is not UTF-8 text")]
    NotUtf8,
    /// Not CSV (an unclosed quote, for one).
    #[error("not CSV: {0}")]
    NotCsv(String),
    /// More than [`MAX_IMPORT_ROWS`] data rows.
    #[error("an import holds at most {MAX_IMPORT_ROWS} rows")]
    TooManyRows,
    /// The header names a column that is not email, name or end date.
    #[error("unknown column {0:?}; the columns are email, name, end_date")]
    UnknownColumn(String),
    /// The header names a column twice.
    #[error("column {0} appears twice")]
    DuplicateColumn(String),
    /// The header has no e-mail column.
    #[error("the header has no email")]
    NoEmailColumn,
}

/// One data row, as the file states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    /// The line the row starts on (1-based), for the report.
    pub line: u64,
    /// The e-mail cell (empty when missing), not yet checked.
    pub email: String,
    /// The name cell, when present and not empty; not yet checked.
    pub name: Option<String>,
    /// The end date, or why its cell is not one.
    pub end_date: Result<Option<DateTime<Utc>>, String>,
    /// Why the row has the wrong number of cells (not as many as the
    /// header names, or [`COLUMNS_WITHOUT_HEADER`] without one): checked
    /// before anything else of the row.
    pub shape: Result<(), String>,
}

/// Which column holds which field.
#[derive(Debug, Clone, Copy)]
struct Columns {
    /// The e-mail column.
    email: usize,
    /// The name column.
    name: Option<usize>,
    /// The end-date column.
    end_date: Option<usize>,
}

/// Parses an import file into its data rows, in file order: at most
/// [`MAX_IMPORT_ROWS`] of them, from at most [`MAX_IMPORT_BYTES`].
///
/// # Errors
/// An [`ImportError`] when the file as a whole is refused; a row's own
/// problems are in its [`ImportRow`].
pub fn parse(bytes: &[u8]) -> Result<Vec<ImportRow>, ImportError> {
    if bytes.len() > MAX_IMPORT_BYTES {
        return Err(ImportError::TooLarge);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| ImportError::NotUtf8)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut lines = LineCounter::default();
    let mut records = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| ImportError::NotCsv(e.to_string()))?;
        if record.iter().all(str::is_empty) {
            continue;
        }
        let start = record
            .position()
            .and_then(|p| usize::try_from(p.byte()).ok())
            .unwrap_or(0);
        records.push((lines.line_of(text.as_bytes(), start), record));
        // One more than the limit: the first record may be a header.
        if records.len() > MAX_IMPORT_ROWS + 1 {
            return Err(ImportError::TooManyRows);
        }
    }
    let has_header = records.first().is_some_and(|(_, r)| is_header(r));
    let (columns, width) = if has_header {
        let header = records.remove(0).1;
        (header_columns(&header)?, header.len())
    } else {
        let columns = Columns {
            email: 0,
            name: Some(1),
            end_date: Some(2),
        };
        (columns, COLUMNS_WITHOUT_HEADER)
    };
    if records.len() > MAX_IMPORT_ROWS {
        return Err(ImportError::TooManyRows);
    }
    Ok(records
        .iter()
        .map(|(line, record)| {
            let cell = |index: Option<usize>| index.and_then(|i| record.get(i)).unwrap_or("");
            let shape = row_shape(record.len(), width, has_header);
            ImportRow {
                line: *line,
                email: cell(Some(columns.email)).to_owned(),
                name: Some(cell(columns.name))
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned),
                end_date: parse_end_date(cell(columns.end_date)),
                shape,
            }
        })
        .collect())
}

/// Whether `record` is a header line: no cell holds an address, and one
/// names a column (so a misspelt header is refused as one, not imported
/// as a row).
fn is_header(record: &csv::StringRecord) -> bool {
    !record.iter().any(|cell| cell.contains('@'))
        && record.iter().any(|cell| column_of(cell).is_some())
}

/// The column a header cell names, if it names one.
fn column_of(cell: &str) -> Option<&'static str> {
    let normalized = cell.trim().to_ascii_lowercase().replace([' ', '-'], "_");
    match normalized.as_str() {
        "email" | "e_mail" => Some("email"),
        "name" => Some("name"),
        "end_date" | "enddate" => Some("end_date"),
        _ => None,
    }
}

/// A data row of `cells` cells in a file of `width` columns: exactly
/// `width` cells, or why not (L7: a row with an extra or a missing column
/// is refused on its own).
fn row_shape(cells: usize, width: usize, has_header: bool) -> Result<(), String> {
    if cells == width {
        return Ok(());
    }
    let which = if cells > width { "extra" } else { "missing" };
    let expected = if has_header {
        format!("{width} as in the header")
    } else {
        format!("{width}: email, name, end_date (or a header line naming the columns)")
    };
    Err(format!(
        "{cells} columns ({which} column); expected {expected}"
    ))
}

/// Line numbers of record starts, counted as the file is read. The csv
/// crate's own `Position::line` is taken before the terminator of the line
/// before is consumed: with CRLF line ends every row but the first got the
/// number of the line before it, and rows after blank lines a number too low.
#[derive(Debug, Default)]
struct LineCounter {
    /// How far the text has been counted, in bytes.
    counted: usize,
    /// The line `counted` is on (0 before counting: lines count from 1).
    line: u64,
}

impl LineCounter {
    /// The line (1-based) on which the record the csv reader placed at
    /// byte `at` begins: after any line ends between `at` and its first
    /// cell. A line ends at `\n`, `\r\n` or a lone `\r`. Records come in
    /// file order, so the text is counted once in all.
    fn line_of(&mut self, text: &[u8], at: usize) -> u64 {
        let start = at
            + text
                .get(at..)
                .unwrap_or_default()
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
        let start = start.max(self.counted).min(text.len());
        if self.line == 0 {
            self.line = 1;
        }
        for (i, b) in text[self.counted..start].iter().enumerate() {
            let next = text.get(self.counted + i + 1);
            if *b == b'\n' || (*b == b'\r' && next != Some(&b'\n')) {
                self.line += 1;
            }
        }
        self.counted = start;
        self.line
    }
}

/// A parsed end-date cell: empty is none; `YYYY-MM-DD` means through the
/// end of that day (access ends at the next midnight UTC); otherwise RFC 3339.
///
/// # Errors
/// Why the cell is neither form, or out of range.
pub fn parse_end_date(cell: &str) -> Result<Option<DateTime<Utc>>, String> {
    let cell = cell.trim();
    if cell.is_empty() {
        return Ok(None);
    }
    if let Ok(date) = NaiveDate::parse_from_str(cell, "%Y-%m-%d") {
        return date
            .succ_opt()
            .and_then(|next| next.and_hms_opt(0, 0, 0))
            .map(|t| Some(t.and_utc()))
            .ok_or_else(|| format!("end date {cell:?} is out of range"));
    }
    DateTime::parse_from_rfc3339(cell)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|_| {
            format!(
                "end date {:?} is neither YYYY-MM-DD nor RFC 3339",
                quoted(cell)
            )
        })
}

/// At most [`QUOTED_CHARS`] characters of `cell`.
fn quoted(cell: &str) -> String {
    cell.chars().take(QUOTED_CHARS).collect()
}

fn header_columns(header: &csv::StringRecord) -> Result<Columns, ImportError> {
    let mut email = None;
    let mut name = None;
    let mut end_date = None;
    for (index, cell) in header.iter().enumerate() {
        let column = column_of(cell).ok_or_else(|| ImportError::UnknownColumn(quoted(cell)))?;
        let slot = match column {
            "email" => &mut email,
            "name" => &mut name,
            _ => &mut end_date,
        };
        if slot.replace(index).is_some() {
            return Err(ImportError::DuplicateColumn(column.to_owned()));
        }
    }
    Ok(Columns {
        email: email.ok_or(ImportError::NoEmailColumn)?,
        name,
        end_date,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// L7: without a header the columns are email, name, end date; a
    /// `YYYY-MM-DD` end date runs through that day; blank lines are skipped
    /// and lines are counted as written.
    #[test]
    fn l7_rows_without_a_header() {
        let rows = parse(b"\xef\xbb\xbfa@example.com, Ann ,2026-12-31\n\nb@example.com\n").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].email, "a@example.com");
        assert_eq!(rows[0].name.as_deref(), Some("Ann"));
        assert_eq!(
            rows[0].end_date,
            Ok(Some("2027-01-01T00:00:00Z".parse().unwrap()))
        );
        assert_eq!((rows[1].line, rows[1].name.as_deref()), (3, None));
        assert_eq!(rows[1].end_date, Ok(None));
        assert!(rows[0].shape.is_ok());
        assert!(rows[1].shape.is_err(), "one cell of three");
    }

    /// L7: the report's row numbers are the lines the rows start on, with
    /// CRLF (what spreadsheets write) or lone CR line ends, after blank
    /// lines, and after quoted cells spanning lines. Before the fix, with
    /// CRLF every row but the first had the number of the line before it.
    #[test]
    fn l7_row_numbers_are_the_lines_rows_start_on() {
        let lines =
            |bytes: &[u8]| -> Vec<u64> { parse(bytes).unwrap().iter().map(|r| r.line).collect() };
        assert_eq!(lines(b"a@x.io\r\nb@x.io\r\nc@x.io\r\n"), [1, 2, 3]);
        assert_eq!(lines(b"a@x.io\n\nb@x.io\nc@x.io\n"), [1, 3, 4]);
        assert_eq!(
            lines(b"a@x.io,A,1\r\n\r\nb@x.io\r\n c@x.io ,F,t,e"),
            [1, 3, 4]
        );
        assert_eq!(lines(b"\n\na@x.io,\"two\nlines\"\rb@x.io\n"), [3, 5]);
        assert_eq!(lines(b"email\r\n\r\na@x.io\r\n"), [3]);
    }

    /// L7: a header (first cell e-mail) names the columns in any order; a fourth cell without a
    /// header is a refusal of that row alone, as is a bad end date.
    #[test]
    fn l7_header_and_row_refusals() {
        let rows = parse(b"E-mail,end date\nx@example.com,2026-01-01T10:00:00+01:00\n").unwrap();
        assert_eq!(rows[0].email, "x@example.com");
        assert_eq!(
            rows[0].end_date,
            Ok(Some("2026-01-01T09:00:00Z".parse().unwrap()))
        );
        let rows = parse(b"a@example.com,A,,extra\nb@example.com,B,tomorrow\n").unwrap();
        assert!(rows[0].shape.is_err());
        assert!(rows[1].shape.is_ok());
        assert!(rows[1].end_date.as_ref().unwrap_err().contains("tomorrow"));
    }

    /// L7: every row has exactly the file's columns — the header's, or
    /// three without one; a row with an extra or a missing cell is refused
    /// on its own with why, the others are untouched. Before the fix a row
    /// with an extra column under a header was read as valid.
    #[test]
    fn l7_rows_with_extra_or_missing_columns_are_refused_alone() {
        let rows = parse(
            b"email,name,end_date
a@x.io,A,
b@x.io,B,,surplus
c@x.io,C
d@x.io,D,2030-01-01
",
        )
        .unwrap();
        let shapes: Vec<_> = rows.iter().map(|r| r.shape.clone()).collect();
        assert!(shapes[0].is_ok() && shapes[3].is_ok(), "{shapes:?}");
        let extra = shapes[1].clone().unwrap_err();
        assert!(extra.contains("4 columns (extra column)"), "{extra}");
        assert!(extra.contains("3 as in the header"), "{extra}");
        let missing = shapes[2].clone().unwrap_err();
        assert!(missing.contains("2 columns (missing column)"), "{missing}");
        assert_eq!((rows[1].line, rows[2].line), (3, 4));

        let rows = parse(
            b"a@x.io,A,
b@x.io
c@x.io,C,,
",
        )
        .unwrap();
        assert!(rows[0].shape.is_ok());
        assert!(
            rows[1]
                .shape
                .as_ref()
                .unwrap_err()
                .contains("1 columns (missing column)")
        );
        assert!(
            rows[2]
                .shape
                .as_ref()
                .unwrap_err()
                .contains("4 columns (extra column)")
        );

        let rows = parse(
            b"name,email
Ann,a@x.io
Bob,b@x.io,2030-01-01
",
        )
        .unwrap();
        assert_eq!(rows[0].email, "a@x.io");
        assert_eq!(rows[0].name.as_deref(), Some("Ann"));
        assert!(rows[0].shape.is_ok());
        assert!(rows[1].shape.is_err());
    }

    /// L7: the header is validated: a misspelt or empty column name, a
    /// column named twice or no e-mail column refuses the file, rather than
    /// importing the header as a row.
    #[test]
    fn l7_the_header_is_validated() {
        let refused = |bytes: &[u8]| parse(bytes).unwrap_err();
        assert_eq!(
            refused(
                b"emial,name,end_date
a@x.io,A,
"
            ),
            ImportError::UnknownColumn("emial".into())
        );
        assert_eq!(
            refused(
                b"email,name,
a@x.io,A,
"
            ),
            ImportError::UnknownColumn(String::new())
        );
        assert_eq!(
            refused(
                b"name,end date
A,
"
            ),
            ImportError::NoEmailColumn
        );
        assert_eq!(
            refused(
                b"Email,NAME,name
"
            ),
            ImportError::DuplicateColumn("name".into())
        );
    }

    /// L7, S13: files refused whole, each with its reason.
    #[test]
    fn l7_files_refused_whole() {
        let refused = |bytes: &[u8]| parse(bytes).unwrap_err();
        assert_eq!(
            refused(&vec![b'a'; MAX_IMPORT_BYTES + 1]),
            ImportError::TooLarge
        );
        assert_eq!(refused(b"\xff\xfe"), ImportError::NotUtf8);
        assert_eq!(
            refused(b"email,phone\n"),
            ImportError::UnknownColumn("phone".into())
        );
        assert_eq!(
            refused(b"email,e-mail\n"),
            ImportError::DuplicateColumn("email".into())
        );
        let many = "a@example.com\n".repeat(MAX_IMPORT_ROWS + 1);
        assert_eq!(refused(many.as_bytes()), ImportError::TooManyRows);
        let header_and_limit = format!("email\n{}", "a@example.com\n".repeat(MAX_IMPORT_ROWS));
        assert_eq!(
            parse(header_and_limit.as_bytes()).unwrap().len(),
            MAX_IMPORT_ROWS
        );
    }
}
