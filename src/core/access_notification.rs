//! CP-IS's own attendance notification, `CP-ISAccessToServiceNotification`
//! (REPC_MT000004GB01): what an LA whose `notify_format` is `cpis` gets in place of the
//! notification CSV (interface 11.2A). One document a batch: one `pertinentCP-ISRecordAccess`
//! a record (NHS number and plan type) with each of its look-ups in the batch's order.

use super::extract::cpis::{LOCALISATION, LOCAL_ID_ROOT, NAMESPACE, NHS_NUMBER_ROOT};
use chrono::{DateTime, Utc};
use std::borrow::Cow;
use std::fmt::Write;

/// `text` escaped for XML, any character XML 1.0 does not allow (a control character,
/// U+FFFE, U+FFFF) replaced by U+FFFD: a name from outside must not make the document
/// unreadable, and with it every notification it carries.
fn escape(text: &str) -> Cow<'_, str> {
    let allowed = |c: char| {
        matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
    };
    if text.chars().all(allowed) {
        quick_xml::escape::escape(text)
    } else {
        let clean: String = text
            .chars()
            .map(|c| if allowed(c) { c } else { '\u{FFFD}' })
            .collect();
        Cow::Owned(quick_xml::escape::escape(clean.as_str()).into_owned())
    }
}

/// The ODS organisation code system, for the LA and the health organisation.
const ORGANISATION_ROOT: &str = "2.16.840.1.113883.2.1.3.2.4.19.1";
/// SDS accredited system ids (ASIDs).
const ASID_ROOT: &str = "1.2.826.0.1285.0.2.0.107";
/// Where `npfitlc:contentId` names its template.
const TEMPLATE_ROOT: &str = "2.16.840.1.113883.2.1.3.2.4.18.16";

/// One look-up that notifies the LA, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access<'a> {
    /// 10 digits.
    pub nhs_number: &'a str,
    pub plan_type: &'a str,
    pub local_ref: Option<&'a str>,
    pub attended_at: DateTime<Utc>,
    pub org_ods: &'a str,
    pub org_name: &'a str,
    pub user_name: &'a str,
    pub user_role: &'a str,
}

/// What the document says besides the look-ups.
#[derive(Debug, Clone)]
pub struct Notification<'a> {
    pub created: DateTime<Utc>,
    pub la_code: &'a str,
    pub la_name: &'a str,
    /// The gateway's ASID (12 digits): the system each look-up came through.
    pub asid: &'a str,
    /// The LA's file its records were last sent in: its newest applied upload's sequence
    /// number, or the name of its newest applied extract; `none` if it has none.
    pub upload_ref: &'a str,
}

/// The document; `new_id` gives a fresh upper-case UUID each call.
pub fn document(
    head: &Notification<'_>,
    accesses: &[Access<'_>],
    new_id: &mut dyn FnMut() -> String,
) -> String {
    // A CP-IS record is a child's (its plans inside it): one record access a child, with
    // each look-up once however many of the child's plans it notified.
    let mut records: Vec<(&str, Vec<&Access<'_>>)> = Vec::new();
    for a in accesses {
        let same_look = |b: &&Access<'_>| {
            (b.attended_at, b.org_ods, b.user_name, b.user_role)
                == (a.attended_at, a.org_ods, a.user_name, a.user_role)
        };
        match records.iter_mut().find(|(nhs, _)| *nhs == a.nhs_number) {
            Some((_, list)) if list.iter().any(same_look) => {}
            Some((_, list)) => list.push(a),
            None => records.push((a.nhs_number, vec![a])),
        }
    }
    let mut out = String::new();
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <CP-ISAccessToServiceNotification xmlns=\"{NAMESPACE}\" xmlns:npfitlc=\"{LOCALISATION}\">\n \
         <effectiveTime value=\"{}+0000\"/>\n \
         <id root=\"{}\"/>\n \
         <pertinentInformation><pertinentTotalReturnedRecords><value value=\"{}\"/></pertinentTotalReturnedRecords></pertinentInformation>\n",
        head.created.format("%Y%m%d%H%M%S"),
        new_id(),
        records.len()
    );
    for (_, list) in &records {
        out.push_str(" <pertinentInformation1><pertinentCP-ISRecordAccess>\n");
        for a in list {
            query(&mut out, head, a, new_id());
        }
        let _ = writeln!(
            out,
            "  <reference><referredToLAUploadFile><value extension=\"{}\"/></referredToLAUploadFile></reference>\n \
             </pertinentCP-ISRecordAccess></pertinentInformation1>",
            escape(head.upload_ref)
        );
    }
    let _ = write!(
        out,
        " <primaryInformationRecipient>\
         <npfitlc:contentId root=\"{TEMPLATE_ROOT}\" extension=\"COCT_TP145103GB01#IntendedRecipient\"/>\
         <COCT_TP145103GB01.IntendedRecipient><representedSourceOrganization>\
         <id root=\"{ORGANISATION_ROOT}\" extension=\"{}\"/><name>{}</name>\
         </representedSourceOrganization></COCT_TP145103GB01.IntendedRecipient></primaryInformationRecipient>\n\
         </CP-ISAccessToServiceNotification>\n",
        escape(head.la_code),
        escape(head.la_name)
    );
    out
}

/// One look-up: when, by whom (the gateway's system, under the authority of the person
/// named, at their organisation), and for which child.
fn query(out: &mut String, head: &Notification<'_>, a: &Access<'_>, id: String) {
    let _ = write!(
        out,
        "  <pertinentInformation2><pertinentCP-ISNHSQuery>\
         <effectiveTime value=\"{}+0000\"/><id root=\"{id}\"/>\
         <author><npfitlc:contentId root=\"{TEMPLATE_ROOT}\" extension=\"COCT_TP145104GB01#System\"/>\
         <COCT_TP145104GB01.System><id root=\"{ASID_ROOT}\" extension=\"{}\"/>\
         <indirectAuthority><superiorAssignedEntity>\
         <code nullFlavor=\"OTH\"><originalText>{}</originalText></code>\
         <assignedPerson><name>{}</name></assignedPerson>\
         </superiorAssignedEntity></indirectAuthority>\
         <maintainingOrganization><id root=\"{ORGANISATION_ROOT}\" extension=\"{}\"/><name>{}</name></maintainingOrganization>\
         </COCT_TP145104GB01.System></author>\
         <queryByParameter><person.id><value root=\"{NHS_NUMBER_ROOT}\" extension=\"{}\"/>",
        a.attended_at.format("%Y%m%d%H%M%S"),
        escape(head.asid),
        escape(a.user_role),
        escape(a.user_name),
        escape(a.org_ods),
        escape(a.org_name),
        escape(a.nhs_number),
    );
    if let Some(local) = a.local_ref.filter(|r| !r.is_empty()) {
        let _ = write!(
            out,
            "<value root=\"{LOCAL_ID_ROOT}\" extension=\"{}\"/>",
            escape(local)
        );
    }
    out.push_str(
        "</person.id></queryByParameter></pertinentCP-ISNHSQuery></pertinentInformation2>\n",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access<'a>(nhs: &'a str, plan: &'a str, user: &'a str) -> Access<'a> {
        Access {
            nhs_number: nhs,
            plan_type: plan,
            local_ref: Some("908-1"),
            attended_at: "2026-11-22T09:42:00Z".parse().unwrap(),
            org_ods: "RWG",
            org_name: "West Herts & Co",
            user_name: user,
            user_role: "ED Doctor",
        }
    }

    fn head() -> Notification<'static> {
        Notification {
            created: "2026-11-22T10:00:00Z".parse().unwrap(),
            la_code: "908",
            la_name: "Cornwall",
            asid: "123456789012",
            upload_ref: "7",
        }
    }

    #[test]
    fn one_record_access_a_record_with_each_look_up_and_text_escaped() {
        let head = head();
        let mut n = 0;
        let mut ids = || {
            n += 1;
            format!("00000000-0000-4000-8000-{n:012}")
        };
        let later = Access {
            attended_at: "2026-11-22T09:50:00Z".parse().unwrap(),
            ..access("9990000018", "CPP", "Dr <A>")
        };
        let doc = document(
            &head,
            &[
                access("9990000018", "CPP", "Dr <A>"),
                // The same look-up notified the child's other plan: one query.
                access("9990000018", "LAC", "Dr <A>"),
                access("9990000026", "LAC", "Dr <A>"),
                later,
            ],
            &mut ids,
        );
        assert_eq!(doc.matches("<pertinentCP-ISRecordAccess>").count(), 2);
        assert_eq!(doc.matches("<pertinentCP-ISNHSQuery>").count(), 3);
        assert!(doc.contains("<pertinentTotalReturnedRecords><value value=\"2\"/>"));
        // The first record holds both of its look-ups, before the second record.
        let first = doc.find("extension=\"9990000018\"").unwrap();
        let again = doc.rfind("extension=\"9990000018\"").unwrap();
        assert!(again < doc.find("extension=\"9990000026\"").unwrap() && first < again);
        assert!(doc.contains("<name>Dr &lt;A&gt;</name>"));
        assert!(doc.contains("<name>West Herts &amp; Co</name>"));
        assert!(doc.contains("<effectiveTime value=\"20261122094200+0000\"/>"));
        assert!(doc.contains("<value extension=\"7\"/>"));
        assert!(doc.contains(&format!(
            "<value root=\"{LOCAL_ID_ROOT}\" extension=\"908-1\"/>"
        )));
        // Every id is its own.
        assert_eq!(n, 4);
    }

    #[test]
    fn a_character_xml_cannot_carry_is_replaced_not_written() {
        let head = head();
        let hostile = Access {
            user_role: "Doctor\u{1}",
            local_ref: Some("ref\u{FFFE}1"),
            ..access("9990000018", "CPP", "Dr \u{FFFF} X")
        };
        let doc = document(&head, &[hostile], &mut || {
            "00000000-0000-4000-8000-000000000001".into()
        });
        assert!(!doc.contains(['\u{1}', '\u{FFFE}', '\u{FFFF}']));
        assert!(doc.contains("<name>Dr \u{FFFD} X</name>"));
        assert!(doc.contains("<originalText>Doctor\u{FFFD}</originalText>"));
        assert!(doc.contains("extension=\"ref\u{FFFD}1\""));
    }
}
