//! Synthetic extracts for tests, benchmarks and data officers (`gen`).
//!
//! Only safe fake values are used: NHS numbers in the 999 range (valid check digit, never
//! issued) and phone numbers from Ofcom's drama range (01632 960xxx). Output is a pure
//! function of the [`ExtractSpec`]: the same seed gives the same bytes on every machine. The
//! generator carries its own tiny PRNG (SplitMix64) so that stays true across crate upgrades.
//!
//! Every row is generated from its index alone, so faults can be placed on rows of a given
//! plan type and a duplicate can copy the key of any other row, without keeping rows around.

use super::codes::Code;
use super::date::format_compact_utc;
use super::extract::xml::NAMESPACE;
use super::extract::Column;
use super::filename::ExtractFormat;
use super::ids::{local_authorities, LaCode};
use super::nhs::NhsNumber;
use super::plan::PlanType;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use std::io::{self, Write};
use std::str::FromStr;

/// A fault the generator can inject. Row faults hit chosen rows; file faults the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    CheckDigit,
    NhsFormat,
    NhsMissing,
    PlanType,
    DateMissing,
    DateFormat,
    DateOrder,
    DateFuture,
    LaMismatch,
    PhoneMissing,
    PhoneFormat,
    FieldTooLong,
    Duplicate,
    EddNotUcpp,
    EddPassed,
    /// File fault: the file is cut off (CSV: inside the last row; XML: Plan elements missing).
    Truncate,
    /// File fault: an extra column the gateway does not know.
    UnknownColumn,
    /// File fault: a 0-byte file.
    Empty,
    /// File fault (XML): a DOCTYPE declaration.
    Doctype,
}

impl Fault {
    pub const ALL: [Fault; 19] = [
        Fault::CheckDigit,
        Fault::NhsFormat,
        Fault::NhsMissing,
        Fault::PlanType,
        Fault::DateMissing,
        Fault::DateFormat,
        Fault::DateOrder,
        Fault::DateFuture,
        Fault::LaMismatch,
        Fault::PhoneMissing,
        Fault::PhoneFormat,
        Fault::FieldTooLong,
        Fault::Duplicate,
        Fault::EddNotUcpp,
        Fault::EddPassed,
        Fault::Truncate,
        Fault::UnknownColumn,
        Fault::Empty,
        Fault::Doctype,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::CheckDigit => "check-digit",
            Fault::NhsFormat => "nhs-format",
            Fault::NhsMissing => "nhs-missing",
            Fault::PlanType => "plan-type",
            Fault::DateMissing => "date-missing",
            Fault::DateFormat => "date-format",
            Fault::DateOrder => "date-order",
            Fault::DateFuture => "date-future",
            Fault::LaMismatch => "la-mismatch",
            Fault::PhoneMissing => "phone-missing",
            Fault::PhoneFormat => "phone-format",
            Fault::FieldTooLong => "field-too-long",
            Fault::Duplicate => "duplicate",
            Fault::EddNotUcpp => "edd-not-ucpp",
            Fault::EddPassed => "edd-passed",
            Fault::Truncate => "truncate",
            Fault::UnknownColumn => "unknown-column",
            Fault::Empty => "empty",
            Fault::Doctype => "doctype",
        }
    }

    /// The code the gateway must raise for this fault, in a file of the given format.
    pub fn code(self, format: ExtractFormat) -> Code {
        match self {
            Fault::CheckDigit => Code::NhsCheckDigit,
            Fault::NhsFormat => Code::NhsFormat,
            Fault::NhsMissing => Code::NhsMissing,
            Fault::PlanType => Code::PlanType,
            Fault::DateMissing => Code::DateMissing,
            Fault::DateFormat => Code::DateFormat,
            Fault::DateOrder => Code::DateOrder,
            Fault::DateFuture => Code::DateFuture,
            Fault::LaMismatch => Code::LaMismatch,
            Fault::PhoneMissing => Code::PhoneMissing,
            Fault::PhoneFormat => Code::PhoneFormat,
            Fault::FieldTooLong => Code::FieldTooLong,
            Fault::Duplicate => Code::Duplicate,
            Fault::EddNotUcpp => Code::EddNotUcpp,
            Fault::EddPassed => Code::EddPassed,
            Fault::Truncate if format != ExtractFormat::Csv => Code::RecordCount,
            Fault::UnknownColumn if format == ExtractFormat::Xml => Code::Xml,
            Fault::Truncate | Fault::UnknownColumn => Code::Header,
            Fault::Empty => Code::Empty,
            Fault::Doctype => Code::Xml,
        }
    }

    /// Whether the fault is about the whole file rather than some rows.
    pub fn is_file_fault(self) -> bool {
        matches!(
            self,
            Fault::Truncate | Fault::UnknownColumn | Fault::Empty | Fault::Doctype
        )
    }
}

impl FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Fault, String> {
        Fault::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown fault {s:?}; known: {}",
                    Fault::ALL.map(Fault::name).join(", ")
                )
            })
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct ExtractSpec {
    pub la: LaCode,
    pub rows: u64,
    pub seed: u64,
    pub extracted_at: DateTime<Utc>,
    pub format: ExtractFormat,
    /// Each row fault with how many rows get it.
    pub faults: Vec<(Fault, u64)>,
    /// Fill `la_name` and `local_ref` to their limits (for size benchmarks).
    pub wide: bool,
    pub bom: bool,
    pub crlf: bool,
    /// Where in the 999 range this file's NHS numbers start (0..1), so several generated LAs
    /// can be given disjoint children.
    pub offset: u64,
    /// A later day's extract of the same LA: relative to day 0, about 1% of the children are
    /// gone, 2% have a changed local_ref, and `day`% are new. 0 is the base list.
    pub day: u32,
}

/// The generated rows of a spec, as (index into the key space, changed on this day).
fn emitted(spec: &ExtractSpec) -> impl Iterator<Item = (u64, bool)> + '_ {
    let day = u64::from(spec.day);
    let churn = move |i: u64| {
        splitmix(spec.seed ^ i.wrapping_mul(0x51ED) ^ day.wrapping_mul(0xD1B5_4A32_D192_ED03)) % 100
    };
    let base = (0..spec.rows).filter_map(move |i| match (day, churn(i)) {
        (0, _) => Some((i, false)),
        (_, 0) => None,
        (_, 1 | 2) => Some((i, true)),
        _ => Some((i, false)),
    });
    let new = spec.rows..spec.rows + spec.rows * day / 100;
    base.chain(new.map(|i| (i, false)))
}

/// What was generated: the file name and where each fault was put.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Manifest {
    pub file: String,
    pub rows: u64,
    /// (row, code) for every row error and warning the file must produce, in row order.
    pub expected: Vec<(u64, Code)>,
    pub file_error: Option<Code>,
}

/// The nine-digit bodies in the 999 range that have a check digit.
fn valid_bodies() -> &'static [u32] {
    static BODIES: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
    BODIES.get_or_init(|| {
        (0..1_000_000u32)
            .filter(|&b| NhsNumber::from_first_nine(999_000_000 + u64::from(b)).is_some())
            .collect()
    })
}

/// How many distinct (NHS number, plan type) keys the 999 range holds.
pub fn max_unique_rows() -> u64 {
    valid_bodies().len() as u64 * 3
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A row's generated values, before faults.
struct Base {
    nhs: NhsNumber,
    plan_type: PlanType,
    start: NaiveDate,
    end: Option<NaiveDate>,
    edd: Option<NaiveDate>,
    random: u64,
}

struct Generator<'a> {
    spec: &'a ExtractSpec,
    bodies: &'a [u32],
    stride: u64,
    /// The extraction date.
    date: NaiveDate,
    /// Day 0's extraction date, which generated dates hang off, so that a later day's
    /// extract repeats the children's dates exactly.
    anchor: NaiveDate,
}

impl Generator<'_> {
    fn new(spec: &ExtractSpec) -> Generator<'_> {
        let bodies = valid_bodies();
        let n = bodies.len() as u64;
        // An odd multiplier that shares no factor with n visits every body once per pass.
        let stride = (0..)
            .map(|k| 1_000_003 + 2 * k)
            .find(|&s| gcd(s, n) == 1)
            .unwrap_or(1);
        Generator {
            spec,
            bodies,
            stride,
            date: spec.extracted_at.date_naive(),
            anchor: spec.extracted_at.date_naive() - Duration::days(i64::from(spec.day)),
        }
    }

    fn key(&self, index: u64) -> (NhsNumber, PlanType) {
        let n = self.bodies.len() as u64;
        let pass = index / n;
        let slot = (index % n + self.spec.offset % n) % n;
        let body = self.bodies[((slot * self.stride) % n) as usize];
        let nhs = NhsNumber::from_first_nine(999_000_000 + u64::from(body))
            .expect("valid bodies have a check digit");
        let base = match splitmix(u64::from(body) ^ self.spec.seed) % 100 {
            0..45 => 0,
            45..90 => 1,
            _ => 2,
        };
        (nhs, PlanType::ALL[((base + pass) % 3) as usize])
    }

    fn base(&self, index: u64) -> Base {
        let (nhs, plan_type) = self.key(index);
        let random = splitmix(self.spec.seed.wrapping_mul(31).wrapping_add(index));
        let start = self.anchor - Duration::days((random % 1095) as i64);
        let span = (self.anchor - start).num_days() as u64;
        let end = (random >> 12)
            .is_multiple_of(20)
            .then(|| start + Duration::days(((random >> 20) % (span + 1)) as i64));
        let edd = (plan_type == PlanType::Ucpp)
            .then(|| self.anchor + Duration::days(((random >> 28) % 200) as i64 - 20));
        Base {
            nhs,
            plan_type,
            start,
            end,
            edd,
            random,
        }
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The file name the spec's extract gets.
pub fn file_name(spec: &ExtractSpec) -> String {
    let (kind, ext) = match spec.format {
        ExtractFormat::Csv => ("EXTRACT", "csv"),
        ExtractFormat::Xml => ("EXTRACT", "xml"),
        ExtractFormat::Upload => ("UPLOAD", "xml"),
    };
    format!(
        "CPIS_{kind}_{}_{}.{ext}",
        spec.la,
        format_compact_utc(spec.extracted_at)
    )
}

/// Faults a CP-IS upload cannot carry: its phones, LA and LA name are the file's, not a
/// row's, an expected delivery date exists only on an unborn child's plan, and elements
/// it does not know are read past.
const NOT_IN_AN_UPLOAD: [Fault; 6] = [
    Fault::LaMismatch,
    Fault::PhoneMissing,
    Fault::PhoneFormat,
    Fault::FieldTooLong,
    Fault::EddNotUcpp,
    Fault::UnknownColumn,
];

/// Chooses which rows get which row fault. Rows are 1-based; each row gets at most one fault,
/// and the rows a duplicate copies are left clean.
fn place_faults(spec: &ExtractSpec, gen: &Generator<'_>) -> Result<Vec<(u64, Fault, u64)>, String> {
    let mut taken = std::collections::HashSet::new();
    let mut placed = Vec::new();
    let mut random = splitmix(spec.seed ^ 0xFA17);
    for &(fault, count) in &spec.faults {
        if fault.is_file_fault() {
            continue;
        }
        for _ in 0..count {
            let mut found = None;
            for _attempt in 0..10_000 {
                random = splitmix(random);
                let row = random % spec.rows.max(1) + 1;
                let plan = gen.key(row - 1).1;
                let suits = match fault {
                    Fault::EddNotUcpp => plan != PlanType::Ucpp,
                    Fault::EddPassed => plan == PlanType::Ucpp,
                    // An unborn child's plan in an upload has no end date of its own (its
                    // end is the expected delivery date).
                    Fault::DateOrder => {
                        plan != PlanType::Ucpp || spec.format != ExtractFormat::Upload
                    }
                    _ => true,
                };
                if !suits || taken.contains(&row) {
                    continue;
                }
                if fault == Fault::Duplicate {
                    let source = splitmix(random) % spec.rows + 1;
                    if source == row || taken.contains(&source) {
                        continue;
                    }
                    taken.insert(source);
                    found = Some((row, source));
                } else {
                    found = Some((row, 0));
                }
                break;
            }
            let (row, source) = found.ok_or_else(|| {
                format!(
                    "cannot place {count} {} faults in {} rows",
                    fault.name(),
                    spec.rows
                )
            })?;
            taken.insert(row);
            placed.push((row, fault, source));
        }
    }
    placed.sort_unstable();
    Ok(placed)
}

fn other_la(la: LaCode) -> LaCode {
    local_authorities()
        .iter()
        .map(|l| l.code)
        .find(|&c| c != la)
        .unwrap_or(la)
}

/// One row's text fields, in [`Column::ALL`] order.
fn render_row(
    gen: &Generator<'_>,
    (index, changed): (u64, bool),
    fault: Option<(Fault, u64)>,
) -> [String; 10] {
    let spec = gen.spec;
    let mut base = gen.base(index);
    if let Some((Fault::Duplicate, source)) = fault {
        let (nhs, plan_type) = gen.key(source - 1);
        base.nhs = nhs;
        base.plan_type = plan_type;
        if plan_type != PlanType::Ucpp {
            base.edd = None;
        } else if base.edd.is_none() {
            base.edd = Some(gen.date);
        }
    }
    let la_code = spec.la.as_u16();
    let name = spec.la.name();
    let la_name = if spec.wide {
        let mut s = name.to_owned();
        while s.len() + name.len() + 3 <= 250 {
            s.push_str(" / ");
            s.push_str(name);
        }
        s
    } else {
        name.to_owned()
    };
    let mut local_ref = if spec.wide {
        format!("{la_code}-{:0>60}", index + 1)
    } else {
        format!("{la_code}-{:06}", index + 1)
    };
    if changed {
        local_ref.truncate(56);
        local_ref.push_str(&format!("-v{}", spec.day));
    }
    let edt = 960_000 + u64::from(la_code) * 2 % 1000;
    let mut f: [String; 10] = [
        base.nhs.full(),
        base.plan_type.as_str().to_owned(),
        base.start.to_string(),
        base.end.map(|d| d.to_string()).unwrap_or_default(),
        spec.la.to_string(),
        la_name,
        format!("01632 {edt}"),
        format!("01632 {}", (edt + 1).min(960_999)),
        local_ref,
        base.edd.map(|d| d.to_string()).unwrap_or_default(),
    ];
    if (base.random >> 40).is_multiple_of(4) {
        f[0] = base.nhs.spaced();
    }
    let col = |c: Column| c as usize;
    match fault.map(|(f, _)| f) {
        Some(Fault::CheckDigit) => {
            let mut digits = base.nhs.full().into_bytes();
            digits[9] = b'0' + (digits[9] - b'0' + 1) % 10;
            f[col(Column::NhsNumber)] = String::from_utf8(digits).unwrap_or_default();
        }
        Some(Fault::NhsFormat) => f[col(Column::NhsNumber)] = "99900000".into(),
        Some(Fault::NhsMissing) => f[col(Column::NhsNumber)].clear(),
        Some(Fault::PlanType) => f[col(Column::PlanType)] = "CIN".into(),
        Some(Fault::DateMissing) => f[col(Column::StartDate)].clear(),
        Some(Fault::DateFormat) => {
            f[col(Column::StartDate)] = format!("{}-02-30", base.start.format("%Y"))
        }
        Some(Fault::DateOrder) => {
            f[col(Column::EndDate)] = (base.start - Duration::days(1)).to_string()
        }
        Some(Fault::DateFuture) => {
            f[col(Column::StartDate)] =
                (gen.date + Duration::days(1 + (base.random % 30) as i64)).to_string();
            f[col(Column::EndDate)].clear();
        }
        Some(Fault::LaMismatch) => f[col(Column::LaCode)] = other_la(spec.la).to_string(),
        Some(Fault::PhoneMissing) => f[col(Column::EdtPhone)].clear(),
        Some(Fault::PhoneFormat) => f[col(Column::OfficePhone)] = "1632 960001".into(),
        Some(Fault::FieldTooLong) => f[col(Column::LaName)] = "x".repeat(300),
        Some(Fault::EddNotUcpp) => {
            f[col(Column::ExpectedDeliveryDate)] = (gen.date + Duration::days(30)).to_string()
        }
        Some(Fault::EddPassed) => {
            f[col(Column::ExpectedDeliveryDate)] = (gen.date - Duration::days(40)).to_string();
            if base.start > gen.date - Duration::days(41) {
                f[col(Column::StartDate)] = (gen.date - Duration::days(100)).to_string();
                f[col(Column::EndDate)].clear();
            }
        }
        _ => {}
    }
    f
}

fn xml_escape(value: &str, out: &mut String) {
    for ch in value.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(ch),
        }
    }
}

/// Writes the extract the spec describes and says where its faults are.
pub fn write_extract(spec: &ExtractSpec, out: &mut impl Write) -> Result<Manifest, GenError> {
    if spec.rows + spec.rows * u64::from(spec.day) / 100 > max_unique_rows() {
        return Err(GenError::Spec(format!(
            "at most {} distinct rows can be made from the 999 NHS number range",
            max_unique_rows()
        )));
    }
    if spec.format == ExtractFormat::Csv
        && spec
            .faults
            .iter()
            .any(|&(f, n)| f == Fault::Doctype && n > 0)
    {
        return Err(GenError::Spec(
            "the doctype fault applies to XML extracts only".into(),
        ));
    }
    if spec.format == ExtractFormat::Upload {
        if let Some(&(fault, _)) = spec
            .faults
            .iter()
            .find(|&&(f, n)| n > 0 && NOT_IN_AN_UPLOAD.contains(&f))
        {
            return Err(GenError::Spec(format!(
                "a CP-IS upload cannot carry the {} fault: its phones, LA and LA name are the file's, and it has no expected delivery date but an unborn child's",
                fault.name()
            )));
        }
    }
    let gen = Generator::new(spec);
    let placed = place_faults(spec, &gen).map_err(GenError::Spec)?;
    let has = |f: Fault| spec.faults.iter().any(|&(g, n)| g == f && n > 0);
    let file_error = Fault::ALL
        .into_iter()
        .find(|&f| f.is_file_fault() && has(f))
        .map(|f| f.code(spec.format));
    let mut expected = Vec::new();
    for &(row, fault, source) in &placed {
        expected.push((row, fault.code(spec.format)));
        if fault == Fault::Duplicate {
            expected.push((source, Code::Duplicate));
        }
    }
    expected.sort_unstable();
    let manifest = Manifest {
        file: file_name(spec),
        rows: if spec.day == 0 {
            spec.rows
        } else {
            emitted(spec).count() as u64
        },
        expected,
        file_error,
    };
    if has(Fault::Empty) {
        return Ok(manifest);
    }
    let faults: std::collections::HashMap<u64, (Fault, u64)> = placed
        .iter()
        .map(|&(row, fault, source)| (row, (fault, source)))
        .collect();
    let eol = if spec.crlf { "\r\n" } else { "\n" };
    match spec.format {
        ExtractFormat::Csv => {
            if spec.bom {
                out.write_all("\u{feff}".as_bytes())?;
            }
            let mut w = csv::WriterBuilder::new()
                .terminator(if spec.crlf {
                    csv::Terminator::CRLF
                } else {
                    csv::Terminator::Any(b'\n')
                })
                .from_writer(out);
            let mut header: Vec<&str> = Column::ALL.iter().map(|c| c.csv_name()).collect();
            if has(Fault::UnknownColumn) {
                header.push("colour");
            }
            w.write_record(&header).map_err(csv_io)?;
            let truncate = has(Fault::Truncate) && spec.rows > 0;
            for (row, at) in (1..).zip(emitted(spec)) {
                let fields = render_row(&gen, at, faults.get(&row).copied());
                if truncate && row == manifest.rows {
                    let inner = w
                        .into_inner()
                        .map_err(|e| GenError::Io(io::Error::other(e.to_string())))?;
                    write!(inner, "{},{},{}", fields[0], fields[1], fields[2])?;
                    return Ok(manifest);
                }
                if has(Fault::UnknownColumn) {
                    w.write_record(fields.iter().map(String::as_str).chain(["blue"]))
                        .map_err(csv_io)?;
                } else {
                    w.write_record(&fields).map_err(csv_io)?;
                }
            }
            w.flush()?;
        }
        ExtractFormat::Xml => {
            let written = if has(Fault::Truncate) {
                manifest.rows.saturating_sub(1)
            } else {
                manifest.rows
            };
            if spec.bom {
                out.write_all("\u{feff}".as_bytes())?;
            }
            write!(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>{eol}")?;
            if has(Fault::Doctype) {
                write!(out, "<!DOCTYPE Extract [<!ENTITY lol \"lol\">]>{eol}")?;
            }
            write!(
                out,
                "<Extract xmlns=\"{NAMESPACE}\" laCode=\"{}\" extractedAt=\"{}\" recordCount=\"{}\"{}>{eol}",
                spec.la,
                spec.extracted_at.format("%Y-%m-%dT%H:%M:%SZ"),
                manifest.rows,
                if has(Fault::UnknownColumn) { " colour=\"blue\"" } else { "" }
            )?;
            let mut line = String::new();
            for (row, at) in (1..=written).zip(emitted(spec)) {
                let fields = render_row(&gen, at, faults.get(&row).copied());
                line.clear();
                line.push_str("  <Plan");
                for (column, value) in Column::ALL.iter().zip(&fields) {
                    let optional = matches!(
                        column,
                        Column::EndDate
                            | Column::LaCode
                            | Column::LaName
                            | Column::LocalRef
                            | Column::ExpectedDeliveryDate
                    );
                    let keep_la = *column == Column::LaCode && value != &spec.la.to_string();
                    if value.is_empty() && optional || (*column == Column::LaCode && !keep_la) {
                        continue;
                    }
                    line.push(' ');
                    line.push_str(column.xml_name());
                    line.push_str("=\"");
                    xml_escape(value, &mut line);
                    line.push('"');
                }
                line.push_str("/>");
                line.push_str(eol);
                out.write_all(line.as_bytes())?;
            }
            write!(out, "</Extract>{eol}")?;
        }
        ExtractFormat::Upload => {
            let written = if has(Fault::Truncate) {
                manifest.rows.saturating_sub(1)
            } else {
                manifest.rows
            };
            write_upload(spec, &gen, &faults, manifest.rows, written, out)?;
        }
    }
    Ok(manifest)
}

/// A date as HL7 writes it (`YYYYMMDDHHMM`); anything that is not `YYYY-MM-DD` as it is.
fn hl7_date(text: &str) -> String {
    let b = text.as_bytes();
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        format!("{}{}{}0000", &text[..4], &text[5..7], &text[8..])
    } else {
        text.to_owned()
    }
}

/// A CP-IS upload (REPC_MT000002GB01) of the spec's rows, a record for each. Its sequence
/// number is the day's number plus one. An unborn child's plan carries its expected
/// delivery date as its (required) end date, so one that has ended is written open.
fn write_upload(
    spec: &ExtractSpec,
    gen: &Generator<'_>,
    faults: &std::collections::HashMap<u64, (Fault, u64)>,
    declared: u64,
    written: u64,
    out: &mut impl Write,
) -> io::Result<()> {
    let first = render_row(gen, (0, false), None);
    let phone = |text: &str| text.replace(' ', "");
    let mut head = String::new();
    head.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    if spec
        .faults
        .iter()
        .any(|&(f, n)| f == Fault::Doctype && n > 0)
    {
        head.push_str("<!DOCTYPE File [<!ENTITY lol \"lol\">]>\n");
    }
    head.push_str(&format!(
        "<File xmlns=\"{}\" xmlns:npfitlc=\"{}\">\n <creationTime value=\"{}\"/>\n <id extension=\"{}\"/>\n <transmissionQuantity value=\"{declared}\"/>\n <communicationFunctionSnd><organisation><id root=\"2.16.840.1.113883.2.1.3.2.4.19.1\" extension=\"{}\"/><name>",
        super::extract::cpis::NAMESPACE,
        super::extract::cpis::LOCALISATION,
        spec.extracted_at.format("%Y%m%d%H%M%S"),
        spec.day + 1,
        spec.la,
    ));
    xml_escape(&first[Column::LaName as usize], &mut head);
    head.push_str(&format!(
        "</name><telecom value=\"tel:{}\" use=\"WP\"/><telecom value=\"tel:{}\" use=\"EC\"/></organisation></communicationFunctionSnd>\n",
        phone(&first[Column::OfficePhone as usize]),
        phone(&first[Column::EdtPhone as usize]),
    ));
    out.write_all(head.as_bytes())?;
    let content = "<npfitlc:contentId root=\"2.16.840.1.113883.2.1.3.2.4.18.16\" extension=";
    let mut record = String::new();
    for (row, at) in (1..=written).zip(emitted(spec)) {
        let f = render_row(gen, at, faults.get(&row).copied());
        let field = |c: Column| f[c as usize].as_str();
        let (template, prefix, person) = match field(Column::PlanType) {
            "CPP" => ("COCT_TP146101GB01.CPPInformation", "cPP", "Child"),
            "LAC" => ("COCT_TP146100GB01.LACInformation", "lAC", "Child"),
            "UCPP" => ("COCT_TP146102GB01.UCPInformation", "uCP", "UnbornChild"),
            _ => ("COCT_TP146199GB01.CINInformation", "cIN", "Child"),
        };
        let unborn = person == "UnbornChild";
        let end = if unborn {
            field(Column::ExpectedDeliveryDate)
        } else {
            field(Column::EndDate)
        };
        record.clear();
        record.push_str(" <record><CP-ISRecord><pertinentInformation>");
        record.push_str(&format!(
            "{content}\"{}\"/><{template}>",
            template.replacen('.', "#", 1)
        ));
        for (component, part, date) in [
            ("component", "StartDate", field(Column::StartDate)),
            ("component1", "EndDate", end),
        ] {
            if !date.is_empty() {
                record.push_str(&format!("<{component}><{prefix}{part}><value value=\""));
                xml_escape(&hl7_date(date), &mut record);
                record.push_str(&format!("\"/></{prefix}{part}></{component}>"));
            }
        }
        record.push_str(&format!("</{template}></pertinentInformation><subject>"));
        let template = if unborn {
            "COCT_TP145100GB01.UnbornChild"
        } else {
            "COCT_TP145101GB01.Child"
        };
        record.push_str(&format!(
            "{content}\"{}\"/><{template}>",
            template.replacen('.', "#", 1)
        ));
        let mut ids = String::new();
        for (root, value) in [
            (
                super::extract::cpis::NHS_NUMBER_ROOT,
                field(Column::NhsNumber),
            ),
            (super::extract::cpis::LOCAL_ID_ROOT, field(Column::LocalRef)),
        ] {
            if !value.is_empty() {
                ids.push_str(&format!("<id root=\"{root}\" extension=\""));
                xml_escape(value, &mut ids);
                ids.push_str("\"/>");
            }
        }
        let person = "<birthTime value=\"20150101\"/><name><given>Generated</given><family>Person</family></name>";
        if unborn {
            record.push_str(&format!(
                "<parentMotherPerson>{person}<playedMother>{ids}</playedMother></parentMotherPerson>"
            ));
        } else {
            record.push_str(&format!("{ids}<childPerson>{person}</childPerson>"));
        }
        record.push_str(&format!("</{template}></subject></CP-ISRecord></record>\n"));
        out.write_all(record.as_bytes())?;
    }
    out.write_all(b"</File>\n")
}

/// The LA extracts `gen national` writes: one spec per English LA, children kept apart.
pub fn national_specs(
    rows: u64,
    seed: u64,
    extracted_at: DateTime<Utc>,
    format: ExtractFormat,
    day: u32,
) -> Vec<ExtractSpec> {
    let las = local_authorities();
    let n = las.len() as u64;
    let spacing = max_unique_rows() / 3 / n;
    (0u64..)
        .zip(las)
        .map(|(i, la)| ExtractSpec {
            la: la.code,
            rows: rows / n + u64::from(i < rows % n),
            seed: seed.wrapping_add(i),
            extracted_at,
            format,
            faults: Vec::new(),
            wide: false,
            bom: false,
            crlf: false,
            offset: i * spacing,
            day,
        })
        .collect()
}

/// What `gen attendance` writes.
#[derive(Debug, Clone)]
pub struct AttendanceSpec {
    pub ods: String,
    pub org_name: String,
    pub rows: u64,
    pub seed: u64,
    /// The file's time; attendances fall in the 24 hours before it.
    pub at: DateTime<Utc>,
    /// The national list (`gen national --rows N --seed S`, day 0) the flagged children
    /// come from.
    pub national_rows: u64,
    pub national_seed: u64,
    /// The share of rows that are children of that list.
    pub flagged_share: f64,
}

/// Writes an attendance file: a share of its children are on the national list, the rest
/// are 999-range numbers the list never uses.
pub fn write_attendance(spec: &AttendanceSpec, out: &mut impl Write) -> Result<String, GenError> {
    let specs = national_specs(
        spec.national_rows.max(1),
        spec.national_seed,
        spec.at,
        ExtractFormat::Csv,
        0,
    );
    let gens: Vec<Generator<'_>> = specs.iter().map(Generator::new).collect();
    let n = gens.len() as u64;
    let spacing = max_unique_rows() / 3 / n;
    let settings = [
        "ED",
        "ED",
        "ED",
        "ED",
        "ED",
        "UTC",
        "WIC",
        "MATERNITY",
        "GP",
        "AMBULANCE",
    ];
    let users = [
        "Dr A Example",
        "Dr B Sample",
        "N Nurse",
        "P Paramedic",
        "M Midwife",
    ];
    let mut w = csv::Writer::from_writer(out);
    w.write_record(super::attendance::COLUMNS).map_err(csv_io)?;
    for i in 0..spec.rows {
        let r = splitmix(spec.seed ^ i.wrapping_mul(0x9E37_79B9));
        let la = (r % n) as usize;
        let per_la = specs[la].rows.max(1);
        let flagged =
            ((r >> 8) % 10_000) as f64 / 10_000.0 < spec.flagged_share && spec.national_rows > 0;
        let nhs = if flagged {
            gens[la].key((r >> 24) % per_la).0
        } else {
            // A body between this LA's children and the next LA's: on nobody's list.
            let gap = spacing.saturating_sub(per_la).max(1);
            let index = la as u64 * spacing + per_la + (r >> 24) % gap;
            let bodies = valid_bodies();
            let slot = index % bodies.len() as u64;
            let body = bodies[((slot * gens[la].stride) % bodies.len() as u64) as usize];
            NhsNumber::from_first_nine(999_000_000 + u64::from(body))
                .expect("valid bodies have a check digit")
        };
        let minutes = (r >> 40) % (24 * 60);
        let attended = spec.at - Duration::minutes(minutes as i64);
        w.write_record([
            nhs.full().as_str(),
            &attended.format("%Y-%m-%dT%H:%M:%S+00:00").to_string(),
            &spec.ods,
            &spec.org_name,
            settings[((r >> 50) % settings.len() as u64) as usize],
            users[((r >> 54) % users.len() as u64) as usize],
            "Clinician",
        ])
        .map_err(csv_io)?;
    }
    w.flush()?;
    Ok(format!(
        "CPIS_ATTEND_{}_{}.csv",
        spec.ods,
        format_compact_utc(spec.at)
    ))
}

fn csv_io(e: csv::Error) -> GenError {
    GenError::Io(io::Error::other(e.to_string()))
}

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    #[error("{0}")]
    Spec(String),
    #[error("write failed: {0}")]
    Io(#[from] io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec(rows: u64, format: ExtractFormat, faults: Vec<(Fault, u64)>) -> ExtractSpec {
        ExtractSpec {
            la: LaCode::parse("919").unwrap(),
            rows,
            seed: 7,
            extracted_at: "2026-11-21T02:00:00Z".parse().unwrap(),
            format,
            faults,
            wide: false,
            bom: false,
            crlf: false,
            offset: 0,
            day: 0,
        }
    }

    #[test]
    fn same_seed_same_bytes_and_unique_keys() {
        let s = spec(2000, ExtractFormat::Csv, vec![]);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        write_extract(&s, &mut a).unwrap();
        write_extract(&s, &mut b).unwrap();
        assert_eq!(a, b);
        let gen = Generator::new(&s);
        let keys: std::collections::HashSet<_> = (0..50_000).map(|i| gen.key(i)).collect();
        assert_eq!(keys.len(), 50_000);
        assert!(max_unique_rows() > 2_700_000);
    }

    #[test]
    fn a_later_day_keeps_most_children_and_their_dates() {
        let day0 = spec(2000, ExtractFormat::Csv, vec![]);
        let mut day1 = day0.clone();
        day1.day = 1;
        day1.extracted_at += Duration::days(1);
        let lines = |s: &ExtractSpec| {
            let mut out = Vec::new();
            write_extract(s, &mut out).unwrap();
            String::from_utf8(out)
                .unwrap()
                .lines()
                .skip(1)
                .map(str::to_owned)
                .collect::<std::collections::HashSet<_>>()
        };
        let (a, b) = (lines(&day0), lines(&day1));
        let same = a.intersection(&b).count();
        assert!(
            (1900..1960).contains(&same),
            "about 3% of rows differ: {same} of 2000 the same"
        );
        assert!(
            (1960..2040).contains(&b.len()),
            "1% gone and 1% new: {} rows",
            b.len()
        );
    }

    #[test]
    fn manifest_lists_both_rows_of_a_duplicate() {
        let s = spec(
            50,
            ExtractFormat::Csv,
            vec![(Fault::Duplicate, 1), (Fault::PlanType, 2)],
        );
        let m = write_extract(&s, &mut Vec::new()).unwrap();
        assert_eq!(
            m.expected.iter().filter(|e| e.1 == Code::Duplicate).count(),
            2
        );
        assert_eq!(
            m.expected.iter().filter(|e| e.1 == Code::PlanType).count(),
            2
        );
        assert_eq!(m.file, "CPIS_EXTRACT_919_20261121T020000.csv");
    }

    #[test]
    fn an_upload_puts_a_date_order_fault_only_where_an_end_date_is_written() {
        // An unborn child's plan in an upload has no end date to put before its start.
        let s = spec(400, ExtractFormat::Upload, vec![(Fault::DateOrder, 150)]);
        let gen = Generator::new(&s);
        let placed = place_faults(&s, &gen).unwrap();
        assert_eq!(placed.len(), 150);
        assert!(placed
            .iter()
            .all(|&(row, _, _)| gen.key(row - 1).1 != PlanType::Ucpp));
        let csv = spec(400, ExtractFormat::Csv, vec![(Fault::DateOrder, 150)]);
        let gen = Generator::new(&csv);
        assert!(place_faults(&csv, &gen)
            .unwrap()
            .iter()
            .any(|&(row, _, _)| gen.key(row - 1).1 == PlanType::Ucpp));
    }
}
