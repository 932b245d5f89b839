//! CP-IS's own acknowledgement of an upload (`FileResponse`, interface 9.4), written beside
//! our JSON one from the file's report and its archived copy, read again: a record at a
//! time, twice (the record details come before the refused records returned in the
//! message's order), so memory stays flat in the upload's size.

use crate::core::extract::cpis::{CpisRows, UploadHeader};
use crate::core::extract::xml::Prolog;
use crate::core::extract::SourceError;
use crate::core::fileresponse::{self as response, Head, Receiver, RecordResponse};
use crate::core::ids::LaCode;
use crate::core::report::{FileReport, Outcome};
use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::Path;

/// Whether `report` is of a CP-IS upload (by its root, or by its name when it could not be
/// read that far).
pub(crate) fn is_upload(report: &FileReport) -> bool {
    report.root_is_upload || report.upload.is_some() || report.file.starts_with("CPIS_UPLOAD_")
}

type Upload = CpisRows<BufReader<File>>;

/// The archived upload, read up to its first record; `None` if it is not kept (a file
/// larger than the gateway takes) or cannot be read that far: its acknowledgement then
/// says only what the report knows.
fn open(archived: &Path) -> Option<Upload> {
    let file = File::open(archived).ok()?;
    let prolog = Prolog::read(BufReader::with_capacity(1 << 16, file)).ok()?;
    CpisRows::from_prolog(prolog).ok()
}

fn io_error(e: SourceError) -> io::Error {
    match e {
        SourceError::Io(e) => e,
        SourceError::File(p) => io::Error::other(format!(
            "the archived upload no longer reads as it did: {p}"
        )),
    }
}

/// Writes the `FileResponse` of the upload `report` is of, which LA `la` sent; `archived`
/// is where its archived copy is kept, if it is.
pub(crate) fn write(
    report: &FileReport,
    la: LaCode,
    archived: &Path,
    w: &mut dyn Write,
) -> io::Result<()> {
    let mut upload = open(archived);
    let header: Option<UploadHeader> = upload.as_ref().map(|u| u.header().clone());
    let receiver = match &header {
        Some(h) if h.la_code == la.to_string() => Receiver {
            la_code: h.la_code.clone(),
            la_name: h.la_name.clone(),
            phones: [("WP", &h.office_phone), ("EC", &h.edt_phone)]
                .into_iter()
                .filter_map(|(use_, phone)| phone.clone().map(|p| (use_, p)))
                .collect(),
        },
        // Not read, or sent by another organisation: the LA as the gateway knows it.
        _ => Receiver {
            la_code: la.to_string(),
            la_name: la.name().to_owned(),
            phones: Vec::new(),
        },
    };
    let mut out = String::new();
    response::head(
        &mut out,
        &Head {
            created: report.processed_at,
            sequence: header.as_ref().map(|h| h.sequence),
            records: report.upload.map(|u| u.records),
            response_code: report.response_code,
        },
    );
    // Records are reported only when some of the file was applied.
    let applied = matches!(report.outcome, Outcome::Accepted | Outcome::Partial);
    let (mut failed, mut successful) = (0, 0);
    if let Some(upload) = upload.as_mut().filter(|_| applied) {
        let mut any = false;
        each_record(upload, report, |position, record, response| {
            if !any {
                response::start_records(&mut out);
                any = true;
            }
            response::detail(&mut out, response, position, record.nhs.as_deref());
            match response {
                RecordResponse::Applied => successful += 1,
                _ => failed += 1,
            }
            w.write_all(out.as_bytes())?;
            out.clear();
            Ok(())
        })?;
        if any {
            response::end_records(&mut out);
        }
    }
    response::receiver(&mut out, &receiver, failed);
    if failed > 0 {
        if let Some(mut again) = open(archived) {
            let mut echo = String::new();
            each_record(&mut again, report, |_, record, response| {
                if response != RecordResponse::Applied {
                    echo.clear();
                    record.echo(&mut echo);
                    response::message(&mut out, &echo);
                    w.write_all(out.as_bytes())?;
                    out.clear();
                }
                Ok(())
            })?;
        }
    }
    response::tail(&mut out, successful);
    w.write_all(out.as_bytes())
}

/// Calls `each` with every record's position (from 1), the record and its response.
fn each_record(
    upload: &mut Upload,
    report: &FileReport,
    mut each: impl FnMut(
        u64,
        &crate::core::extract::cpis::UploadRecord,
        RecordResponse,
    ) -> io::Result<()>,
) -> io::Result<()> {
    let (mut position, mut first_row) = (0, 1);
    while let Some(record) = upload.next_record().map_err(io_error)? {
        position += 1;
        let response = RecordResponse::of(&report.refused_rows, first_row, record.rows);
        first_row += record.rows;
        each(position, &record, response)?;
    }
    Ok(())
}
