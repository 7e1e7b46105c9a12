//! Text for a terminal: what a remote peer chose (its identify agent and protocol version, the
//! protocols it lists, an introduction's detail, a relay's or a dial's reason) goes through
//! [`escape`] before the human output prints it, so that a peer cannot clear the screen, retitle
//! the window, move the cursor or fake a line of output in the terminal of whoever runs
//! `peerfind status`, `peers` or `watch`. The JSON output needs none of this: serde escapes
//! every control character a string holds.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with every character a terminal would act on rather than show written out as an
/// escape: the C0 controls (ESC, BEL, backspace, …; `\n`, `\r` and `\t` by those names), DEL
/// and the C1 controls (CSI, OSC, … as one character), the line and paragraph separators, and
/// the bidirectional marks, embeddings, overrides and isolates that reorder what is shown
/// (Trojan Source). Each becomes `\u{…}` with its code point in hex; a backslash becomes `\\`,
/// so every escape in the output stands for one character of the text. Text with none of these
/// is returned as it is.
pub(crate) fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '\n' => out.push_str(r"\n"),
            '\r' => out.push_str(r"\r"),
            '\t' => out.push_str(r"\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    // `is_control` is Unicode's Cc: C0 (U+0000–U+001F), DEL (U+007F), C1 (U+0080–U+009F).
    c == '\\'
        || c.is_control()
        || matches!(
            c,
            '\u{061c}' // Arabic letter mark
                | '\u{200e}'..='\u{200f}' // left-to-right and right-to-left marks
                | '\u{2028}'..='\u{2029}' // line and paragraph separators
                | '\u{202a}'..='\u{202e}' // embeddings and overrides
                | '\u{2066}'..='\u{2069}' // isolates
        )
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn plain_text_comes_back_as_it_is_without_a_copy() {
        for text in [
            "peerfind/0.1.0",
            "js-libp2p/3.3.11 UserAgent=v22",
            "héllo 🦀 ünïcode",
            "",
        ] {
            assert!(matches!(escape(text), std::borrow::Cow::Borrowed(t) if t == text));
        }
    }

    #[test]
    fn escape_sequences_bel_and_other_c0_controls_are_written_out() {
        assert_eq!(
            escape("evil \x1b[2J\x1b]0;pwned\x07"),
            r"evil \u{1b}[2J\u{1b}]0;pwned\u{7}"
        );
        assert_eq!(escape("a\nb\rc\td\0e\x08"), r"a\nb\rc\td\u{0}e\u{8}");
    }

    #[test]
    fn del_and_c1_controls_are_written_out() {
        // U+009B is CSI on its own, U+009D OSC: terminals act on them like ESC [ and ESC ].
        assert_eq!(
            escape("x\u{7f}y\u{9b}2Jz\u{9d}0;t\u{9c}"),
            r"x\u{7f}y\u{9b}2Jz\u{9d}0;t\u{9c}"
        );
        assert_eq!(escape("\u{80}\u{9f}"), r"\u{80}\u{9f}");
        assert_eq!(
            escape("\u{a0}"),
            "\u{a0}",
            "no-break space is shown, not acted on"
        );
    }

    #[test]
    fn bidi_overrides_and_line_separators_are_written_out() {
        assert_eq!(escape("abc\u{202e}fed"), r"abc\u{202e}fed");
        assert_eq!(escape("\u{2066}x\u{2069}"), r"\u{2066}x\u{2069}");
        assert_eq!(escape("one\u{2028}two"), r"one\u{2028}two");
    }

    #[test]
    fn a_backslash_is_doubled_so_an_escape_cannot_be_faked() {
        assert_eq!(escape(r"C:\peer"), r"C:\\peer");
        assert_eq!(escape(r"\u{1b}"), r"\\u{1b}");
        assert_ne!(escape("\x1b"), escape(r"\u{1b}"));
    }

    #[test]
    fn nothing_a_terminal_acts_on_survives_any_char() {
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            let s = c.to_string();
            let out = escape(&s);
            assert!(
                !out.chars().any(|o| o.is_control()),
                "U+{:04X} left a control character",
                u32::from(c)
            );
        }
    }
}
