//! Rows in `COPY ... FROM STDIN` text format.

/// Appends one row in COPY's text format: tab-separated, `\N` for NULL, and backslash, tab,
/// newline and carriage return escaped (values are arbitrary text from the message).
pub(crate) fn push_copy_line(out: &mut Vec<u8>, values: &[Option<String>]) {
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        let Some(text) = value else {
            out.extend_from_slice(b"\\N");
            continue;
        };
        for &b in text.as_bytes() {
            match b {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                _ => out.push(b),
            }
        }
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::push_copy_line;

    #[test]
    fn copy_lines_escape_what_copy_would_misread() {
        let mut out = Vec::new();
        push_copy_line(
            &mut out,
            &[Some("a\tb\nc\rd\\e\\.".into()), None, Some(String::new()), Some("k1.x-Y_z".into())],
        );
        assert_eq!(out, b"a\\tb\\nc\\rd\\\\e\\\\.\t\\N\t\tk1.x-Y_z\n");
    }
}
