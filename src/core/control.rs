//! MESH-style control files (`<stem>.ctl`, SPEC 6): an XML `DTSControl` beside a data file.
//! A control file marks its data file complete; when present, `From_DTS` must be the
//! mailbox owner.

use quick_xml::events::Event;
use quick_xml::Reader;

/// The largest control file read.
pub const MAX_CONTROL_BYTES: usize = 64 * 1024;

/// The fields of a `DTSControl` document (all optional but `From_DTS`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DtsControl {
    pub message_type: Option<String>,
    pub from_dts: String,
    pub to_dts: Option<String>,
    pub subject: Option<String>,
    pub local_id: Option<String>,
    pub workflow_id: Option<String>,
}

/// A field of `DTSControl` may be given once: two `From_DTS` would let a sender name
/// itself in one and another party in the other.
fn once(seen: &mut Vec<String>, name: &str, depth: usize) -> Result<(), String> {
    if depth != 1 {
        return Ok(());
    }
    if seen.iter().any(|s| s == name) {
        return Err(format!(
            "the control file gives <{name}> more than once: send it with each field once"
        ));
    }
    seen.push(name.to_owned());
    Ok(())
}

/// Parses a control file. The error is a sentence for the sender.
pub fn parse_control(bytes: &[u8]) -> Result<DtsControl, String> {
    if bytes.len() > MAX_CONTROL_BYTES {
        return Err(format!(
            "the control file is larger than {MAX_CONTROL_BYTES} bytes"
        ));
    }
    let mut reader = Reader::from_reader(bytes);
    reader.config_mut().trim_text(true);
    let mut buf = Vec::new();
    let mut control = DtsControl::default();
    let mut from = None;
    let mut path: Vec<String> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Err(e) => return Err(format!("the control file is not well-formed XML: {e}")),
            Ok(Event::DocType(_)) => {
                return Err("the control file has a <!DOCTYPE>: not accepted".into())
            }
            Ok(Event::Start(e)) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if path.is_empty() && name != "DTSControl" {
                    return Err(format!(
                        "the control file's root is <{name}>, not <DTSControl>"
                    ));
                }
                if path.len() > 2 {
                    return Err("the control file nests elements too deeply".into());
                }
                once(&mut seen, &name, path.len())?;
                path.push(name);
            }
            Ok(Event::Empty(e)) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                once(&mut seen, &name, path.len())?;
            }
            Ok(Event::End(_)) => {
                path.pop();
            }
            Ok(Event::Text(t)) => {
                let text = t
                    .decode()
                    .map_err(|_| "the control file is not UTF-8".to_owned())?
                    .trim()
                    .to_owned();
                let slot = match path.last().map(String::as_str) {
                    Some("MessageType") => &mut control.message_type,
                    Some("From_DTS") => &mut from,
                    Some("To_DTS") => &mut control.to_dts,
                    Some("Subject") => &mut control.subject,
                    Some("LocalId") => &mut control.local_id,
                    Some("WorkflowId") => &mut control.workflow_id,
                    _ => continue,
                };
                *slot = Some(text);
            }
            Ok(Event::Eof) if !path.is_empty() => {
                return Err(format!(
                    "the control file ends inside <{}>: it is incomplete",
                    path.join("><")
                ))
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
        }
        buf.clear();
    }
    control.from_dts = from
        .filter(|f| !f.is_empty())
        .ok_or_else(|| "the control file has no From_DTS".to_owned())?;
    Ok(control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_dts_control() {
        let ctl = br#"<?xml version="1.0"?><DTSControl><Version>1.0</Version><AddressType>DTS</AddressType>
            <MessageType>Data</MessageType><From_DTS>LA919</From_DTS><To_DTS>X26GW001</To_DTS>
            <Subject>CP-IS extract</Subject><LocalId>919-1</LocalId><WorkflowId>CPIS_EXTRACT</WorkflowId></DTSControl>"#;
        let c = parse_control(ctl).unwrap();
        assert_eq!(c.from_dts, "LA919");
        assert_eq!(c.workflow_id.as_deref(), Some("CPIS_EXTRACT"));
        assert_eq!(c.message_type.as_deref(), Some("Data"));
    }

    #[test]
    fn refuses_what_is_not_one() {
        assert!(parse_control(b"<Other><From_DTS>LA919</From_DTS></Other>").is_err());
        assert!(parse_control(b"<DTSControl><To_DTS>x</To_DTS></DTSControl>").is_err());
        assert!(parse_control(b"<!DOCTYPE x []><DTSControl/>").is_err());
        assert!(parse_control(b"not xml <").is_err());
        assert!(parse_control(b"<DTSControl><From_DTS>LA919</From_DTS>").is_err());
        assert!(parse_control(&vec![b' '; MAX_CONTROL_BYTES + 1]).is_err());
    }

    #[test]
    fn a_field_given_twice_is_refused() {
        let twice = parse_control(
            b"<DTSControl><From_DTS>LA919</From_DTS><From_DTS>LA202</From_DTS></DTSControl>",
        );
        assert!(twice.unwrap_err().contains("<From_DTS> more than once"));
        assert!(
            parse_control(b"<DTSControl><From_DTS/><From_DTS>LA919</From_DTS></DTSControl>")
                .is_err()
        );
    }
}
