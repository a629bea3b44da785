//! Dates on the wire: INTERNALDATE (RFC 9051 §2.3.3, `date-time`), the
//! APPEND date, and the day granularity of SEARCH (§6.4.4: BEFORE, ON,
//! SINCE compare dates, "disregarding time and timezone"; we use UTC days).
//!
//! imap-types builds `date-time` values from `chrono`, which is not a
//! direct dependency of ours; a value is made by decoding its wire form
//! with imap-codec, which also validates it.

use imap_codec::decode::Decoder;
use imap_codec::ResponseCodec;
use imap_next::imap_types::datetime::{DateTime, NaiveDate};
use imap_next::imap_types::fetch::MessageDataItem;
use imap_next::imap_types::response::{Data, Response};
use time::macros::format_description;
use time::OffsetDateTime;

/// Seconds in a day.
pub(crate) const DAY_SECONDS: i64 = 86_400;

/// INTERNALDATE for unix seconds `t` (UTC).
pub(crate) fn internal_date(t: i64) -> Option<DateTime> {
    let when = OffsetDateTime::from_unix_timestamp(t).ok()?;
    let text = when
        .format(format_description!(
            "[day]-[month repr:short]-[year] [hour]:[minute]:[second] +0000"
        ))
        .ok()?;
    let line = format!("* 1 FETCH (INTERNALDATE \"{text}\")\r\n");
    let (_, response) = ResponseCodec::default().decode(line.as_bytes()).ok()?;
    match response {
        Response::Data(Data::Fetch { items, .. }) => {
            items.into_iter().find_map(|item| match item {
                MessageDataItem::InternalDate(d) => Some(d),
                _ => None,
            })
        }
        _ => None,
    }
}

/// Unix seconds of an APPEND date.
pub(crate) fn unix_of(date: &DateTime) -> i64 {
    date.as_ref().timestamp()
}

/// Unix seconds at 00:00 UTC of a SEARCH date.
pub(crate) fn day_start(date: &NaiveDate) -> i64 {
    date.as_ref()
        .and_hms_opt(0, 0, 0)
        .map_or(0, |d| d.and_utc().timestamp())
}

/// Unix seconds at 00:00 UTC of the calendar day an RFC 5322 `Date:`
/// value names, as written: SENTBEFORE, SENTON and SENTSINCE compare the
/// day in the field "disregarding time and timezone" (RFC 3501 §6.4.4),
/// so `Sun, 25 Mar 2007 00:00:00 +0200` is on 25 March although it is
/// 24 March in UTC.
pub(crate) fn header_day(value: &str) -> Option<i64> {
    let d = mail_parser::DateTime::parse_rfc822(value.trim())?;
    let month = time::Month::try_from(d.month).ok()?;
    let date = time::Date::from_calendar_date(i32::from(d.year), month, d.day).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_date_round_trips() {
        let d = internal_date(1_700_000_000).unwrap();
        assert_eq!(unix_of(&d), 1_700_000_000);
    }

    #[test]
    fn header_days_ignore_the_zone() {
        let march_25 = 1_174_780_800;
        assert_eq!(
            header_day("Sun, 25 Mar 2007 00:00:00 +0200"),
            Some(march_25)
        );
        assert_eq!(
            header_day("Sun, 25 Mar 2007 23:00:00 -0300"),
            Some(march_25)
        );
        assert_eq!(header_day("not a date"), None);
    }
}
