//! JSON string escaping, as `serde_json` writes it: `"`, `\` and the
//! control characters, the short escapes where JSON has them, `\u00XX` for
//! the rest; everything else, non-ASCII included, as it is. Templates use it
//! for placeholders inside strings, and weir's compiled rules use the same
//! function (through `weir-rules-runtime`), so the two cannot differ.

/// For each byte: 0 if it stands for itself in a JSON string, else the
/// letter of its short escape, or `u` for `\u00XX`.
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x0c] = b'f';
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[b'\t' as usize] = b't';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Appends `s` JSON-escaped, without surrounding quotes.
pub fn escape_into(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if bytes.len() > 4096 {
        escape_long(out, bytes);
        return;
    }
    // Short strings (topics, ids, most payloads) are written byte by byte
    // into room made once: in wasm every `memcpy` of a run between two
    // escapes would be a `memory.copy` call out of the module, which costs
    // more than copying a few bytes by hand.
    let start = out.len();
    out.resize(start + bytes.len() * 6, 0);
    let mut j = start;
    for &b in bytes {
        let esc = ESCAPE[usize::from(b)];
        if esc == 0 {
            out[j] = b;
            j += 1;
        } else if esc == b'u' {
            out[j..j + 6].copy_from_slice(&unicode_escape(b));
            j += 6;
        } else {
            out[j] = b'\\';
            out[j + 1] = esc;
            j += 2;
        }
    }
    out.truncate(j);
}

fn unicode_escape(b: u8) -> [u8; 6] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    [
        b'\\',
        b'u',
        b'0',
        b'0',
        HEX[usize::from(b >> 4)],
        HEX[usize::from(b & 0xF)],
    ]
}

/// Long strings: copy the runs between escapes in bulk.
fn escape_long(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc = ESCAPE[usize::from(b)];
        if esc == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        if esc == b'u' {
            out.extend_from_slice(&unicode_escape(b));
        } else {
            out.extend_from_slice(&[b'\\', esc]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::escape_into;

    #[test]
    fn escapes_as_serde_json_does_short_and_long() {
        let sample = "a\"b\\c\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f}é/😀 ";
        for text in [sample.to_owned(), sample.repeat(400)] {
            let mut out = vec![b'"'];
            escape_into(&mut out, &text);
            out.push(b'"');
            assert_eq!(
                String::from_utf8(out).expect("UTF-8"),
                serde_json::to_string(&text).expect("JSON"),
                "{} bytes",
                text.len()
            );
        }
    }
}
