//! Streaming reader for CP-IS's own upload: the HL7 v3 `File` (REPC_MT000002GB01) that LA
//! case systems already send to CP-IS, read into the same rows as our CSV and XML
//! (interface section 5A, which has the element-by-element mapping and the choices made
//! where CP-IS's public sources are silent).
//!
//! The header (`creationTime`, `id`, `transmissionQuantity`, the sending organisation) is
//! read first. Then each `record` is read whole into a small tree, at most
//! [`MAX_RECORD_BYTES`] of document and [`MAX_RECORD_ELEMENTS`] elements (memory stays flat
//! in the file's size), and gives a row for each plan in it (`pertinentInformation`: one
//! to three). The bounds and refusals of our XML hold too: UTF-8 only, never a DTD, no item
//! over [`super::xml::MAX_ITEM_BYTES`]. Elements the mapping does not use (HL7's `templateId`, the
//! child's name and birth time) are read past and never kept.

use super::xml::{check_misc, map_error, xml_problem, Prolog};
use super::{
    Column, Dialect, FileProblem, RawRow, RowSource, SourceError, COLUMN_COUNT, MAX_ATTRIBUTES,
};
use crate::core::codes::Code;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};
use std::collections::VecDeque;
use std::io::BufRead;

/// The namespace of HL7 v3 messages.
pub const NAMESPACE: &str = "urn:hl7-org:v3";

/// NHS England's localisation namespace (`npfitlc:contentId`).
pub const LOCALISATION: &str = "NPFIT:HL7:Localisation";

/// The `id@root` of an NHS number.
pub const NHS_NUMBER_ROOT: &str = "2.16.840.1.113883.2.1.4.1";

/// The `id@root` of the LA's own identifier for the child (our `local_ref`).
pub const LOCAL_ID_ROOT: &str = "2.16.840.1.113883.2.1.3.2.4.18.24";

/// The most document one `record` may take, and the most elements in it. A record with
/// every element CP-IS defines, three plans and two subjects, is about 4 KiB and 60.
pub const MAX_RECORD_BYTES: u64 = 64 * 1024;
pub const MAX_RECORD_ELEMENTS: usize = 256;

/// The deepest element below a `record` (the deepest CP-IS defines is 7).
const MAX_DEPTH: usize = 16;

/// The most elements `File` may hold before its first record (CP-IS defines 4).
const MAX_HEADER_ELEMENTS: usize = 16;

/// Whether XML 1.0 allows every character of `text` (a character reference may name one
/// it does not, and the parser lets raw control characters through): what is returned to
/// the LA in CP-IS's acknowledgement must stay well-formed.
fn xml_chars(text: &str) -> bool {
    text.chars().all(|c| {
        matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
    })
}

/// Whether `name` is a name HL7's messages use: ASCII letters, digits, `.`, `-` and `_`,
/// not starting with a digit, `.` or `-`.
fn hl7_name(name: &[u8]) -> bool {
    name.first()
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
        && name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// What an upload's `File` says of itself, before its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadHeader {
    /// `id@extension`: the LA's file sequence number.
    pub sequence: u64,
    /// `transmissionQuantity@value`: how many records the file says it holds.
    pub record_count: u64,
    /// `communicationFunctionSnd/organisation`: its `id@extension`, its name, and its
    /// office-hours (`WP`) and emergency duty (`EC`) phones without their `tel:`.
    pub la_code: String,
    pub la_name: String,
    pub office_phone: Option<String>,
    pub edt_phone: Option<String>,
}

/// An element read whole: its local name, its attributes (by local name, unescaped), its
/// text, its child elements.
#[derive(Debug, Default)]
struct Element {
    name: String,
    /// In NHS England's localisation namespace (`npfitlc:contentId`) rather than HL7's.
    localisation: bool,
    attributes: Vec<(String, String)>,
    text: String,
    children: Vec<Element>,
}

impl Element {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
    }

    fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    fn children_named<'e>(&'e self, name: &'e str) -> impl Iterator<Item = &'e Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The `value` attribute of the `value` child (HL7's way of holding a date).
    fn value(&self) -> Option<&str> {
        self.child("value")?.attribute("value")
    }

    /// A template's content: the child that is not its `contentId` nor HL7's
    /// infrastructure (`realmCode`, `typeId`, `templateId`).
    fn content(&self) -> Option<&Element> {
        self.children.iter().find(|c| {
            !matches!(
                c.name.as_str(),
                "contentId" | "realmCode" | "typeId" | "templateId"
            )
        })
    }

    /// The `extension` of the `id` child whose `root` is `root`.
    fn id(&self, root: &str) -> Option<&str> {
        self.children_named("id")
            .find(|id| id.attribute("root") == Some(root))
            .and_then(|id| id.attribute("extension"))
    }
}

/// The plan a `pertinentInformation` holds, from its template's name
/// (`COCT_TP146101GB01.CPPInformation`), and whose NHS number it is recorded under. Any
/// other element is no plan: it is passed on in angle brackets, which no plan type has,
/// so that even `<CPP>` is refused (`PLAN_TYPE`) and shown as it was written.
fn plan_of(template: &str) -> (String, Whose) {
    match template.rsplit_once('.').map_or("", |(_, name)| name) {
        "CPPInformation" => ("CPP".into(), Whose::Child),
        "LACInformation" => ("LAC".into(), Whose::Child),
        // As in our extracts, an unborn child's plan is recorded under the mother's number.
        "UCPInformation" => ("UCPP".into(), Whose::Mother),
        _ => (format!("<{template}>"), Whose::Child),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Whose {
    Child,
    Mother,
}

/// An HL7 date (`TS.NHS.DateType1`: `YYYYMMDDHHMM`, or a bare `YYYYMMDD`) that is a real
/// day and time, as our `YYYY-MM-DD`; anything else as it was written, for the validator to
/// refuse in the LA's own terms.
fn date_of(value: &str) -> String {
    // Digits only, so that every slice below falls between characters.
    let digits = value.bytes().all(|b| b.is_ascii_digit());
    let time_ok = digits
        && match value.len() {
            12 => value[8..10] < *"24" && value[10..] < *"60",
            8 => true,
            _ => false,
        };
    let iso = format!(
        "{}-{}-{}",
        value.get(..4).unwrap_or(""),
        value.get(4..6).unwrap_or(""),
        value.get(6..8).unwrap_or("")
    );
    if time_ok && crate::core::date::parse_iso_date(&iso).is_some() {
        iso
    } else {
        value.to_owned()
    }
}

/// A row's fields, owned, until the validator has it.
type Fields = [Option<String>; COLUMN_COUNT];

/// Reads the plans of a CP-IS upload one at a time.
pub struct CpisRows<R: BufRead> {
    prolog: Prolog<R>,
    header: UploadHeader,
    /// The start tag of the next `record`, read while looking for the end of the header.
    next: Option<(BytesStart<'static>, bool)>,
    /// Rows of the record read last that are still to be handed out.
    pending: VecDeque<Fields>,
    current: Fields,
    row: u64,
    records: u64,
    deleted: u64,
    finished: bool,
}

impl<R: BufRead> CpisRows<R> {
    /// Goes on from a document read up to its root, which must be `File` in HL7's
    /// namespace, and reads the header up to the first record.
    pub fn from_prolog(prolog: Prolog<R>) -> Result<CpisRows<R>, SourceError> {
        if !prolog.root_is("File", NAMESPACE) {
            return Err(xml_problem(format!(
                "the root element must be File in namespace {NAMESPACE}"
            )));
        }
        element_of(&prolog.root, false)?;
        let mut rows = CpisRows {
            finished: prolog.empty,
            prolog,
            header: UploadHeader {
                sequence: 0,
                record_count: 0,
                la_code: String::new(),
                la_name: String::new(),
                office_phone: None,
                edt_phone: None,
            },
            next: None,
            pending: VecDeque::new(),
            current: Default::default(),
            row: 0,
            records: 0,
            deleted: 0,
        };
        let mut parts: Vec<Element> = Vec::new();
        while !rows.finished {
            match rows.next_child()? {
                Some((start, empty)) if start.local_name().as_ref() == b"record" => {
                    rows.next = Some((start, empty));
                    break;
                }
                Some(_) if parts.len() == MAX_HEADER_ELEMENTS => {
                    return Err(xml_problem(format!(
                        "File holds more than {MAX_HEADER_ELEMENTS} elements before its first record: a CP-IS upload's header has 4"
                    )))
                }
                Some((start, empty)) => parts.push(rows.read_element(&start, empty)?),
                None => rows.finished = true,
            }
        }
        rows.header = read_header(&parts)?;
        Ok(rows)
    }

    /// The header, as read.
    pub fn header(&self) -> &UploadHeader {
        &self.header
    }

    /// Plans skipped because they carry a delete date (they count as absent).
    pub fn deleted(&self) -> u64 {
        self.deleted
    }

    /// The `record` elements read so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Whether every record was read (`</File>` reached).
    pub fn at_end(&self) -> bool {
        self.finished && self.next.is_none()
    }

    /// The next element directly inside `File` (its start tag, and whether it was
    /// `<x/>`), or `None` at `</File>`, after which only the epilogue may follow.
    fn next_child(&mut self) -> Result<Option<(BytesStart<'static>, bool)>, SourceError> {
        let p = &mut self.prolog;
        loop {
            p.buf.clear();
            p.reader.get_mut().reset();
            let position = p.reader.buffer_position();
            let (ns, event) = p
                .reader
                .read_resolved_event_into(&mut p.buf)
                .map_err(|e| map_error(e, position))?;
            match event {
                Event::Start(ref e) | Event::Empty(ref e) => {
                    if check_namespace(&ns, e)? {
                        return Err(xml_problem(format!(
                            "<{}> directly inside File: File holds HL7's elements only",
                            String::from_utf8_lossy(e.name().as_ref())
                        )));
                    }
                    let empty = matches!(event, Event::Empty(_));
                    return Ok(Some((e.clone().into_owned(), empty)));
                }
                Event::End(_) => {
                    super::xml::read_epilogue(&mut p.reader, &mut p.buf)?;
                    return Ok(None);
                }
                Event::Eof => {
                    return Err(xml_problem(format!(
                        "the document ends after {} records without </File>: the file is cut off, send it again",
                        self.records
                    )))
                }
                other => check_between(&other)?,
            }
        }
    }

    /// Reads the element that `start` opened, whole, within a record's bounds.
    fn read_element(
        &mut self,
        start: &BytesStart<'_>,
        empty: bool,
    ) -> Result<Element, SourceError> {
        let what = |records: u64| match start.local_name().as_ref() {
            b"record" => format!("record {}", records + 1),
            other => format!("<{}>", String::from_utf8_lossy(other)),
        };
        // Whatever was under `File` was checked to be HL7's (`next_child`).
        let mut stack = vec![element_of(start, false)?];
        if empty {
            return Ok(stack.pop().expect("the element read"));
        }
        let p = &mut self.prolog;
        let began = p.reader.buffer_position();
        let mut elements = 1;
        loop {
            p.buf.clear();
            p.reader.get_mut().reset();
            let position = p.reader.buffer_position();
            if position - began > MAX_RECORD_BYTES || elements > MAX_RECORD_ELEMENTS {
                return Err(xml_problem(format!(
                    "{} is larger than {MAX_RECORD_BYTES} bytes or {MAX_RECORD_ELEMENTS} elements: no CP-IS record comes near that",
                    what(self.records)
                )));
            }
            let (ns, event) = p
                .reader
                .read_resolved_event_into(&mut p.buf)
                .map_err(|e| map_error(e, position))?;
            let top = stack.last_mut().expect("the element read is on the stack");
            match event {
                Event::Start(ref e) => {
                    let localisation = check_namespace(&ns, e)?;
                    if stack.len() >= MAX_DEPTH {
                        return Err(xml_problem(format!(
                            "{} nests elements more than {MAX_DEPTH} deep",
                            what(self.records)
                        )));
                    }
                    elements += 1;
                    stack.push(element_of(e, localisation)?);
                }
                Event::Empty(ref e) => {
                    let localisation = check_namespace(&ns, e)?;
                    elements += 1;
                    top.children.push(element_of(e, localisation)?);
                }
                Event::End(_) => {
                    let done = stack.pop().expect("an end closes what the stack holds");
                    if !done.children.is_empty() && !done.text.trim().is_empty() {
                        return Err(xml_problem(format!(
                            "{}: <{}> holds both text and elements: CP-IS's upload gives text only in elements of their own (a name's given and family, an organisation's name), and none of it may be lost",
                            what(self.records),
                            done.name
                        )));
                    }
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(done),
                        None => return Ok(done),
                    }
                }
                Event::Text(t) => {
                    let text = t
                        .xml10_content()
                        .map_err(|e| encoding_problem(&what(self.records), e))?;
                    push_text(&mut top.text, &text, &what(self.records))?;
                }
                Event::CData(t) => {
                    let text = t
                        .decode()
                        .map_err(|e| encoding_problem(&what(self.records), e))?;
                    push_text(&mut top.text, &text, &what(self.records))?;
                }
                Event::GeneralRef(r) => {
                    let name = r
                        .decode()
                        .map_err(|e| encoding_problem(&what(self.records), e))?;
                    let resolved = match r.resolve_char_ref() {
                        Ok(Some(c)) => Some(c.to_string()),
                        Ok(None) => {
                            quick_xml::escape::resolve_predefined_entity(&name).map(str::to_owned)
                        }
                        Err(_) => None,
                    };
                    let Some(text) = resolved else {
                        return Err(xml_problem(format!(
                            "{}: &{name}; is not a character reference nor one of &lt; &gt; &amp; &apos; &quot;",
                            what(self.records)
                        )));
                    };
                    push_text(&mut top.text, &text, &what(self.records))?;
                }
                Event::Comment(_) | Event::PI(_) => {}
                Event::Eof => {
                    return Err(xml_problem(format!(
                        "the document ends inside {}: the file is cut off, send it again",
                        what(self.records)
                    )))
                }
                Event::Decl(_) | Event::DocType(_) => {
                    return Err(xml_problem(format!(
                        "{} holds an XML declaration or a <!DOCTYPE>: DTDs are never accepted",
                        what(self.records)
                    )))
                }
            }
        }
    }

    /// The next `record`, read whole; `None` at the end of the file.
    fn next_record_element(&mut self) -> Result<Option<Element>, SourceError> {
        let (start, empty) = match self.next.take() {
            Some(next) => next,
            None => match self.next_child()? {
                Some(next) => next,
                None => {
                    self.finished = true;
                    return Ok(None);
                }
            },
        };
        if start.local_name().as_ref() != b"record" {
            return Err(xml_problem(format!(
                "<{}> after record {}: after the header, File holds only record elements",
                String::from_utf8_lossy(start.local_name().as_ref()),
                self.records
            )));
        }
        let record = self.read_element(&start, empty)?;
        if record.children_named("CP-ISRecord").count() > 1 {
            return Err(xml_problem(format!(
                "record {} holds more than one CP-ISRecord: send one record for each",
                self.records + 1
            )));
        }
        self.records += 1;
        Ok(Some(record))
    }

    /// Reads the next record into `pending`; `false` at the end of the file.
    fn read_record(&mut self) -> Result<bool, SourceError> {
        let Some(record) = self.next_record_element()? else {
            return Ok(false);
        };
        self.deleted += plans(&record, &self.header, &mut self.pending);
        Ok(true)
    }

    /// The next record whole, with how many rows it gives: what CP-IS's acknowledgement
    /// says of each record (its rows are the next `rows` after the previous record's).
    /// `None` at the end of the file; use this or [`RowSource::next_row`], not both.
    pub fn next_record(&mut self) -> Result<Option<UploadRecord>, SourceError> {
        let Some(element) = self.next_record_element()? else {
            return Ok(None);
        };
        let mut rows = VecDeque::new();
        self.deleted += plans(&element, &self.header, &mut rows);
        let nhs = rows
            .front()
            .and_then(|r| r[Column::NhsNumber as usize].clone())
            .or_else(|| {
                // A record whose plans were all deleted still names its person.
                let person = element.child("CP-ISRecord")?;
                person
                    .children_named("subject")
                    .filter_map(Element::content)
                    .find_map(|c| {
                        c.id(NHS_NUMBER_ROOT).or_else(|| {
                            c.child("parentMotherPerson")?
                                .child("playedMother")?
                                .id(NHS_NUMBER_ROOT)
                        })
                    })
                    .map(|n| n.trim().to_owned())
            });
        Ok(Some(UploadRecord {
            element,
            rows: rows.len() as u64,
            nhs,
        }))
    }
}

/// A record of an upload, read whole (see [`CpisRows::next_record`]).
#[derive(Debug)]
pub struct UploadRecord {
    element: Element,
    /// The rows it gives (its plans but the deleted ones; one for a record with no plan).
    pub rows: u64,
    /// The NHS number its first row has, as sent (or its person's, when every plan was
    /// deleted); `None` if it has none.
    pub nhs: Option<String>,
}

impl UploadRecord {
    /// Its plans (`pertinentInformation`) and people (`subject`) as XML, as they were
    /// sent (HL7's infrastructure elements and comments aside), for CP-IS's
    /// acknowledgement to return it. `npfitlc` must be bound where this is written.
    pub fn echo(&self, out: &mut String) {
        if let Some(record) = self.element.child("CP-ISRecord") {
            for name in ["pertinentInformation", "subject"] {
                for part in record.children_named(name) {
                    write_element(part, out);
                }
            }
        }
    }
}

/// Writes `e` and everything in it (an element with children keeps no text of its own:
/// what stood between them was white space).
fn write_element(e: &Element, out: &mut String) {
    let name = if e.localisation {
        format!("npfitlc:{}", e.name)
    } else {
        e.name.clone()
    };
    out.push('<');
    out.push_str(&name);
    for (key, value) in &e.attributes {
        out.push(' ');
        out.push_str(key);
        out.push_str("=\"");
        out.push_str(&quick_xml::escape::escape(value.as_str()));
        out.push('"');
    }
    if e.children.is_empty() && e.text.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    if e.children.is_empty() {
        out.push_str(&quick_xml::escape::escape(e.text.as_str()));
    }
    for child in &e.children {
        write_element(child, out);
    }
    out.push_str("</");
    out.push_str(&name);
    out.push('>');
}

/// The rows of one `record` (one per plan, deleted plans left out), pushed onto `out`;
/// how many plans were left out. A record with no plan at all still gives a row, with no
/// plan type, so that the validator rejects it where the LA will see it.
fn plans(record: &Element, header: &UploadHeader, out: &mut VecDeque<Fields>) -> u64 {
    let empty = Element::default();
    let record = record.child("CP-ISRecord").unwrap_or(&empty);
    let subject = |suffix: &str| {
        record
            .children_named("subject")
            .filter_map(Element::content)
            .find(|c| c.name.ends_with(suffix))
    };
    let child = subject(".Child");
    let mother = subject(".UnbornChild")
        .and_then(|u| u.child("parentMotherPerson"))
        .and_then(|p| p.child("playedMother"));
    let row = |plan_type: Option<&str>, whose: Whose, start, end| {
        let person = match whose {
            Whose::Child => child,
            Whose::Mother => mother,
        };
        let mut fields: Fields = Default::default();
        let mut set = |column: Column, value: Option<String>| fields[column as usize] = value;
        set(
            Column::NhsNumber,
            person
                .and_then(|p| p.id(NHS_NUMBER_ROOT))
                .map(str::to_owned),
        );
        set(Column::PlanType, plan_type.map(str::to_owned));
        set(Column::StartDate, start);
        // CP-IS requires an end date on every unborn child's plan: the date it is expected
        // to end, at the birth. It is the expected delivery date; such a plan ends when the
        // LA stops sending it or sends its delete date (interface 5A.4).
        match whose {
            Whose::Child => set(Column::EndDate, end),
            Whose::Mother => set(Column::ExpectedDeliveryDate, end),
        }
        set(Column::LaCode, Some(header.la_code.clone()));
        set(Column::LaName, Some(header.la_name.clone()));
        set(Column::EdtPhone, header.edt_phone.clone());
        set(Column::OfficePhone, header.office_phone.clone());
        set(
            Column::LocalRef,
            person.and_then(|p| p.id(LOCAL_ID_ROOT)).map(str::to_owned),
        );
        for field in fields.iter_mut().flatten() {
            *field = field.trim().to_owned();
        }
        fields
    };
    let mut deleted = 0;
    let mut any = false;
    for information in record.children_named("pertinentInformation") {
        any = true;
        let Some(template) = information.content() else {
            out.push_back(row(None, Whose::Child, None, None));
            continue;
        };
        let (plan_type, whose) = plan_of(&template.name);
        let (mut start, mut end, mut delete) = (None, None, None);
        for part in template.children.iter().filter_map(Element::content) {
            let value = part.value().map(date_of);
            if part.name.ends_with("StartDate") {
                start = value;
            } else if part.name.ends_with("EndDate") {
                end = value;
            } else if part.name.ends_with("DeleteDate") {
                delete = value;
            }
        }
        if delete.is_some_and(|d| !d.is_empty()) {
            deleted += 1;
            continue;
        }
        out.push_back(row(Some(&plan_type), whose, start, end));
    }
    if !any {
        out.push_back(row(None, Whose::Child, None, None));
    }
    deleted
}

/// The header, from the elements before the first record.
fn read_header(parts: &[Element]) -> Result<UploadHeader, SourceError> {
    let part = |name: &str| parts.iter().find(|p| p.name == name);
    let missing = |what: &str| {
        xml_problem(format!(
            "File has no {what}: a CP-IS upload starts with creationTime, id, transmissionQuantity and communicationFunctionSnd"
        ))
    };
    part("creationTime")
        .and_then(|c| c.attribute("value"))
        .filter(|v| !v.is_empty())
        .ok_or_else(|| missing("creationTime value"))?;
    let number = |name: &str, attribute: &str, what: &str| {
        let text = part(name)
            .and_then(|p| p.attribute(attribute))
            .ok_or_else(|| missing(&format!("{name} {attribute}")))?;
        // Digits only (no sign), at most i64::MAX, which both stores hold.
        Some(text)
            .filter(|t| t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse::<u64>().ok())
            .filter(|&n| i64::try_from(n).is_ok())
            .ok_or_else(|| {
                xml_problem(format!(
                    "File {name} {attribute} {} is not a whole number (0 to {}): it is {what}",
                    super::shown(text),
                    i64::MAX
                ))
            })
    };
    let sequence = number("id", "extension", "the file's sequence number")?;
    let record_count = number(
        "transmissionQuantity",
        "value",
        "the number of records in the file",
    )?;
    let organisation = part("communicationFunctionSnd")
        .and_then(|c| c.child("organisation"))
        .ok_or_else(|| missing("communicationFunctionSnd organisation"))?;
    let la_code = organisation
        .child("id")
        .and_then(|id| id.attribute("extension"))
        .ok_or_else(|| missing("sending organisation id"))?
        .to_owned();
    let phone = |use_: &str| {
        organisation
            .children_named("telecom")
            .find(|t| {
                t.attribute("use")
                    .is_some_and(|u| u.split_ascii_whitespace().any(|c| c == use_))
            })
            .and_then(|t| t.attribute("value"))
            .map(|v| {
                let v = v.trim();
                v.get(..4)
                    .filter(|scheme| scheme.eq_ignore_ascii_case("tel:"))
                    .map_or(v, |_| &v[4..])
                    .to_owned()
            })
    };
    Ok(UploadHeader {
        sequence,
        record_count,
        la_code,
        la_name: organisation
            .child("name")
            .map(|n| n.text.trim().to_owned())
            .unwrap_or_default(),
        office_phone: phone("WP"),
        edt_phone: phone("EC"),
    })
}

/// An element's local name and unprefixed attributes (namespace declarations, and
/// attributes of other vocabularies such as `xml:lang`, left out: HL7's own have no
/// prefix). Refuses names HL7 does not use, more than [`MAX_ATTRIBUTES`] attributes and
/// characters XML does not allow.
fn element_of(start: &BytesStart<'_>, localisation: bool) -> Result<Element, SourceError> {
    let shown = String::from_utf8_lossy(start.name().as_ref()).into_owned();
    let local = start.local_name();
    if !hl7_name(local.as_ref()) || start.name().prefix().is_some_and(|p| !hl7_name(p.as_ref())) {
        return Err(xml_problem(format!(
            "element {} has a name no HL7 message uses",
            super::shown(&shown)
        )));
    }
    let name = String::from_utf8_lossy(local.as_ref()).into_owned();
    if start.attributes().with_checks(false).count() > MAX_ATTRIBUTES {
        return Err(xml_problem(format!(
            "<{name}> has more than {MAX_ATTRIBUTES} attributes: no CP-IS element comes near that"
        )));
    }
    let mut attributes = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|err| xml_problem(format!("<{name}>: {err}")))?;
        let key = attr.key;
        if !hl7_name(key.local_name().as_ref())
            || key.prefix().is_some_and(|p| !hl7_name(p.as_ref()))
        {
            return Err(xml_problem(format!(
                "<{name}> has an attribute whose name no HL7 message uses: {}",
                super::shown(&String::from_utf8_lossy(key.as_ref()))
            )));
        }
        let value = attr.unescape_value().map_err(|err| match err {
            quick_xml::Error::Encoding(_) => encoding_problem(&format!("<{name}>"), err),
            err => xml_problem(format!(
                "<{name}>: {err}: only &lt; &gt; &amp; &apos; &quot; and character references may be used"
            )),
        })?;
        if !xml_chars(&value) {
            return Err(xml_problem(format!(
                "<{name}>: an attribute holds a character XML does not allow: remove it"
            )));
        }
        if key.prefix().is_some() || key.as_ref() == b"xmlns" {
            continue;
        }
        attributes.push((
            String::from_utf8_lossy(key.as_ref()).into_owned(),
            value.into_owned(),
        ));
    }
    Ok(Element {
        name,
        localisation,
        attributes,
        ..Element::default()
    })
}

/// Elements of an upload are HL7's, or NHS England's `contentId`: whether it is the latter.
fn check_namespace(ns: &ResolveResult<'_>, e: &BytesStart<'_>) -> Result<bool, SourceError> {
    match ns {
        ResolveResult::Bound(Namespace(n)) if *n == NAMESPACE.as_bytes() => Ok(false),
        ResolveResult::Bound(Namespace(n)) if *n == LOCALISATION.as_bytes() => Ok(true),
        _ => Err(xml_problem(format!(
            "element <{}> is not in namespace {NAMESPACE}: a CP-IS upload holds only HL7 v3 elements",
            String::from_utf8_lossy(e.name().as_ref())
        ))),
    }
}

/// Between `File`'s children: white space, comments and processing instructions only.
fn check_between(event: &Event<'_>) -> Result<(), SourceError> {
    match event {
        Event::Text(t) if t.iter().all(u8::is_ascii_whitespace) => Ok(()),
        Event::Text(_) | Event::CData(_) | Event::GeneralRef(_) => Err(xml_problem(
            "text directly inside File: it holds only elements",
        )),
        other => check_misc(other),
    }
}

/// Appends `text` to an element's, refusing characters XML does not allow.
fn push_text(to: &mut String, text: &str, what: &str) -> Result<(), SourceError> {
    if !xml_chars(text) {
        return Err(xml_problem(format!(
            "{what} holds a character XML does not allow: remove it"
        )));
    }
    to.push_str(text);
    Ok(())
}

fn encoding_problem(what: &str, e: impl std::fmt::Display) -> SourceError {
    SourceError::File(FileProblem::new(
        Code::Encoding,
        format!("{what}: the text is not UTF-8 ({e}): save the file as UTF-8"),
    ))
}

impl<R: BufRead> RowSource for CpisRows<R> {
    fn next_row(&mut self) -> Result<Option<RawRow<'_>>, SourceError> {
        while self.pending.is_empty() {
            if self.finished || !self.read_record()? {
                return Ok(None);
            }
        }
        self.current = self.pending.pop_front().expect("a pending row");
        self.row += 1;
        let mut fields: [Option<&str>; COLUMN_COUNT] = [None; COLUMN_COUNT];
        for (field, value) in fields.iter_mut().zip(&self.current) {
            *field = value.as_deref();
        }
        Ok(Some(RawRow {
            number: self.row,
            line: None,
            fields,
        }))
    }

    fn dialect(&self) -> Dialect {
        Dialect::Cpis
    }

    fn finish(&mut self) -> Result<(), SourceError> {
        if self.records != self.header.record_count {
            return Err(FileProblem::new(
                Code::RecordCount,
                format!(
                    "transmissionQuantity says {} but the document has {} record elements: the file may be truncated, send it again",
                    self.header.record_count, self.records
                ),
            )
            .into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record of one plan for a child (CPP, LAC) or an unborn child (UCP).
    fn record(template: &str, nhs: &str, dates: &str) -> String {
        let subject = if template.contains("UCP") {
            format!(
                r#"<npfitlc:contentId root="2.16.840.1.113883.2.1.3.2.4.18.16" extension="COCT_TP145100GB01#UnbornChild"/>
   <COCT_TP145100GB01.UnbornChild><parentMotherPerson><birthTime value="19990101"/><name><given>M</given><family>X</family></name>
    <playedMother><id root="{NHS_NUMBER_ROOT}" extension="{nhs}"/><id root="{LOCAL_ID_ROOT}" extension="U-1" assigningAuthorityName="919:Herts"/></playedMother></parentMotherPerson></COCT_TP145100GB01.UnbornChild>"#
            )
        } else {
            format!(
                r#"<npfitlc:contentId root="2.16.840.1.113883.2.1.3.2.4.18.16" extension="COCT_TP145101GB01#Child"/>
   <COCT_TP145101GB01.Child><id root="{NHS_NUMBER_ROOT}" extension="{nhs}"/><id root="{LOCAL_ID_ROOT}" extension="C&amp;1"/>
    <childPerson><birthTime value="20140529"/><name><given>A</given><family>B</family></name></childPerson></COCT_TP145101GB01.Child>"#
            )
        };
        format!(
            r#" <record><CP-ISRecord>
  <pertinentInformation><npfitlc:contentId root="2.16.840.1.113883.2.1.3.2.4.18.16" extension="{template}"/>
   <{template}>{dates}</{template}></pertinentInformation>
  <subject>{subject}</subject>
 </CP-ISRecord></record>
"#
        )
    }

    fn dates(kind: &str, start: &str, end: Option<&str>, delete: Option<&str>) -> String {
        let mut out = format!(
            "<component><{kind}StartDate><value value=\"{start}\"/></{kind}StartDate></component>"
        );
        if let Some(end) = end {
            out += &format!(
                "<component1><{kind}EndDate><value value=\"{end}\"/></{kind}EndDate></component1>"
            );
        }
        if let Some(delete) = delete {
            out += &format!("<component2><{kind}DeleteDate><value value=\"{delete}\"/></{kind}DeleteDate></component2>");
        }
        out
    }

    fn upload(records: &[String], count: usize) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<File xmlns="urn:hl7-org:v3" xmlns:npfitlc="NPFIT:HL7:Localisation">
 <creationTime value="20261121020000"/>
 <id extension="42"/>
 <transmissionQuantity value="{count}"/>
 <communicationFunctionSnd><organisation><id root="2.16.840.1.113883.2.1.3.2.4.19.1" extension="919"/>
  <name>Hertfordshire</name><telecom value="tel:01632960002" use="WP"/><telecom value="tel:01632 960001" use="EC"/></organisation></communicationFunctionSnd>
{}</File>
"#,
            records.concat()
        )
    }

    fn cpp(nhs: &str) -> String {
        record(
            "COCT_TP146101GB01.CPPInformation",
            nhs,
            &dates("cPP", "202401020000", None, None),
        )
    }

    fn read_all(input: &str) -> Result<(UploadHeader, Vec<Fields>, u64), SourceError> {
        let mut source = CpisRows::from_prolog(Prolog::read(input.as_bytes())?)?;
        let mut out = Vec::new();
        while let Some(row) = source.next_row()? {
            out.push(row.fields.map(|f| f.map(str::to_owned)));
        }
        source.finish()?;
        Ok((source.header().clone(), out, source.deleted()))
    }

    fn file_code(input: &str) -> Code {
        match read_all(input) {
            Err(SourceError::File(p)) => p.code,
            other => panic!("expected a file problem, got {other:?}"),
        }
    }

    fn get(row: &Fields, column: Column) -> Option<&str> {
        row[column as usize].as_deref()
    }

    #[test]
    fn reads_the_header_and_a_row_for_each_plan() {
        let lac = record(
            "COCT_TP146100GB01.LACInformation",
            "9990020000",
            &dates("lAC", "202506300000", Some("202611010000"), None),
        );
        let ucp = record(
            "COCT_TP146102GB01.UCPInformation",
            "9990000026",
            &dates("uCP", "202609010000", Some("202701150000"), None),
        );
        let (header, rows, deleted) = read_all(&upload(&[cpp("9990000018"), lac, ucp], 3)).unwrap();
        assert_eq!(
            header,
            UploadHeader {
                sequence: 42,
                record_count: 3,
                la_code: "919".into(),
                la_name: "Hertfordshire".into(),
                office_phone: Some("01632960002".into()),
                edt_phone: Some("01632 960001".into()),
            }
        );
        assert_eq!(deleted, 0);
        let want = |row: &Fields, nhs, plan, start, end, edd, local| {
            assert_eq!(get(row, Column::NhsNumber), Some(nhs));
            assert_eq!(get(row, Column::PlanType), Some(plan));
            assert_eq!(get(row, Column::StartDate), Some(start));
            assert_eq!(get(row, Column::EndDate), end);
            assert_eq!(get(row, Column::ExpectedDeliveryDate), edd);
            assert_eq!(get(row, Column::LocalRef), Some(local));
            assert_eq!(get(row, Column::LaCode), Some("919"));
            assert_eq!(get(row, Column::EdtPhone), Some("01632 960001"));
            assert_eq!(get(row, Column::OfficePhone), Some("01632960002"));
        };
        want(
            &rows[0],
            "9990000018",
            "CPP",
            "2024-01-02",
            None,
            None,
            "C&1",
        );
        want(
            &rows[1],
            "9990020000",
            "LAC",
            "2025-06-30",
            Some("2026-11-01"),
            None,
            "C&1",
        );
        // An unborn child's plan: the mother's number, its end date the expected delivery.
        want(
            &rows[2],
            "9990000026",
            "UCPP",
            "2026-09-01",
            None,
            Some("2027-01-15"),
            "U-1",
        );
        assert_eq!(rows.len(), 3);
    }

    #[test]
    fn a_record_with_several_plans_gives_a_row_for_each() {
        let two = cpp("9990000018").replace(
            "</pertinentInformation>",
            &format!(
                "</pertinentInformation><pertinentInformation><npfitlc:contentId root=\"2.16.840.1.113883.2.1.3.2.4.18.16\" extension=\"COCT_TP146100GB01#LACInformation\"/><COCT_TP146100GB01.LACInformation>{}</COCT_TP146100GB01.LACInformation></pertinentInformation>",
                dates("lAC", "202501010000", None, None)
            ),
        );
        let (_, rows, _) = read_all(&upload(&[two], 1)).unwrap();
        let plans: Vec<_> = rows
            .iter()
            .map(|r| (get(r, Column::NhsNumber), get(r, Column::PlanType)))
            .collect();
        assert_eq!(
            plans,
            [
                (Some("9990000018"), Some("CPP")),
                (Some("9990000018"), Some("LAC"))
            ]
        );
    }

    #[test]
    fn a_deleted_plan_is_left_out_and_counted() {
        let gone = record(
            "COCT_TP146101GB01.CPPInformation",
            "9990020000",
            &dates("cPP", "202401020000", None, Some("202611200000")),
        );
        let (_, rows, deleted) = read_all(&upload(&[cpp("9990000018"), gone], 2)).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(deleted, 1);
    }

    #[test]
    fn what_the_validator_must_refuse_is_passed_on_as_written() {
        let odd = record(
            "COCT_TP146199GB01.CINInformation",
            "12345",
            &dates("cIN", "21/11/2026", None, None),
        );
        let no_plan = cpp("9990000018").replace(
            &cpp("9990000018")[cpp("9990000018").find("<pertinentInformation>").unwrap()
                ..cpp("9990000018").find("<subject>").unwrap()],
            "",
        );
        let (_, rows, _) = read_all(&upload(&[odd, no_plan], 2)).unwrap();
        assert_eq!(
            get(&rows[0], Column::PlanType),
            Some("<COCT_TP146199GB01.CINInformation>")
        );
        assert_eq!(get(&rows[0], Column::NhsNumber), Some("12345"));
        assert_eq!(get(&rows[0], Column::StartDate), Some("21/11/2026"));
        // A record without a plan still gives a row, for the validator to reject.
        assert_eq!(get(&rows[1], Column::PlanType), None);
        assert_eq!(get(&rows[1], Column::NhsNumber), Some("9990000018"));
        assert_eq!(rows.len(), 2);
    }

    #[test]
    fn only_cp_iss_templates_are_plans_whatever_an_element_is_called() {
        let bare = cpp("9990000018")
            .replace("COCT_TP146101GB01.CPPInformation>", "cpp>")
            .replace("cPPStartDate", "startDate");
        let (_, rows, _) = read_all(&upload(&[bare], 1)).unwrap();
        assert_eq!(get(&rows[0], Column::PlanType), Some("<cpp>"));
    }

    #[test]
    fn dates_are_hl7s_twelve_digits_or_eight() {
        assert_eq!(date_of("202611210000"), "2026-11-21");
        assert_eq!(date_of("202611212359"), "2026-11-21");
        assert_eq!(date_of("20261121"), "2026-11-21");
        // Left as written, for the validator to refuse with DATE_FORMAT.
        for bad in [
            "202611212460",
            "2026112100",
            "2026-11-21",
            "202613210000",
            "20261321x000",
            "",
            // Twelve bytes: a character across a slice must not panic.
            "2026112é000",
            "202611210é0",
        ] {
            assert_eq!(date_of(bad), bad);
        }
    }

    #[test]
    fn file_errors() {
        assert_eq!(
            file_code(&upload(&[cpp("9990000018")], 2)),
            Code::RecordCount
        );
        assert_eq!(
            file_code(
                &upload(&[cpp("9990000018")], 1).replace("extension=\"42\"", "extension=\"x\"")
            ),
            Code::Xml
        );
        assert_eq!(
            file_code(&upload(&[], 0).replace(" <id extension=\"42\"/>\n", "")),
            Code::Xml
        );
        // Digits only: no sign.
        assert_eq!(
            file_code(&upload(&[], 0).replace("extension=\"42\"", "extension=\"+42\"")),
            Code::Xml
        );
        let doc = upload(&[cpp("9990000018")], 1);
        let cut = &doc[..doc.len() - 40];
        assert_eq!(file_code(cut), Code::Xml);
        assert_eq!(
            file_code(&doc.replace("<subject>", "<subject><x:y xmlns:x=\"urn:other\"/>")),
            Code::Xml
        );
        assert_eq!(file_code(&doc.replace("C&amp;1", "&lol;")), Code::Xml);
        assert_eq!(
            file_code(&doc.replace("</File>", "<creationTime value=\"1\"/></File>")),
            Code::Xml
        );
        // Text beside elements would be lost: refused, in the header and in a record.
        assert_eq!(
            file_code(&doc.replace(
                "<name>Hertfordshire</name>",
                "<name>Hert<b>ford</b>shire</name>"
            )),
            Code::Xml
        );
        assert_eq!(
            file_code(&doc.replace("<given>A</given>", "<given>A<b>n</b>n</given>")),
            Code::Xml
        );
        let dtd = doc.replace("<File ", "<!DOCTYPE File [<!ENTITY x \"y\">]><File ");
        assert!(matches!(
            Prolog::read(dtd.as_bytes()).err(),
            Some(SourceError::File(p)) if p.code == Code::Xml
        ));
    }

    #[test]
    fn what_follows_the_root_and_bytes_not_utf8_are_named_for_what_they_are() {
        let after = upload(&[cpp("9990000018")], 1).replace("</File>\n", "</File>\n<File/>\n");
        match read_all(&after) {
            Err(SourceError::File(p)) => {
                assert_eq!(p.code, Code::Xml);
                assert!(!p.message.contains("Plan"), "{}", p.message);
                assert!(
                    p.message.contains("after the root element"),
                    "{}",
                    p.message
                );
            }
            other => panic!("{other:?}"),
        }
        // A Latin-1 byte in an attribute value is the encoding's fault (interface 5).
        let mut latin1 = upload(&[cpp("9990000018")], 1)
            .replace("extension=\"C&amp;1\"", "extension=\"C#1\"")
            .into_bytes();
        let at = latin1.windows(3).position(|w| w == b"C#1").unwrap();
        latin1[at + 1] = 0xe9;
        let result = CpisRows::from_prolog(Prolog::read(&latin1[..]).unwrap()).and_then(|mut s| {
            while s.next_row()?.is_some() {}
            Ok(())
        });
        assert!(
            matches!(&result, Err(SourceError::File(p)) if p.code == Code::Encoding),
            "{result:?}"
        );
    }

    #[test]
    fn no_record_can_make_the_reader_hold_more_than_its_bounds() {
        let deep = format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        let wide = "<a/>".repeat(MAX_RECORD_ELEMENTS + 1);
        let long = format!("<a>{}</a>", "x".repeat(MAX_RECORD_BYTES as usize));
        for inside in [deep, wide, long] {
            let doc =
                upload(&[cpp("9990000018")], 1).replace("<subject>", &format!("<subject>{inside}"));
            assert_eq!(file_code(&doc), Code::Xml);
        }
    }

    #[test]
    fn an_empty_upload_is_an_empty_list() {
        let (header, rows, _) = read_all(&upload(&[], 0)).unwrap();
        assert_eq!(header.record_count, 0);
        assert!(rows.is_empty());
    }
}
