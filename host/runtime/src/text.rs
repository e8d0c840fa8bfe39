//! Small text helpers for strings that come out of plugins.

/// Shortens `text` to at most `bytes_max` bytes without splitting a
/// character.
pub(crate) fn truncate_utf8(text: &mut String, bytes_max: usize) {
    if text.len() <= bytes_max {
        return;
    }
    let mut end = bytes_max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
}

/// `text` cut to `bytes_max` bytes with control characters (newlines,
/// escapes) replaced by spaces, so a plugin cannot forge log lines or
/// terminal sequences in the host's output.
pub(crate) fn sanitize_for_log(mut text: String, bytes_max: usize) -> String {
    truncate_utf8(&mut text, bytes_max);
    if text.chars().any(char::is_control) {
        text = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_never_splits_a_character() {
        let mut text = String::from("价格价格");
        truncate_utf8(&mut text, 4);
        assert_eq!(text, "价");
        let mut short = String::from("ok");
        truncate_utf8(&mut short, 4);
        assert_eq!(short, "ok");
    }

    #[test]
    fn log_text_loses_its_control_characters() {
        assert_eq!(sanitize_for_log("a\nb\u{1b}[2J".into(), 64), "a b [2J");
    }
}
