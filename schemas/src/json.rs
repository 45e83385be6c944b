//! Entries as JSON lines, the way streamtier shows them outside Parquet (the entries route and
//! `streamtier read`): `{"id": "1700000000000-0", "fields": [["name", "value"], …]}`, one entry
//! a line, fields in the entry's order, repeated names kept, and a name or value that is not
//! UTF-8 written as `{"base64": "…"}` (standard alphabet, padded).

use base64::Engine;

use crate::entry::Entry;

/// Appends `bytes` as a JSON string, or as `{"base64": "…"}` when they are not UTF-8.
pub fn bytes_json(bytes: &[u8], out: &mut Vec<u8>) {
    match std::str::from_utf8(bytes) {
        Ok(text) => string_json(text, out),
        Err(_) => {
            out.extend_from_slice(b"{\"base64\":\"");
            out.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(bytes).as_bytes());
            out.extend_from_slice(b"\"}");
        }
    }
}

fn string_json(text: &str, out: &mut Vec<u8>) {
    // A `&str` always serializes.
    serde_json::to_writer(&mut *out, text).expect("a string serializes");
}

/// Appends `entry` as one JSON line (with its `\n`).
pub fn entry_json_line(entry: &Entry, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"id\":\"");
    out.extend_from_slice(entry.id.to_string().as_bytes());
    out.extend_from_slice(b"\",\"fields\":[");
    for (i, (name, value)) in entry.fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        bytes_json(name, out);
        out.push(b',');
        bytes_json(value, out);
        out.push(b']');
    }
    out.extend_from_slice(b"]}\n");
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::id::StreamId;

    #[test]
    fn lines_keep_order_repeats_and_binary() {
        let e = Entry::new(
            StreamId::new(1_700_000_000_000, 3),
            vec![
                (Bytes::from_static(b"n"), Bytes::from_static(b"say \"hi\"\n")),
                (Bytes::from_static(b"n"), Bytes::from_static(&[0xff, 0x00, b'a'])),
                (Bytes::new(), Bytes::new()),
            ],
        );
        let mut out = Vec::new();
        entry_json_line(&e, &mut out);
        let line = String::from_utf8(out).unwrap();
        assert_eq!(
            line,
            "{\"id\":\"1700000000000-3\",\"fields\":[[\"n\",\"say \\\"hi\\\"\\n\"],[\"n\",{\"base64\":\"/wBh\"}],[\"\",\"\"]]}\n"
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["fields"][0][1], "say \"hi\"\n");
    }
}
