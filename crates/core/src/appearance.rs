//! A messenger's appearance and availability: the title, greeting and colour the frame shows,
//! the business hours (in an IANA time zone) and what the frame says outside them. Parsed once,
//! so the rest of the code works with values that passed their checks; and whether the
//! business is open at a given instant, by the zone's own rules (DST included).
//!
//! The hours are wall-clock times of the business's zone: `"09:00"–"17:00"` on a Monday means
//! 9 to 5 on the clocks of that zone on that day, whatever its UTC offset that day. A start
//! that falls in a DST gap (a wall-clock time that does not exist that day) opens at the first
//! instant after the gap; in a fold (an hour that happens twice) the earlier one counts.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::ser::{SerializeMap, SerializeTuple};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::fields::{FieldError, Problems};

/// The launcher's and header's colour when none is set (the console's accent).
pub const DEFAULT_COLOR: &str = "#1f5fbf";
pub const MAX_TITLE_CHARS: usize = 80;
pub const MAX_TEXT_CHARS: usize = 1_000;
pub const MAX_REPLY_TIME_CHARS: usize = 100;
pub const MAX_ZONE_CHARS: usize = 64;
pub const MAX_INTERVALS_PER_DAY: usize = 8;
/// The days of `weekly`, Monday first (ISO 8601's order).
pub const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const FIELDS: [&str; 6] = [
    "title",
    "greeting",
    "color",
    "awayMessage",
    "replyTime",
    "businessHours",
];
const MINUTES_PER_DAY: u16 = 24 * 60;

/// The settings, as stored and as reads show them (`null`: not set).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Appearance {
    /// The frame's heading (`None`: the messenger's name).
    pub title: Option<String>,
    /// Shown to a customer who has not written yet.
    pub greeting: Option<String>,
    /// `#rrggbb`, lower case.
    pub color: String,
    /// Shown outside business hours.
    pub away_message: Option<String>,
    /// Shown outside business hours, e.g. "within one business day".
    pub reply_time: Option<String>,
    /// `None`: no hours set, always open.
    pub business_hours: Option<BusinessHours>,
}

impl Default for Appearance {
    fn default() -> Self {
        Self {
            title: None,
            greeting: None,
            color: DEFAULT_COLOR.to_owned(),
            away_message: None,
            reply_time: None,
            business_hours: None,
        }
    }
}

/// Opening hours per weekday in one time zone.
#[derive(Debug, Clone)]
pub struct BusinessHours {
    /// The zone's IANA name, e.g. `Europe/Berlin`.
    pub time_zone: String,
    zone: TimeZone,
    /// Monday first; each day's intervals sorted, neither overlapping nor touching.
    pub weekly: [Vec<Interval>; 7],
}

/// `[start, end)` in minutes after local midnight; `end` may be 1440 ("24:00").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub start: u16,
    pub end: u16,
}

/// Whether the business is open at an instant, and when that changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Availability {
    pub open: bool,
    /// While closed: the next opening within a week (`None`: no hours at all).
    pub next_open: Option<Timestamp>,
    /// While open: the next closing within a week (`None`: open around the clock, or no hours).
    pub next_close: Option<Timestamp>,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError::new(field, message)
}

impl Appearance {
    /// Parse a `PUT …/appearance` body (a PUT replaces: an absent or null field takes its
    /// default). Unknown fields are refused, so that a misspelt one is not silently lost.
    /// Every field is checked, and the error names each bad one.
    pub fn parse(v: &Value) -> Result<Appearance, FieldError> {
        let obj = v
            .as_object()
            .ok_or_else(|| err("body", "must be a JSON object"))?;
        let mut problems = Problems::new();
        unknown_fields(obj, &FIELDS, "", &mut problems);
        // A bad field's stand-in value is never used: `finish` refuses the body then.
        let title = problems.or(text(obj, "title", MAX_TITLE_CHARS, false), None);
        let greeting = problems.or(text(obj, "greeting", MAX_TEXT_CHARS, true), None);
        let color = problems.or(
            match obj.get("color") {
                None | Some(Value::Null) => Ok(DEFAULT_COLOR.to_owned()),
                Some(Value::String(s)) => color(s),
                Some(_) => Err(err("color", "must be a string like \"#1f5fbf\"")),
            },
            String::new(),
        );
        let away_message = problems.or(text(obj, "awayMessage", MAX_TEXT_CHARS, true), None);
        let reply_time = problems.or(text(obj, "replyTime", MAX_REPLY_TIME_CHARS, false), None);
        let business_hours = match obj.get("businessHours") {
            None | Some(Value::Null) => None,
            Some(Value::Object(h)) => BusinessHours::parse(h, &mut problems),
            Some(_) => {
                problems.push(err("businessHours", "must be an object or null"));
                None
            }
        };
        problems.finish()?;
        Ok(Appearance {
            title,
            greeting,
            color,
            away_message,
            reply_time,
            business_hours,
        })
    }

    /// Whether the business is open at `now` (always, without business hours).
    pub fn availability(&self, now: Timestamp) -> Availability {
        match &self.business_hours {
            None => Availability {
                open: true,
                next_open: None,
                next_close: None,
            },
            Some(h) => h.availability(now),
        }
    }
}

/// An optional text field: trimmed, empty = not set, at most `max` characters; `multiline`
/// allows line breaks (and only them among the control characters).
fn text(
    obj: &Map<String, Value>,
    field: &str,
    max: usize,
    multiline: bool,
) -> Result<Option<String>, FieldError> {
    let s = match obj.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.replace("\r\n", "\n"),
        Some(_) => return Err(err(field, "must be a string")),
    };
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let n = s.chars().count();
    if n > max {
        return Err(err(
            field,
            format!("must be at most {max} characters (it has {n})"),
        ));
    }
    if s.chars()
        .any(|c| c.is_control() && !(multiline && c == '\n'))
    {
        return Err(err(
            field,
            if multiline {
                "must not contain control characters other than line breaks"
            } else {
                "must be one line without control characters"
            },
        ));
    }
    Ok(Some(s.to_owned()))
}

fn color(s: &str) -> Result<String, FieldError> {
    let s = s.trim();
    let ok = s.len() == 7 && s.starts_with('#') && s.bytes().skip(1).all(|b| b.is_ascii_hexdigit());
    if !ok {
        return Err(err(
            "color",
            format!(
                "must be a colour written #RRGGBB, e.g. \"#1f5fbf\" (got \"{}\")",
                s.chars().take(20).collect::<String>()
            ),
        ));
    }
    Ok(s.to_ascii_lowercase())
}

impl BusinessHours {
    /// The hours, or `None` with each problem noted in `problems`.
    fn parse(h: &Map<String, Value>, problems: &mut Problems) -> Option<BusinessHours> {
        unknown_fields(h, &["timeZone", "weekly"], "businessHours.", problems);
        let zone = match h.get("timeZone") {
            Some(Value::String(s)) if !s.trim().is_empty() => {
                let name = s.trim();
                zone(name).map(|zone| (zone.iana_name().unwrap_or(name).to_owned(), zone))
            }
            None | Some(Value::Null) => Err(err(
                "businessHours.timeZone",
                "required: an IANA time zone name such as Europe/Berlin",
            )),
            Some(_) => Err(err(
                "businessHours.timeZone",
                "must be an IANA time zone name such as Europe/Berlin",
            )),
        };
        let zone = problems.check(zone);
        let weekly = match h.get("weekly") {
            None | Some(Value::Null) => {
                problems.push(err(
                    "businessHours.weekly",
                    "required: the opening hours per day, e.g. {\"mon\": [[\"09:00\", \"17:00\"]]}",
                ));
                None
            }
            Some(Value::Object(w)) => weekly(w, problems),
            Some(_) => {
                problems.push(err(
                    "businessHours.weekly",
                    "must be an object of days, e.g. {\"mon\": [[\"09:00\", \"17:00\"]]}",
                ));
                None
            }
        };
        let ((time_zone, zone), weekly) = (zone?, weekly?);
        Some(BusinessHours {
            time_zone,
            zone,
            weekly,
        })
    }

    /// Whether `now` lies within the hours, and the next change within a week.
    pub fn availability(&self, now: Timestamp) -> Availability {
        let local = now.to_zoned(self.zone.clone());
        let today = local.date();
        let minute = u16::try_from(i32::from(local.hour()) * 60 + i32::from(local.minute()))
            .unwrap_or_default();
        let weekday = usize::try_from(local.weekday().to_monday_zero_offset()).unwrap_or_default();
        let current = self.weekly[weekday]
            .iter()
            .find(|iv| iv.start <= minute && minute < iv.end);
        match current {
            Some(iv) => Availability {
                open: true,
                next_open: None,
                next_close: self.close_after(today, weekday, *iv),
            },
            None => Availability {
                open: false,
                next_open: self.open_after(today, weekday, now),
                next_close: None,
            },
        }
    }

    /// The first start of an interval after `now`, looking a week ahead (and a day more, for
    /// today's own weekday next week).
    fn open_after(&self, today: Date, weekday: usize, now: Timestamp) -> Option<Timestamp> {
        (0..=7).find_map(|k| {
            let date = today.checked_add(jiff::Span::new().days(k)).ok()?;
            self.weekly[(weekday + usize::try_from(k).ok()?) % 7]
                .iter()
                .filter_map(|iv| self.instant(date, iv.start))
                .find(|t| *t > now)
        })
    }

    /// The end of the open stretch that `iv` (today's) belongs to: an interval that ends at
    /// midnight goes on into the next day's interval that starts at 00:00.
    fn close_after(&self, today: Date, weekday: usize, iv: Interval) -> Option<Timestamp> {
        let mut end = iv.end;
        for k in 0..=7_i64 {
            let date = today.checked_add(jiff::Span::new().days(k)).ok()?;
            if end < MINUTES_PER_DAY {
                return self.instant(date, end);
            }
            let next = &self.weekly[(weekday + usize::try_from(k).ok()? + 1) % 7];
            match next.first() {
                Some(n) if n.start == 0 => end = n.end,
                _ => return self.instant(date, MINUTES_PER_DAY),
            }
        }
        None // open around the clock
    }

    /// The instant of a wall-clock time (minutes after midnight, up to 1440) on `date` in
    /// the zone: a time in a DST gap moves forward past it, one in a fold takes the earlier.
    fn instant(&self, date: Date, minutes: u16) -> Option<Timestamp> {
        let (date, minutes) = if minutes >= MINUTES_PER_DAY {
            (date.tomorrow().ok()?, minutes - MINUTES_PER_DAY)
        } else {
            (date, minutes)
        };
        let hour = i8::try_from(minutes / 60).ok()?;
        let minute = i8::try_from(minutes % 60).ok()?;
        let dt = date.at(hour, minute, 0, 0);
        self.zone.to_zoned(dt).ok().map(|z| z.timestamp())
    }
}

/// A zone of the tz database by its IANA name (fixed offsets such as `+02:00` are not names:
/// they know no DST).
pub fn zone(name: &str) -> Result<TimeZone, FieldError> {
    const WHY: &str = "must be an IANA time zone name such as Europe/Berlin or America/New_York";
    if name.chars().count() > MAX_ZONE_CHARS
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+'))
    {
        return Err(err("businessHours.timeZone", WHY));
    }
    jiff::tz::db().get(name).map_err(|_| {
        err(
            "businessHours.timeZone",
            format!("\"{name}\" is not a known time zone; it {WHY}"),
        )
    })
}

/// Each day's intervals, or `None` with each bad day or interval noted in `problems`.
fn weekly(w: &Map<String, Value>, problems: &mut Problems) -> Option<[Vec<Interval>; 7]> {
    let mut out: [Vec<Interval>; 7] = Default::default();
    let mut ok = true;
    for (day, v) in w {
        let field = format!("businessHours.weekly.{day}");
        let Some(i) = DAYS.iter().position(|d| d == day) else {
            problems.push(err(
                field,
                "unknown day (the days are mon, tue, wed, thu, fri, sat, sun)",
            ));
            ok = false;
            continue;
        };
        match day_intervals(v, &field, problems) {
            Some(ivs) => out[i] = ivs,
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// One day's intervals, sorted and merged where they touch; `None` with its problems noted.
fn day_intervals(v: &Value, field: &str, problems: &mut Problems) -> Option<Vec<Interval>> {
    let list = match v {
        Value::Null => return Some(Vec::new()),
        Value::Array(a) if a.len() > MAX_INTERVALS_PER_DAY => {
            problems.push(err(
                field,
                format!("at most {MAX_INTERVALS_PER_DAY} intervals a day"),
            ));
            return None;
        }
        Value::Array(a) => a,
        _ => {
            problems.push(err(
                field,
                "must be a list of [\"HH:MM\", \"HH:MM\"] pairs (empty: closed all day)",
            ));
            return None;
        }
    };
    let parsed: Vec<Option<Interval>> = list
        .iter()
        .enumerate()
        .map(|(n, iv)| problems.check(interval(iv, &format!("{field}[{n}]"))))
        .collect();
    let mut day_ivs: Vec<Interval> = parsed.into_iter().collect::<Option<_>>()?;
    day_ivs.sort_by_key(|iv| iv.start);
    let mut merged: Vec<Interval> = Vec::with_capacity(day_ivs.len());
    for iv in day_ivs {
        match merged.last_mut() {
            Some(prev) if iv.start < prev.end => {
                problems.push(err(
                    field,
                    format!(
                        "{}–{} and {}–{} overlap",
                        hhmm(prev.start),
                        hhmm(prev.end),
                        hhmm(iv.start),
                        hhmm(iv.end)
                    ),
                ));
                return None;
            }
            // Touching intervals are one stretch.
            Some(prev) if iv.start == prev.end => prev.end = iv.end,
            _ => merged.push(iv),
        }
    }
    Some(merged)
}

/// Each key of `obj` that is not one of `known` is a problem of its own (a misspelt field
/// would otherwise be silently lost).
fn unknown_fields(obj: &Map<String, Value>, known: &[&str], prefix: &str, problems: &mut Problems) {
    for k in obj.keys().filter(|k| !known.contains(&k.as_str())) {
        problems.push(err(
            format!("{prefix}{k}"),
            format!("unknown field (the fields are {})", known.join(", ")),
        ));
    }
}

fn interval(v: &Value, field: &str) -> Result<Interval, FieldError> {
    const SHAPE: &str =
        "must be a pair of times [\"HH:MM\", \"HH:MM\"], e.g. [\"09:00\", \"17:00\"]";
    let pair = match v.as_array() {
        Some(a) if a.len() == 2 => a,
        _ => return Err(err(field, SHAPE)),
    };
    let (Some(start), Some(end)) = (pair[0].as_str(), pair[1].as_str()) else {
        return Err(err(field, SHAPE));
    };
    let start = minutes(start)
        .filter(|m| *m < MINUTES_PER_DAY)
        .ok_or_else(|| {
            err(
                field,
                format!("the start \"{start}\" must be a time from 00:00 to 23:59"),
            )
        })?;
    let end = minutes(end).ok_or_else(|| {
        err(
            field,
            format!("the end \"{end}\" must be a time from 00:01 to 24:00"),
        )
    })?;
    if end <= start {
        return Err(err(
            field,
            format!(
                "ends at {} before it starts at {} (an interval must end after it starts; \
                 for hours past midnight, end at 24:00 and go on at 00:00 the next day)",
                hhmm(end),
                hhmm(start)
            ),
        ));
    }
    Ok(Interval { start, end })
}

/// `"HH:MM"` (00:00–24:00) as minutes after midnight.
fn minutes(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    let total = h * 60 + m;
    (h <= 24 && m < 60 && total <= MINUTES_PER_DAY).then_some(total)
}

fn hhmm(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

impl Serialize for Interval {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&hhmm(self.start))?;
        t.serialize_element(&hhmm(self.end))?;
        t.end()
    }
}

impl Serialize for BusinessHours {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Weekly<'a>(&'a [Vec<Interval>; 7]);
        impl Serialize for Weekly<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(7))?;
                for (day, ivs) in DAYS.iter().zip(self.0.iter()) {
                    m.serialize_entry(day, ivs)?;
                }
                m.end()
            }
        }
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("timeZone", &self.time_zone)?;
        m.serialize_entry("weekly", &Weekly(&self.weekly))?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn hours(zone: &str, weekly: Value) -> Appearance {
        Appearance::parse(&json!({"businessHours": {"timeZone": zone, "weekly": weekly}})).unwrap()
    }

    #[test]
    fn defaults_and_round_trip() {
        let a = Appearance::parse(&json!({})).unwrap();
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            json!({"title": null, "greeting": null, "color": "#1f5fbf", "awayMessage": null,
                   "replyTime": null, "businessHours": null})
        );
        assert!(a.availability(at("2026-11-27T03:00:00Z")).open);

        let body = json!({"title": " Support ", "greeting": "Hi!\r\nHow can we help?", "color": "#AB12CD",
            "awayMessage": "We're away.", "replyTime": "within a day",
            "businessHours": {"timeZone": "europe/berlin", "weekly": {
                "mon": [["13:00", "17:00"], ["09:00", "12:00"]], "tue": [["09:00", "12:00"], ["12:00", "18:00"]],
                "sat": [], "sun": null}}});
        let a = Appearance::parse(&body).unwrap();
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["title"], "Support");
        assert_eq!(v["greeting"], "Hi!\nHow can we help?");
        assert_eq!(v["color"], "#ab12cd");
        assert_eq!(v["businessHours"]["timeZone"], "Europe/Berlin");
        assert_eq!(
            v["businessHours"]["weekly"],
            json!({"mon": [["09:00", "12:00"], ["13:00", "17:00"]], "tue": [["09:00", "18:00"]],
                   "wed": [], "thu": [], "fri": [], "sat": [], "sun": []})
        );
        // What was written reads back the same.
        let again = Appearance::parse(&v).unwrap();
        assert_eq!(serde_json::to_value(&again).unwrap(), v);
    }

    #[test]
    fn bad_values_name_their_field() {
        let long = "x".repeat(81);
        for (body, field) in [
            (json!([]), "body"),
            (json!({"colour": "#ffffff"}), "colour"),
            (json!({"color": "red"}), "color"),
            (json!({"color": "#12345"}), "color"),
            (json!({"color": "#12345g"}), "color"),
            (json!({"color": 123}), "color"),
            (json!({"title": long}), "title"),
            (json!({"title": "a\nb"}), "title"),
            (json!({"greeting": 5}), "greeting"),
            (json!({"awayMessage": "x".repeat(1001)}), "awayMessage"),
            (json!({"awayMessage": "bell\u{7}"}), "awayMessage"),
            (json!({"replyTime": "x".repeat(101)}), "replyTime"),
            (json!({"businessHours": "9-5"}), "businessHours"),
            (
                json!({"businessHours": {"weekly": {}}}),
                "businessHours.timeZone",
            ),
            (
                json!({"businessHours": {"timeZone": "Mars/Olympus", "weekly": {}}}),
                "businessHours.timeZone",
            ),
            (
                json!({"businessHours": {"timeZone": "+02:00", "weekly": {}}}),
                "businessHours.timeZone",
            ),
            (
                json!({"businessHours": {"timeZone": "../../etc/passwd", "weekly": {}}}),
                "businessHours.timeZone",
            ),
            (
                json!({"businessHours": {"timeZone": "UTC"}}),
                "businessHours.weekly",
            ),
            (
                json!({"businessHours": {"timeZone": "UTC", "weekly": {}, "x": 1}}),
                "businessHours.x",
            ),
            (
                json!({"businessHours": {"timeZone": "UTC", "weekly": {"monday": []}}}),
                "businessHours.weekly.monday",
            ),
            (
                json!({"businessHours": {"timeZone": "UTC", "weekly": {"mon": "9-5"}}}),
                "businessHours.weekly.mon",
            ),
            (
                json!({"businessHours": {"timeZone": "UTC", "weekly": {"mon": [["17:00", "09:00"]]}}}),
                "businessHours.weekly.mon[0]",
            ),
            (
                json!({"businessHours": {"timeZone": "UTC", "weekly": {"mon": [["09:00", "09:00"]]}}}),
                "businessHours.weekly.mon[0]",
            ),
            (
                json!({"businessHours": {"timeZone": "UTC", "weekly": {"mon": [["9:00", "17:00"]]}}}),
                "businessHours.weekly.mon[0]",
            ),
            (
                json!({"businessHours": {"timeZone": "UTC", "weekly": {"mon": [["09:00", "24:01"]]}}}),
                "businessHours.weekly.mon[0]",
            ),
            (
                json!({"businessHours": {"timeZone": "UTC", "weekly": {"mon": [["24:00", "24:00"]]}}}),
                "businessHours.weekly.mon[0]",
            ),
            (
                json!({"businessHours": {"timeZone": "UTC", "weekly": {"mon": [["09:00"]]}}}),
                "businessHours.weekly.mon[0]",
            ),
            (
                json!({"businessHours": {"timeZone": "UTC", "weekly": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}}}),
                "businessHours.weekly.mon",
            ),
        ] {
            let e = Appearance::parse(&body).unwrap_err();
            assert_eq!(e.field, field, "{body}: {e}");
        }
        let e = Appearance::parse(&json!({"businessHours": {"timeZone": "UTC", "weekly": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}}})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "businessHours.weekly.mon: 09:00–12:00 and 11:00–13:00 overlap"
        );
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let e = Appearance::parse(&json!({
            "title": "a\nb", "color": "red", "colour": "#ffffff",
            "businessHours": {"timeZone": "Mars/Olympus", "weekly": {
                "mon": [["17:00", "09:00"], ["09:00", "10:00"], ["25:00", "26:00"]],
                "tue": [["09:00", "12:00"], ["11:00", "13:00"]], "someday": []}}}))
        .unwrap_err()
        .to_string();
        assert_eq!(
            confidant_testkit::fields_in(&e),
            [
                "colour",
                "title",
                "color",
                "businessHours.timeZone",
                "businessHours.weekly.mon[0]",
                "businessHours.weekly.mon[2]",
                "businessHours.weekly.someday",
                "businessHours.weekly.tue",
            ],
            "{e}"
        );
    }

    #[test]
    fn open_and_closed_in_the_zone() {
        // Mon–Fri 09:00–17:00 in New York (UTC−5 in winter).
        let a = hours(
            "America/New_York",
            json!({"mon": [["09:00", "17:00"]], "tue": [["09:00", "17:00"]], "wed": [["09:00", "17:00"]],
                   "thu": [["09:00", "17:00"]], "fri": [["09:00", "17:00"]]}),
        );
        // Friday 2026-11-27 13:59Z = 08:59 local: closed, opens at 09:00 local.
        let v = a.availability(at("2026-11-27T13:59:00Z"));
        assert!(!v.open);
        assert_eq!(v.next_open, Some(at("2026-11-27T14:00:00Z")));
        // 14:00Z = 09:00 local: open until 17:00 local.
        let v = a.availability(at("2026-11-27T14:00:00Z"));
        assert!(v.open);
        assert_eq!(v.next_close, Some(at("2026-11-27T22:00:00Z")));
        // Friday 17:00 local: closed for the weekend, opens Monday 09:00.
        let v = a.availability(at("2026-11-27T22:00:00Z"));
        assert!(!v.open);
        assert_eq!(v.next_open, Some(at("2026-11-30T14:00:00Z")));
        // Saturday in UTC but still Friday 19:00 in New York: closed.
        assert!(!a.availability(at("2026-11-28T00:00:00Z")).open);
    }

    #[test]
    fn around_the_clock_and_never() {
        let all: Value = DAYS
            .iter()
            .map(|d| ((*d).to_owned(), json!([["00:00", "24:00"]])))
            .collect::<Map<_, _>>()
            .into();
        let a = hours("Pacific/Kiritimati", all);
        let v = a.availability(at("2026-07-01T12:34:00Z"));
        assert_eq!(
            v,
            Availability {
                open: true,
                next_open: None,
                next_close: None
            }
        );
        let a = hours("UTC", json!({}));
        let v = a.availability(at("2026-07-01T12:34:00Z"));
        assert_eq!(
            v,
            Availability {
                open: false,
                next_open: None,
                next_close: None
            }
        );
        // Hours past midnight: Fri 20:00–24:00 then Sat 00:00–02:00 close at Sat 02:00.
        let a = hours(
            "UTC",
            json!({"fri": [["20:00", "24:00"]], "sat": [["00:00", "02:00"]]}),
        );
        let v = a.availability(at("2026-11-27T21:00:00Z"));
        assert!(v.open);
        assert_eq!(v.next_close, Some(at("2026-11-28T02:00:00Z")));
        // Same weekday next week: Friday 21:00 with hours only on Fridays 09:00–10:00.
        let a = hours("UTC", json!({"fri": [["09:00", "10:00"]]}));
        let v = a.availability(at("2026-11-27T21:00:00Z"));
        assert_eq!(v.next_open, Some(at("2026-12-04T09:00:00Z")));
    }

    #[test]
    fn dst_changes_follow_the_zone() {
        // Berlin: CET (UTC+1) until 2026-03-29 02:00, then CEST (UTC+2).
        let a = hours(
            "Europe/Berlin",
            json!({"mon": [["09:00", "17:00"]], "sun": [["01:00", "04:00"]]}),
        );
        // Monday before the change: 09:00 local = 08:00Z.
        let v = a.availability(at("2026-03-22T12:00:00Z"));
        assert_eq!(v.next_open, Some(at("2026-03-23T08:00:00Z")));
        // Monday after the change: 09:00 local = 07:00Z.
        let v = a.availability(at("2026-03-29T12:00:00Z"));
        assert_eq!(v.next_open, Some(at("2026-03-30T07:00:00Z")));
        assert!(!a.availability(at("2026-03-30T06:59:00Z")).open);
        assert!(a.availability(at("2026-03-30T07:00:00Z")).open);
        // The change night: 01:00–04:00 local lasts two hours; 00:30Z is 01:30 CET (open),
        // 01:30Z is 03:30 CEST (open), 02:00Z is 04:00 CEST (closed).
        let v = a.availability(at("2026-03-29T00:30:00Z"));
        assert!(v.open);
        assert_eq!(v.next_close, Some(at("2026-03-29T02:00:00Z")));
        assert!(a.availability(at("2026-03-29T01:30:00Z")).open);
        assert!(!a.availability(at("2026-03-29T02:00:00Z")).open);
        // A start inside the gap (02:30 does not exist that night) opens after the gap.
        let a = hours("Europe/Berlin", json!({"sun": [["02:30", "05:00"]]}));
        let v = a.availability(at("2026-03-28T23:00:00Z"));
        assert_eq!(v.next_open, Some(at("2026-03-29T01:30:00Z"))); // 03:30 CEST
        // Autumn: 2026-10-25 03:00 CEST → 02:00 CET; 09:00 Monday is 08:00Z again.
        let a = hours("Europe/Berlin", json!({"mon": [["09:00", "17:00"]]}));
        let v = a.availability(at("2026-10-25T12:00:00Z"));
        assert_eq!(v.next_open, Some(at("2026-10-26T08:00:00Z")));
    }
}
