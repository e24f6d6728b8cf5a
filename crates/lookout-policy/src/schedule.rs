//! Time schedules: "during these hours on these days, these categories get this action".

use std::fmt;

use lookout_lists::CategorySet;

use crate::Action;

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

impl Weekday {
    /// All days, Monday first.
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];

    /// Parses `mon`, `Monday`, `tue`, ... (case-insensitive).
    pub fn parse(s: &str) -> Option<Weekday> {
        let s = s.to_ascii_lowercase();
        let names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        let full = [
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
            "sunday",
        ];
        (0..7)
            .find(|&i| s == names[i] || s == full[i])
            .map(|i| Weekday::ALL[i])
    }

    /// Three-letter lower-case name.
    pub fn as_str(self) -> &'static str {
        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][self as usize]
    }

    /// Monday is 0.
    pub fn from_monday0(n: u32) -> Weekday {
        Weekday::ALL[(n % 7) as usize]
    }
}

/// A set of weekdays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct WeekdaySet(u8);

impl WeekdaySet {
    /// Every day.
    pub const ALL: WeekdaySet = WeekdaySet(0x7f);

    /// Adds a day.
    pub fn insert(&mut self, d: Weekday) {
        self.0 |= 1 << d as u8;
    }

    /// Whether the day is in the set.
    pub fn contains(self, d: Weekday) -> bool {
        self.0 & (1 << d as u8) != 0
    }
}

impl FromIterator<Weekday> for WeekdaySet {
    fn from_iter<I: IntoIterator<Item = Weekday>>(iter: I) -> Self {
        let mut s = WeekdaySet::default();
        for d in iter {
            s.insert(d);
        }
        s
    }
}

/// A reading of the local wall clock, supplied by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// The day.
    pub weekday: Weekday,
    /// Minutes since midnight, 0..1440.
    pub minute: u16,
}

impl LocalTime {
    /// Parses `HH:MM` into minutes since midnight; `24:00` is allowed as the end of a day.
    pub fn parse_hhmm(s: &str) -> Option<u16> {
        let (h, m) = s.trim().split_once(':')?;
        if h.is_empty() || h.len() > 2 || m.len() != 2 {
            return None;
        }
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        match (h, m) {
            (24, 0) => Some(1440),
            (0..=23, 0..=59) => Some(h * 60 + m),
            _ => None,
        }
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:02}:{:02}",
            self.weekday.as_str(),
            self.minute / 60,
            self.minute % 60
        )
    }
}

/// During `from..to` on `days`, requests in `categories` get `action`. A window with
/// `from > to` runs past midnight: 22:00–06:00 on `mon` covers Monday from 22:00 and Monday
/// before 06:00 (the day is that of the request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Shown in reasons.
    pub name: String,
    /// Days the window applies on.
    pub days: WeekdaySet,
    /// Start, minutes since midnight (inclusive).
    pub from: u16,
    /// End, minutes since midnight (exclusive); 1440 is midnight at the end of the day.
    pub to: u16,
    /// The action while active.
    pub action: Action,
    /// The categories it applies to.
    pub categories: CategorySet,
}

impl Schedule {
    /// Whether the schedule applies at `at`.
    pub fn is_active(&self, at: LocalTime) -> bool {
        if !self.days.contains(at.weekday) {
            return false;
        }
        if self.from <= self.to {
            (self.from..self.to).contains(&at.minute)
        } else {
            at.minute >= self.from || at.minute < self.to
        }
    }
}
