//! Streaming reader for XML extracts (SPEC 2.3).
//!
//! No DTD is ever accepted (so no entity expansion), only the predefined entities and
//! character references are unescaped, the structure is fixed (`Extract` holding empty `Plan`
//! elements, so depth never exceeds two), and no single XML item may exceed
//! [`MAX_ITEM_BYTES`]: a giant tag cannot make the reader buffer the whole file.

use super::{Column, Dialect, FileProblem, RawRow, RowSource, SourceError, COLUMN_COUNT};
use crate::core::codes::Code;
use chrono::{DateTime, Utc};
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::NsReader;
use std::io::{self, BufRead, Read};

/// The namespace of extract documents.
pub const NAMESPACE: &str = "urn:cpis-gateway:extract:1";

/// The most bytes one tag, text run or comment may take.
pub const MAX_ITEM_BYTES: usize = 1 << 20;

/// What the root `Extract` element states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractHeader {
    pub la_code: String,
    pub extracted_at: DateTime<Utc>,
    pub record_count: u64,
}

/// A `BufRead` that refuses to hand out more than `limit` bytes between two resets.
pub struct Budget<R> {
    inner: R,
    used: usize,
}

impl<R> Budget<R> {
    /// Starts counting again: the next item may take the whole budget.
    pub(super) fn reset(&mut self) {
        self.used = 0;
    }
}

#[derive(Debug)]
struct ItemTooLarge;

impl std::fmt::Display for ItemTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "an XML item is larger than {MAX_ITEM_BYTES} bytes")
    }
}

impl std::error::Error for ItemTooLarge {}

impl<R: BufRead> Read for Budget<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Budget<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.used > MAX_ITEM_BYTES {
            return Err(io::Error::other(ItemTooLarge));
        }
        // Hand out no more than the budget allows, so even a reader that holds the whole
        // input in one buffer comes back here before an item grows past the limit.
        let allowed = MAX_ITEM_BYTES + 1 - self.used;
        let available = self.inner.fill_buf()?;
        Ok(&available[..available.len().min(allowed)])
    }

    fn consume(&mut self, amt: usize) {
        self.used += amt;
        self.inner.consume(amt);
    }
}

/// Reads the `Plan` rows of an XML extract one at a time.
pub struct XmlRows<R: BufRead> {
    reader: NsReader<Budget<R>>,
    buf: Vec<u8>,
    header: ExtractHeader,
    values: [String; COLUMN_COUNT],
    present: [bool; COLUMN_COUNT],
    row: u64,
    finished: bool,
}

pub(super) fn xml_problem(message: impl Into<String>) -> SourceError {
    SourceError::File(FileProblem::new(Code::Xml, message))
}

pub(super) fn map_error(err: quick_xml::Error, position: u64) -> SourceError {
    match err {
        quick_xml::Error::Io(e) if e.get_ref().is_some_and(|inner| inner.is::<ItemTooLarge>()) => {
            xml_problem(format!(
                "near byte {position}: {e}: the document cannot be an extract"
            ))
        }
        quick_xml::Error::Io(e) => SourceError::Io(io::Error::new(e.kind(), e.to_string())),
        quick_xml::Error::Encoding(e) => SourceError::File(FileProblem::new(
            Code::Encoding,
            format!("near byte {position}: the text is not UTF-8 ({e}): save the file as UTF-8"),
        )),
        other => xml_problem(format!(
            "near byte {position}: the document is not well-formed XML: {other}"
        )),
    }
}

fn is_extract_ns(ns: &ResolveResult<'_>) -> bool {
    matches!(ns, ResolveResult::Bound(Namespace(n)) if *n == NAMESPACE.as_bytes())
}

/// An XML document read up to and including its root element's start tag.
pub struct Prolog<R: BufRead> {
    pub(super) reader: NsReader<Budget<R>>,
    pub(super) buf: Vec<u8>,
    /// The root element, whether it is in `namespace`, and whether it was `<Root/>`.
    pub(super) root: BytesStart<'static>,
    pub(super) namespace: Option<Vec<u8>>,
    pub(super) empty: bool,
}

impl<R: BufRead> Prolog<R> {
    /// Reads the declaration (UTF-8 only), comments and processing instructions before
    /// the root element, refusing a DTD, an empty file and a document without an element.
    pub fn read(input: R) -> Result<Prolog<R>, SourceError> {
        let mut reader = NsReader::from_reader(Budget {
            inner: input,
            used: 0,
        });
        reader.config_mut().check_comments = true;
        let mut buf = Vec::new();
        let mut saw_anything = false;
        loop {
            buf.clear();
            reader.get_mut().used = 0;
            let position = reader.buffer_position();
            let (ns, event) = reader
                .read_resolved_event_into(&mut buf)
                .map_err(|e| map_error(e, position))?;
            match event {
                Event::Decl(decl) => {
                    saw_anything = true;
                    if let Some(encoding) = decl.encoding() {
                        let encoding = encoding.map_err(|e| xml_problem(e.to_string()))?;
                        if !encoding.eq_ignore_ascii_case(b"utf-8")
                            && !encoding.eq_ignore_ascii_case(b"utf8")
                        {
                            return Err(FileProblem::new(
                                Code::Encoding,
                                format!(
                                    "the XML declaration names encoding {:?}: extracts must be UTF-8",
                                    String::from_utf8_lossy(&encoding)
                                ),
                            )
                            .into());
                        }
                    }
                }
                Event::DocType(_) => {
                    return Err(xml_problem(
                        "the document has a <!DOCTYPE>: DTDs are never accepted, remove it",
                    ))
                }
                Event::Start(ref e) | Event::Empty(ref e) => {
                    let namespace = match ns {
                        ResolveResult::Bound(Namespace(n)) => Some(n.to_vec()),
                        _ => None,
                    };
                    let empty = matches!(event, Event::Empty(_));
                    let root = e.clone().into_owned();
                    return Ok(Prolog {
                        reader,
                        buf,
                        root,
                        namespace,
                        empty,
                    });
                }
                Event::Eof if !saw_anything => {
                    return Err(FileProblem::new(Code::Empty, "the file is empty").into())
                }
                Event::Eof => return Err(xml_problem("the document has no root element")),
                other => {
                    saw_anything = true;
                    check_misc(&other)?
                }
            }
        }
    }

    /// Whether the root element is `name` in namespace `namespace`.
    pub fn root_is(&self, name: &str, namespace: &str) -> bool {
        self.root.local_name().as_ref() == name.as_bytes()
            && self.namespace.as_deref() == Some(namespace.as_bytes())
    }
}

/// After the root element's end: only comments, processing instructions and white space.
pub(super) fn read_epilogue<R: BufRead>(
    reader: &mut NsReader<Budget<R>>,
    buf: &mut Vec<u8>,
) -> Result<(), SourceError> {
    loop {
        buf.clear();
        reader.get_mut().used = 0;
        let position = reader.buffer_position();
        match reader
            .read_event_into(buf)
            .map_err(|e| map_error(e, position))?
        {
            Event::Eof => return Ok(()),
            Event::Start(_) | Event::Empty(_) | Event::End(_) | Event::CData(_) => {
                return Err(after_root())
            }
            Event::Text(t) if !t.iter().all(u8::is_ascii_whitespace) => return Err(after_root()),
            Event::GeneralRef(_) => return Err(after_root()),
            other => check_misc(&other)?,
        }
    }
}

fn after_root() -> SourceError {
    xml_problem(
        "something stands after the root element: only comments, processing instructions and white space may follow it",
    )
}

impl<R: BufRead> XmlRows<R> {
    /// Reads up to and including the root `Extract` start tag.
    pub fn new(input: R) -> Result<XmlRows<R>, SourceError> {
        Self::from_prolog(Prolog::read(input)?)
    }

    /// Goes on from a document read up to its root, which must be `Extract`.
    pub fn from_prolog(prolog: Prolog<R>) -> Result<XmlRows<R>, SourceError> {
        if !prolog.root_is("Extract", NAMESPACE) {
            return Err(xml_problem(format!(
                "the root element must be Extract in namespace {NAMESPACE}"
            )));
        }
        // Every Plan's name is looked up among the root's namespace declarations.
        if prolog.root.attributes().with_checks(false).count() > super::MAX_ATTRIBUTES {
            return Err(xml_problem(format!(
                "Extract has more than {} attributes: it has 3 and its namespace",
                super::MAX_ATTRIBUTES
            )));
        }
        let header = read_header(&prolog.root)?;
        let mut rows = XmlRows {
            reader: prolog.reader,
            buf: prolog.buf,
            header,
            values: Default::default(),
            present: [false; COLUMN_COUNT],
            row: 0,
            finished: prolog.empty,
        };
        if rows.finished {
            rows.read_epilogue()?;
        }
        Ok(rows)
    }

    /// The root element's attributes.
    pub fn header(&self) -> &ExtractHeader {
        &self.header
    }

    /// After `</Extract>`: only comments, processing instructions and white space.
    fn read_epilogue(&mut self) -> Result<(), SourceError> {
        read_epilogue(&mut self.reader, &mut self.buf)
    }

    fn read_plan(&mut self, e: &BytesStart<'_>) -> Result<(), SourceError> {
        self.present = [false; COLUMN_COUNT];
        for attr in e.attributes() {
            let attr = attr.map_err(|err| xml_problem(format!("Plan {}: {err}", self.row)))?;
            let key = attr.key.as_ref();
            if key == b"xmlns" || key.starts_with(b"xmlns:") {
                continue;
            }
            let Some(column) = Column::ALL
                .iter()
                .copied()
                .find(|c| c.xml_name().as_bytes() == key)
            else {
                return Err(xml_problem(format!(
                    "Plan {}: unknown attribute {:?} (allowed: {})",
                    self.row,
                    String::from_utf8_lossy(key),
                    Column::ALL.map(Column::xml_name).join(", ")
                )));
            };
            let value = attr.unescape_value().map_err(|err| match err {
                quick_xml::Error::Encoding(_) => SourceError::File(FileProblem::new(
                    Code::Encoding,
                    format!("Plan {}, attribute {}: the text is not UTF-8", self.row, column.xml_name()),
                )),
                other => xml_problem(format!(
                    "Plan {}, attribute {}: {other}: only &lt; &gt; &amp; &apos; &quot; and character references may be used",
                    self.row,
                    column.xml_name()
                )),
            })?;
            let slot = &mut self.values[column as usize];
            slot.clear();
            slot.push_str(&value);
            self.present[column as usize] = true;
        }
        Ok(())
    }
}

/// Reads `laCode`, `extractedAt` and `recordCount` from the root element.
fn read_header(e: &BytesStart<'_>) -> Result<ExtractHeader, SourceError> {
    let (mut la_code, mut extracted_at, mut record_count) = (None, None, None);
    for attr in e.attributes() {
        let attr = attr.map_err(|err| xml_problem(format!("Extract: {err}")))?;
        let key = attr.key.as_ref();
        if key == b"xmlns" || key.starts_with(b"xmlns:") {
            continue;
        }
        let value = attr
            .unescape_value()
            .map_err(|err| xml_problem(format!("Extract: {err}")))?
            .trim()
            .to_owned();
        match key {
            b"laCode" => la_code = Some(value),
            b"extractedAt" => {
                let at = DateTime::parse_from_rfc3339(&value).map_err(|_| {
                    xml_problem(format!(
                        "Extract: extractedAt {} is not an RFC 3339 time such as 2026-11-21T02:00:00Z",
                        super::shown(&value)
                    ))
                })?;
                extracted_at = Some(at.with_timezone(&Utc));
            }
            b"recordCount" => {
                record_count = Some(value.parse::<u64>().map_err(|_| {
                    xml_problem(format!(
                        "Extract: recordCount {} is not a whole number",
                        super::shown(&value)
                    ))
                })?)
            }
            other => {
                return Err(xml_problem(format!(
                    "Extract: unknown attribute {:?} (allowed: laCode, extractedAt, recordCount)",
                    String::from_utf8_lossy(other)
                )))
            }
        }
    }
    match (la_code, extracted_at, record_count) {
        (Some(la_code), Some(extracted_at), Some(record_count)) => Ok(ExtractHeader {
            la_code,
            extracted_at,
            record_count,
        }),
        _ => Err(xml_problem(
            "Extract must have the attributes laCode, extractedAt and recordCount",
        )),
    }
}

/// Comments, processing instructions and white space may stand between elements; nothing else.
pub(super) fn check_misc(event: &Event<'_>) -> Result<(), SourceError> {
    match event {
        Event::Comment(_) | Event::PI(_) | Event::Decl(_) => Ok(()),
        Event::Text(t) if t.iter().all(u8::is_ascii_whitespace) => Ok(()),
        Event::DocType(_) => Err(xml_problem(
            "the document has a <!DOCTYPE>: DTDs are never accepted, remove it",
        )),
        Event::Start(e) | Event::Empty(e) => Err(xml_problem(format!(
            "unexpected element <{}>: an extract holds only Plan elements inside Extract",
            String::from_utf8_lossy(e.name().as_ref())
        ))),
        Event::End(e) => Err(xml_problem(format!(
            "unexpected end tag </{}>",
            String::from_utf8_lossy(e.name().as_ref())
        ))),
        _ => Err(xml_problem(
            "text is not allowed between elements: an extract holds only Plan elements",
        )),
    }
}

impl<R: BufRead> RowSource for XmlRows<R> {
    fn next_row(&mut self) -> Result<Option<RawRow<'_>>, SourceError> {
        if self.finished {
            return Ok(None);
        }
        loop {
            self.buf.clear();
            self.reader.get_mut().used = 0;
            let position = self.reader.buffer_position();
            let (ns, event) = self
                .reader
                .read_resolved_event_into(&mut self.buf)
                .map_err(|e| map_error(e, position))?;
            let (start, empty) = match event {
                Event::Empty(e) => (e.into_owned(), true),
                Event::Start(e) => (e.into_owned(), false),
                Event::End(e) if e.local_name().as_ref() == b"Extract" => {
                    self.finished = true;
                    self.read_epilogue()?;
                    return Ok(None);
                }
                Event::Eof => {
                    return Err(xml_problem(format!(
                        "the document ends after {} Plan elements without </Extract>: the file is cut off, send it again",
                        self.row
                    )))
                }
                other => {
                    check_misc(&other)?;
                    continue;
                }
            };
            self.row += 1;
            if start.local_name().as_ref() != b"Plan" || !is_extract_ns(&ns) {
                return Err(xml_problem(format!(
                    "element {} is <{}>: an extract holds only Plan elements in namespace {NAMESPACE}",
                    self.row,
                    String::from_utf8_lossy(start.name().as_ref())
                )));
            }
            self.read_plan(&start)?;
            if !empty {
                self.skip_to_plan_end()?;
            }
            break;
        }
        let mut fields: [Option<&str>; COLUMN_COUNT] = [None; COLUMN_COUNT];
        for (i, field) in fields.iter_mut().enumerate() {
            if self.present[i] {
                *field = Some(self.values[i].trim());
            }
        }
        if fields[Column::LaCode as usize].is_none() {
            fields[Column::LaCode as usize] = Some(&self.header.la_code);
        }
        Ok(Some(RawRow {
            number: self.row,
            line: None,
            fields,
        }))
    }

    fn dialect(&self) -> Dialect {
        Dialect::Xml
    }

    fn finish(&mut self) -> Result<(), SourceError> {
        if self.row != self.header.record_count {
            return Err(FileProblem::new(
                Code::RecordCount,
                format!(
                    "recordCount says {} but the document has {} Plan elements: the file may be truncated, send it again",
                    self.header.record_count, self.row
                ),
            )
            .into());
        }
        Ok(())
    }
}

impl<R: BufRead> XmlRows<R> {
    /// A `<Plan ...>` written with an end tag may hold only white space and comments.
    fn skip_to_plan_end(&mut self) -> Result<(), SourceError> {
        loop {
            self.buf.clear();
            self.reader.get_mut().used = 0;
            let position = self.reader.buffer_position();
            match self
                .reader
                .read_event_into(&mut self.buf)
                .map_err(|e| map_error(e, position))?
            {
                Event::End(_) => return Ok(()),
                Event::Start(_) | Event::Empty(_) => {
                    return Err(xml_problem(format!(
                        "Plan {} contains an element: Plan elements hold everything in attributes",
                        self.row
                    )))
                }
                Event::Eof => return Err(xml_problem("the document ends inside a Plan element")),
                other => check_misc(&other).map_err(|_| {
                    xml_problem(format!(
                        "Plan {} contains text: Plan elements must be empty",
                        self.row
                    ))
                })?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(plans: &str, count: usize) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<Extract xmlns="urn:cpis-gateway:extract:1" laCode="919" extractedAt="2026-11-21T02:00:00Z" recordCount="{count}">
{plans}
</Extract>
"#
        )
    }

    const PLAN: &str = r#"<Plan nhsNumber="9990000018" type="CPP" start="2026-01-02" edtPhone="01632 960001" officePhone="01632 960002" localRef="A&amp;B"/>"#;

    fn read_all(input: &str) -> Result<Vec<[Option<String>; COLUMN_COUNT]>, SourceError> {
        let mut source = XmlRows::new(input.as_bytes())?;
        let mut out = Vec::new();
        while let Some(row) = source.next_row()? {
            out.push(row.fields.map(|f| f.map(str::to_owned)));
        }
        source.finish()?;
        Ok(out)
    }

    fn file_code(input: &str) -> Code {
        match read_all(input) {
            Err(SourceError::File(p)) => p.code,
            other => panic!("expected a file problem, got {other:?}"),
        }
    }

    #[test]
    fn reads_plans_with_root_la_code() {
        let rows = read_all(&doc(&format!("{PLAN}\n<Plan nhsNumber=\"9990020000\" type=\"LAC\" start=\"2025-06-30\" end=\"2026-11-01\" edtPhone=\"01632 960001\" officePhone=\"01632 960002\"></Plan>"), 2)).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][Column::LocalRef as usize].as_deref(), Some("A&B"));
        assert_eq!(rows[0][Column::LaCode as usize].as_deref(), Some("919"));
        assert_eq!(
            rows[1][Column::EndDate as usize].as_deref(),
            Some("2026-11-01")
        );
    }

    #[test]
    fn header_only_and_self_closing_root() {
        assert_eq!(read_all(&doc("", 0)).unwrap().len(), 0);
        let empty_root = r#"<Extract xmlns="urn:cpis-gateway:extract:1" laCode="919" extractedAt="2026-11-21T02:00:00Z" recordCount="0"/>"#;
        assert_eq!(read_all(empty_root).unwrap().len(), 0);
    }

    #[test]
    fn file_errors() {
        assert_eq!(file_code(""), Code::Empty);
        assert_eq!(file_code(&doc(PLAN, 2)), Code::RecordCount);
        let dtd = format!("<!DOCTYPE Extract [<!ENTITY x \"y\">]>{}", doc(PLAN, 1));
        assert_eq!(file_code(&dtd), Code::Xml);
        let truncated = &doc(PLAN, 1)[..200];
        assert_eq!(file_code(truncated), Code::Xml);
        assert_eq!(
            file_code(&doc(&PLAN.replace("localRef", "colour"), 1)),
            Code::Xml
        );
        assert_eq!(
            file_code(&doc(&PLAN.replace("A&amp;B", "&x;"), 1)),
            Code::Xml
        );
        assert_eq!(file_code(&doc("<Plan><Child/></Plan>", 1)), Code::Xml);
        assert_eq!(file_code(&doc("hello", 0)), Code::Xml);
        // Every Plan is looked up among the root's namespace declarations: a few only.
        let crowded = (0..40)
            .map(|i| format!(" xmlns:p{i}=\"urn:p\""))
            .collect::<String>();
        assert_eq!(
            file_code(&doc(PLAN, 1).replacen("<Extract ", &format!("<Extract{crowded} "), 1)),
            Code::Xml
        );
        assert_eq!(
            file_code(&doc(PLAN, 1).replace("xmlns=\"urn:cpis-gateway:extract:1\"", "")),
            Code::Xml
        );
        assert_eq!(
            file_code(&doc(PLAN, 1).replace("UTF-8", "ISO-8859-1")),
            Code::Encoding
        );
        let latin1 = doc(PLAN, 1)
            .replace("A&amp;B", "\u{e9}")
            .replace('\u{e9}', "\u{0}");
        let bytes = latin1.replace('\u{0}', "\u{fffd}");
        let mut raw = bytes.into_bytes();
        let at = raw
            .windows(3)
            .position(|w| w == "\u{fffd}".as_bytes())
            .unwrap();
        raw.splice(at..at + 3, [0xe9]);
        let result = XmlRows::new(&raw[..]).and_then(|mut s| s.next_row().map(|_| ()));
        assert!(matches!(result, Err(SourceError::File(p)) if p.code == Code::Encoding));
    }

    #[test]
    fn giant_items_are_refused_without_buffering_them() {
        let giant = format!("<Plan nhsNumber=\"{}\"/>", "9".repeat(MAX_ITEM_BYTES + 10));
        let result = read_all(&doc(&giant, 1)).map(|rows| rows.len());
        assert!(
            matches!(result, Err(SourceError::File(ref p)) if p.code == Code::Xml),
            "{result:?}"
        );
    }
}
