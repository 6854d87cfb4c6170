//! A minimal `multipart/form-data` parser for the upload endpoint: finds the parts, their
//! form names and content types. Bodies are fully buffered already, so this works on slices.

/// One part of a multipart body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Part<'a> {
    /// The `name` parameter of `Content-Disposition`.
    pub name: Option<String>,
    /// The part's `Content-Type` header.
    pub content_type: Option<String>,
    /// The part's content.
    pub data: &'a [u8],
}

/// Why a multipart body could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum MultipartError {
    /// The content type has no `boundary` parameter.
    #[error("multipart content type has no boundary")]
    NoBoundary,
    /// The body does not follow the multipart framing.
    #[error("malformed multipart body")]
    Malformed,
}

/// The `boundary` parameter of a `multipart/form-data` content type.
pub(crate) fn boundary(content_type: &str) -> Result<String, MultipartError> {
    content_type
        .split(';')
        .skip(1)
        .filter_map(|param| param.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| value.trim().trim_matches('"').to_string())
        .filter(|value| !value.is_empty())
        .ok_or(MultipartError::NoBoundary)
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > haystack.len() {
        return None;
    }
    haystack[from..]
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|at| at + from)
}

/// Finds the next delimiter at or after `from`. Like Go's `mime/multipart` (which lakeFS
/// uses), a candidate counts only when followed by `--`, a space, tab, CR, LF or the end of
/// the body: `--BOUNDARYX` inside the data is data.
fn find_delimiter(haystack: &[u8], delimiter: &[u8], from: usize) -> Option<usize> {
    let mut from = from;
    loop {
        let at = find(haystack, delimiter, from)?;
        match haystack.get(at + delimiter.len()..).unwrap_or_default() {
            [] | [b' ' | b'\t' | b'\r' | b'\n', ..] | [b'-', b'-', ..] => return Some(at),
            _ => from = at + 1,
        }
    }
}

/// Splits a multipart body into parts.
pub(crate) fn parse<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, MultipartError> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let next_delimiter = format!("\r\n--{boundary}");
    let next_delimiter = next_delimiter.as_bytes();
    let mut at =
        find_delimiter(body, delimiter, 0).ok_or(MultipartError::Malformed)? + delimiter.len();
    let mut parts = Vec::new();
    loop {
        let rest = body.get(at..).ok_or(MultipartError::Malformed)?;
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        // Transport padding (spaces, tabs) may follow a delimiter before its CRLF.
        let padding = rest
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count();
        if !rest[padding..].starts_with(b"\r\n") {
            return Err(MultipartError::Malformed);
        }
        let headers_start = at + padding + 2;
        // A part may have no headers at all: its header block is just the blank line.
        let (headers_end, data_start) = if body[headers_start..].starts_with(b"\r\n") {
            (headers_start, headers_start + 2)
        } else {
            let end = find(body, b"\r\n\r\n", headers_start).ok_or(MultipartError::Malformed)?;
            (end, end + 4)
        };
        let headers = std::str::from_utf8(&body[headers_start..headers_end])
            .map_err(|_| MultipartError::Malformed)?;
        let data_end =
            find_delimiter(body, next_delimiter, data_start).ok_or(MultipartError::Malformed)?;
        let mut part = Part {
            name: None,
            content_type: None,
            data: &body[data_start..data_end],
        };
        for line in headers.split("\r\n") {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("content-type") {
                part.content_type = Some(value.trim().to_string());
            } else if name.trim().eq_ignore_ascii_case("content-disposition") {
                part.name = value
                    .split(';')
                    .skip(1)
                    .filter_map(|param| param.split_once('='))
                    .find(|(key, _)| key.trim() == "name")
                    .map(|(_, value)| value.trim().trim_matches('"').to_string());
            }
        }
        parts.push(part);
        at = data_end + next_delimiter.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_parts_with_names_and_types() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nignored\r\n--XyZ\r\nContent-Disposition: form-data; name=\"content\"; filename=\"f.txt\"\r\nContent-Type: text/plain\r\n\r\nline1\r\nline2\r\n--XyZ--\r\n";
        let parts = parse(body, "XyZ").expect("parse");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name.as_deref(), Some("other"));
        assert_eq!(parts[1].name.as_deref(), Some("content"));
        assert_eq!(parts[1].content_type.as_deref(), Some("text/plain"));
        assert_eq!(parts[1].data, b"line1\r\nline2");
    }

    #[test]
    fn boundary_and_malformed_bodies() {
        assert_eq!(
            boundary("multipart/form-data; boundary=\"a b\"").as_deref(),
            Ok("a b")
        );
        assert_eq!(
            boundary("multipart/form-data"),
            Err(MultipartError::NoBoundary)
        );
        for bad in [
            &b""[..],
            b"--b\r\nno end",
            b"--b\r\nA: b\r\n\r\ndata",
            b"--bxx",
        ] {
            assert_eq!(parse(bad, "b"), Err(MultipartError::Malformed), "{bad:?}");
        }
        assert_eq!(parse(b"--b--\r\n", "b"), Ok(Vec::new()));
    }

    #[test]
    fn boundary_lookalikes_padding_and_headerless_parts() {
        // `--b` followed by anything but `--` or whitespace is data, as in Go's reader.
        let body = b"--b \t\r\nContent-Disposition: form-data; name=\"content\"\r\n\r\nx\r\n--bb\r\n--b-y\r\n--b\r\n\r\nheaderless\r\n--b--";
        let parts = parse(body, "b").expect("parse");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name.as_deref(), Some("content"));
        assert_eq!(parts[0].data, b"x\r\n--bb\r\n--b-y");
        assert_eq!(parts[1].name, None);
        assert_eq!(parts[1].data, b"headerless");
    }
}
