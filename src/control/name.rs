//! The name a child's core keeps: its own, or its own with a suffix when a
//! sibling has that (`Idle-4711`), kept without an allocation when short.

use std::borrow::Cow;
use std::fmt;

/// Names of up to this many bytes live inside their [`ChildName`], without
/// an allocation of their own: with the one-byte tag and the length, the
/// name takes the 24 bytes that a `Cow<'static, str>` took.
const INLINE: usize = 22;

/// A child's name, as its core keeps it: borrowed for the `&'static str`
/// that most processes' own names are, inline when it is short (`Idle-4711`,
/// the name of a repeated default name, and most names made at run time),
/// else owned. A manager of many children of one type holds one name per
/// child; inline, none of them is an allocation.
#[derive(Clone)]
pub(crate) enum ChildName {
    Borrowed(&'static str),
    Inline(InlineName),
    Owned(Box<str>),
}

/// A name of at most [`INLINE`] bytes.
#[derive(Clone, Copy)]
pub(crate) struct InlineName {
    length: u8,
    bytes: [u8; INLINE],
}

impl InlineName {
    /// `None` if `parts` together are longer than [`INLINE`] bytes.
    fn new(parts: &[&[u8]]) -> Option<InlineName> {
        let mut name = InlineName {
            length: 0,
            bytes: [0; INLINE],
        };
        for part in parts {
            let start = usize::from(name.length);
            let end = start + part.len();
            name.bytes.get_mut(start..end)?.copy_from_slice(part);
            name.length = u8::try_from(end).ok()?;
        }
        Some(name)
    }

    fn as_str(&self) -> &str {
        // Always valid: the bytes are whole strings and ASCII digits, put
        // together. The check is what reading them costs without `unsafe`;
        // for a name this short it is a few instructions.
        std::str::from_utf8(&self.bytes[..usize::from(self.length)]).unwrap_or_default()
    }
}

impl ChildName {
    /// The name's bytes, without the check that reading an inline name as
    /// a `str` costs: what the name map hashes and compares.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            ChildName::Borrowed(name) => name.as_bytes(),
            ChildName::Inline(name) => &name.bytes[..usize::from(name.length)],
            ChildName::Owned(name) => name.as_bytes(),
        }
    }

    /// Where a `'static` name lies and how long it is: two such names at
    /// the same place with the same length are the same name.
    pub(crate) fn static_place(&self) -> Option<(usize, usize)> {
        match self {
            ChildName::Borrowed(name) => Some((name.as_ptr().addr(), name.len())),
            ChildName::Inline(_) | ChildName::Owned(_) => None,
        }
    }

    /// The name as a `Cow`, for the rare paths that hand it to the user
    /// (an insert refused) or take it as one again.
    pub(crate) fn into_string(self) -> String {
        match self {
            ChildName::Borrowed(name) => name.to_owned(),
            ChildName::Inline(name) => name.as_str().to_owned(),
            ChildName::Owned(name) => name.into_string(),
        }
    }
}

impl From<Cow<'static, str>> for ChildName {
    fn from(name: Cow<'static, str>) -> Self {
        match name {
            Cow::Borrowed(name) => ChildName::Borrowed(name),
            // A short name made at run time is kept inline: its string is
            // given back now rather than held for the child's life.
            Cow::Owned(name) => match InlineName::new(&[name.as_bytes()]) {
                Some(inline) => ChildName::Inline(inline),
                None => ChildName::Owned(name.into_boxed_str()),
            },
        }
    }
}

impl std::ops::Deref for ChildName {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            ChildName::Borrowed(name) => name,
            ChildName::Inline(name) => name.as_str(),
            ChildName::Owned(name) => name,
        }
    }
}

impl fmt::Display for ChildName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

impl fmt::Debug for ChildName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// `name-number`, or `name-number-extra` with an `extra` above 1: the name
/// of a child whose own name a sibling has. Written by hand: `format!` costs
/// several times as much, and a manager of many children of one type makes
/// one for nearly every child.
pub(crate) fn suffixed(name: &str, number: u64, extra: u32) -> ChildName {
    let mut number_text = [0; 21];
    let number = dashed_decimal(number, &mut number_text);
    let mut extra_text = [0; 21];
    let extra = if extra > 1 {
        dashed_decimal(u64::from(extra), &mut extra_text)
    } else {
        &[]
    };
    if let Some(inline) = InlineName::new(&[name.as_bytes(), number, extra]) {
        return ChildName::Inline(inline);
    }
    // Sized exactly: the string lives as long as its child.
    let mut text = String::with_capacity(name.len() + number.len() + extra.len());
    text.push_str(name);
    for part in [number, extra] {
        // Both are `-` and ASCII digits.
        text.push_str(std::str::from_utf8(part).unwrap_or_default());
    }
    ChildName::Owned(text.into_boxed_str())
}

/// Writes `-` and `number` in decimal at the end of `buffer`, and returns
/// what it wrote.
fn dashed_decimal(mut number: u64, buffer: &mut [u8; 21]) -> &[u8] {
    let mut start = buffer.len();
    loop {
        start -= 1;
        // Below 10: a `u64` remainder.
        buffer[start] = b'0' + (number % 10) as u8;
        number /= 10;
        if number == 0 {
            break;
        }
    }
    start -= 1;
    buffer[start] = b'-';
    &buffer[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_inline(name: &ChildName) -> bool {
        matches!(name, ChildName::Inline(_))
    }

    /// Only a `'static` name has a place to be remembered by: where it
    /// lies and how long it is.
    #[test]
    fn only_a_static_name_has_a_place() {
        let text: &'static str = "worker";
        let borrowed = ChildName::from(Cow::Borrowed(text));
        assert_eq!(
            borrowed.static_place(),
            Some((text.as_ptr().addr(), text.len()))
        );
        let inline = ChildName::from(Cow::Owned::<str>(text.to_owned()));
        assert!(is_inline(&inline));
        assert_eq!(inline.static_place(), None);
        let owned = ChildName::from(Cow::Owned::<str>("w".repeat(40)));
        assert!(matches!(owned, ChildName::Owned(_)));
        assert_eq!(owned.static_place(), None);
    }

    #[test]
    fn a_suffixed_name_is_the_name_a_dash_and_the_number() {
        let cases = [
            ("w", 0, 1, "w-0"),
            ("w", 0, 0, "w-0"),
            ("Idle", 4711, 1, "Idle-4711"),
            ("Idle", 4711, 2, "Idle-4711-2"),
            ("Idle", 4711, 10, "Idle-4711-10"),
            ("Idle", 9, 1, "Idle-9"),
            ("Idle", 10, 99, "Idle-10-99"),
            ("Idle", 999_999, 100, "Idle-999999-100"),
            ("ünïcode", 7, 1, "ünïcode-7"),
            ("x", u64::MAX, u32::MAX, "x-18446744073709551615-4294967295"),
        ];
        for (name, number, extra, expected) in cases {
            let suffixed = suffixed(name, number, extra);
            assert_eq!(&*suffixed, expected);
            assert_eq!(is_inline(&suffixed), expected.len() <= INLINE, "{expected}");
        }
    }

    /// A name exactly as long as fits inline is inline; one byte more is
    /// owned, at its exact length. Both read back whole.
    #[test]
    fn names_up_to_the_inline_length_take_no_allocation() {
        let fits = "a".repeat(INLINE - 2);
        let at_limit = suffixed(&fits, 7, 1);
        assert_eq!(at_limit.len(), INLINE);
        assert!(is_inline(&at_limit));
        assert_eq!(&*at_limit, format!("{fits}-7"));

        let over = suffixed(&fits, 77, 1);
        assert_eq!(&*over, format!("{fits}-77"));
        let ChildName::Owned(owned) = &over else {
            panic!("a name of {} bytes is not inline", over.len());
        };
        assert_eq!(owned.len(), INLINE + 1);

        // With a second suffix past the limit, too.
        let long = suffixed(&fits, 7, 3);
        assert_eq!(&*long, format!("{fits}-7-3"));
        assert!(!is_inline(&long));
    }

    #[test]
    fn a_name_from_a_cow_keeps_its_text() {
        let borrowed = ChildName::from(Cow::Borrowed("worker"));
        assert!(matches!(borrowed, ChildName::Borrowed("worker")));

        let short = ChildName::from(Cow::Owned(String::from("wörker-1")));
        assert!(is_inline(&short));
        assert_eq!(&*short, "wörker-1");

        let empty = ChildName::from(Cow::Owned(String::new()));
        assert!(is_inline(&empty));
        assert_eq!(&*empty, "");

        let text = "a long name made at run time, past the inline length";
        let long = ChildName::from(Cow::Owned(text.to_owned()));
        assert!(matches!(long, ChildName::Owned(_)));
        assert_eq!(&*long, text);

        for name in [borrowed, short, empty, long] {
            let text = name.to_string();
            assert_eq!(format!("{name:?}"), format!("{text:?}"));
            assert_eq!(name.as_bytes(), text.as_bytes());
            assert_eq!(name.clone().into_string(), text);
        }
    }

    /// The name takes no more room than the `Cow` it replaced.
    #[test]
    fn a_name_is_three_words() {
        assert_eq!(size_of::<ChildName>(), size_of::<Cow<'static, str>>());
    }
}
