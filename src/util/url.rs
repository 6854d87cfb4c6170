//! [`redact_url`]: a URL as it may be printed, without a password or user name.

/// `url` with any `user[:password]@` userinfo replaced by `***@`, for logs, banners and
/// errors. A string that is not `scheme://…` is returned unchanged.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rfind('@') {
        Some(at) => format!("{scheme}://***@{}{tail}", &authority[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn userinfo_never_survives() {
        assert_eq!(
            redact_url("http://u:p@host:8080/api?x=1"),
            "http://***@host:8080/api?x=1"
        );
        assert_eq!(redact_url("http://host/a@b"), "http://host/a@b");
        assert_eq!(redact_url("host:1"), "host:1");
    }
}
