//! Status URLs: where a `202 Accepted` operation says to look, and whether
//! rebound may go there.
//!
//! A status URL comes from the server, so it is checked like any input from
//! the network: it is resolved against the request's URL (RFC 3986 reference
//! resolution), and refused when it is malformed, uses another scheme than
//! http(s), carries userinfo, downgrades https to http, or points at another
//! origin that the policy does not allow. Pure functions: tested without I/O.

use std::fmt;

use http::Uri;
use http::uri::{Authority, Scheme};

/// Why a status URL was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// Not a URL rebound can parse (or not visible ASCII).
    Malformed,
    /// A scheme other than http and https.
    Scheme,
    /// A URL with `user:password@`.
    Userinfo,
    /// From https to http.
    Downgrade,
    /// Another origin (scheme, host and port), not in `poll.allowed_origins`.
    OtherOrigin(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Malformed => f.write_str("the status url is malformed"),
            Refusal::Scheme => f.write_str("the status url is not http or https"),
            Refusal::Userinfo => f.write_str("the status url carries userinfo"),
            Refusal::Downgrade => f.write_str("the status url downgrades https to http"),
            Refusal::OtherOrigin(origin) => write!(
                f,
                "the status url points at another origin ({origin}), not in poll.allowed_origins"
            ),
        }
    }
}

/// A scheme, host and port: what must match for a URL to be same-origin.
///
/// ```
/// use tower_rebound::poll::{Origin, PollSettings};
///
/// let ops = Origin::parse("https://ops.example").unwrap();
/// assert_eq!(Origin::of(&"https://ops.example:443/jobs/1".parse().unwrap()), Some(ops.clone()));
/// let settings = PollSettings::builder().allowed_origins(vec![ops]).build()?;
/// # let _ = settings;
/// # Ok::<_, tower_rebound::SettingsError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    https: bool,
    host: String,
    port: u16,
}

impl Origin {
    /// The origin of an absolute http(s) URI.
    pub fn of(uri: &Uri) -> Option<Origin> {
        let https = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            _ => return None,
        };
        let host = uri.host()?.to_ascii_lowercase();
        // http or https, so the scheme names its port.
        let port = crate::host_key::port(uri)?;
        Some(Origin { https, host, port })
    }

    /// Parses `scheme://host[:port]` (as written in `poll.allowed_origins`).
    pub fn parse(text: &str) -> Option<Origin> {
        let uri: Uri = text.parse().ok()?;
        let path_ok = matches!(uri.path(), "" | "/") && uri.query().is_none();
        let userinfo = uri.authority().is_some_and(|a| a.as_str().contains('@'));
        if !path_ok || userinfo {
            return None;
        }
        Origin::of(&uri)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// Where a status URL leads: the request's own origin, or another one the
/// policy allows (to which credentials are not sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The same scheme, host and port as the request.
    SameOrigin(Uri),
    /// An allowed other origin.
    OtherOrigin(Uri),
}

impl Target {
    /// The URL.
    pub fn uri(&self) -> &Uri {
        match self {
            Target::SameOrigin(uri) | Target::OtherOrigin(uri) => uri,
        }
    }
}

/// Resolves a status URL against the URL that answered with it, and checks
/// where it leads.
///
/// `answered` is the URL of the response that carried the status URL (RFC
/// 9110 resolves a relative `Location` against it): the request's own URL for
/// the `202`, the status URL for a later poll. Where the result may go is
/// always judged against `request`, the URL of the original request: its
/// origin is the same origin, and an https request never polls over http.
///
/// ```
/// use http::Uri;
/// use tower_rebound::poll::{resolve_status_url, Refusal, Target};
///
/// let request: Uri = "https://api.example/v3/data?x=1".parse().unwrap();
/// let ok = resolve_status_url(&request, &request, b"/v3/ops/7", &[]).unwrap();
/// assert_eq!(ok, Target::SameOrigin("https://api.example/v3/ops/7".parse().unwrap()));
/// // A later answer from the status URL is resolved against that URL.
/// let status: Uri = "https://api.example/v3/ops/7".parse().unwrap();
/// let next = resolve_status_url(&request, &status, b"8", &[]).unwrap();
/// assert_eq!(next.uri(), &"https://api.example/v3/ops/8".parse::<Uri>().unwrap());
/// let evil = resolve_status_url(&request, &request, b"https://evil.example/ops/7", &[]);
/// assert!(matches!(evil, Err(Refusal::OtherOrigin(_))));
/// ```
pub fn resolve_status_url(
    request: &Uri,
    answered: &Uri,
    location: &[u8],
    allowed: &[Origin],
) -> Result<Target, Refusal> {
    let text = std::str::from_utf8(location).map_err(|_| Refusal::Malformed)?;
    let text = text.trim_matches(|c| c == ' ' || c == '\t');
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Refusal::Malformed);
    }
    let request_origin = Origin::of(request).ok_or(Refusal::Malformed)?;
    let answered_origin = Origin::of(answered).ok_or(Refusal::Malformed)?;
    let resolved = resolve(answered, text)?;
    if resolved
        .authority()
        .is_some_and(|a| a.as_str().contains('@'))
    {
        return Err(Refusal::Userinfo);
    }
    let origin = Origin::of(&resolved).ok_or(Refusal::Scheme)?;
    if (request_origin.https || answered_origin.https) && !origin.https {
        return Err(Refusal::Downgrade);
    }
    if origin == request_origin {
        Ok(Target::SameOrigin(resolved))
    } else if allowed.contains(&origin) {
        Ok(Target::OtherOrigin(resolved))
    } else {
        Err(Refusal::OtherOrigin(origin.to_string()))
    }
}

/// RFC 3986 section 5.2: the target of reference `text` from `base`, without
/// its fragment.
fn resolve(base: &Uri, text: &str) -> Result<Uri, Refusal> {
    let text = text.split('#').next().unwrap_or_default();
    if let Some(colon) = text.find(':') {
        let scheme = &text[..colon];
        let is_scheme = scheme.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_alphabetic() || (i > 0 && (b.is_ascii_digit() || b"+-.".contains(&b)))
        });
        if !scheme.is_empty() && is_scheme && !text[..colon].contains('/') {
            let lower = scheme.to_ascii_lowercase();
            if lower != "http" && lower != "https" {
                return Err(Refusal::Scheme);
            }
            let uri: Uri = text.parse().map_err(|_| Refusal::Malformed)?;
            if uri.authority().is_none() {
                return Err(Refusal::Malformed);
            }
            return with_normal_path(uri);
        }
    }
    let scheme = base.scheme().cloned().ok_or(Refusal::Malformed)?;
    if let Some(rest) = text.strip_prefix("//") {
        let uri: Uri = format!("{scheme}://{rest}")
            .parse()
            .map_err(|_| Refusal::Malformed)?;
        return with_normal_path(uri);
    }
    let authority: Authority = base.authority().cloned().ok_or(Refusal::Malformed)?;
    let (path, query) = match text.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (text, None),
    };
    let path = if path.is_empty() {
        base.path().to_owned()
    } else if path.starts_with('/') {
        path.to_owned()
    } else {
        // Merge with the base path's directory.
        let base_path = base.path();
        let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        let dir = if dir.is_empty() { "/" } else { dir };
        format!("{dir}{path}")
    };
    let query = match (query, text.is_empty()) {
        (Some(q), _) => Some(q.to_owned()),
        (None, true) => base.query().map(str::to_owned),
        (None, false) => None,
    };
    let mut full = format!("{scheme}://{authority}{}", remove_dot_segments(&path));
    if let Some(query) = query {
        full.push('?');
        full.push_str(&query);
    }
    full.parse().map_err(|_| Refusal::Malformed)
}

fn with_normal_path(uri: Uri) -> Result<Uri, Refusal> {
    let path = remove_dot_segments(uri.path());
    if path == uri.path() {
        return Ok(uri);
    }
    let mut parts = uri.into_parts();
    let query = parts
        .path_and_query
        .as_ref()
        .and_then(|p| p.query())
        .map(str::to_owned);
    let path_and_query = match query {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    parts.path_and_query = Some(path_and_query.parse().map_err(|_| Refusal::Malformed)?);
    Uri::from_parts(parts).map_err(|_| Refusal::Malformed)
}

/// RFC 3986 section 5.2.4: `.` and `..` segments removed; empty segments
/// (`/a//b`) are segments like any other and stay.
fn remove_dot_segments(path: &str) -> String {
    let mut input = path;
    let mut output = String::with_capacity(path.len() + 1);
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../") {
            input = rest;
        } else if let Some(rest) = input.strip_prefix("./") {
            input = rest;
        } else if input.starts_with("/./") {
            input = &input[2..];
        } else if input == "/." {
            input = "/";
        } else if input.starts_with("/../") {
            input = &input[3..];
            output.truncate(output.rfind('/').unwrap_or(0));
        } else if input == "/.." {
            input = "/";
            output.truncate(output.rfind('/').unwrap_or(0));
        } else if input == "." || input == ".." {
            input = "";
        } else {
            // The first segment, with its leading `/`, up to the next `/`.
            let end = input
                .bytes()
                .skip(1)
                .position(|b| b == b'/')
                .map_or(input.len(), |i| i + 1);
            output.push_str(&input[..end]);
            input = &input[end..];
        }
    }
    // A path of an http(s) URL with an authority is empty or starts with `/`.
    if !output.starts_with('/') {
        output.insert(0, '/');
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Uri {
        "https://api.example:8443/v3/devices/7/data?page=2"
            .parse()
            .unwrap()
    }

    fn ok(location: &str) -> String {
        match resolve_status_url(&base(), &base(), location.as_bytes(), &[]) {
            Ok(Target::SameOrigin(uri)) => uri.to_string(),
            other => panic!("{location:?}: {other:?}"),
        }
    }

    fn refused(location: &[u8]) -> Refusal {
        resolve_status_url(&base(), &base(), location, &[])
            .expect_err(&String::from_utf8_lossy(location))
    }

    #[test]
    fn relative_references_resolve_against_the_request() {
        assert_eq!(ok("/v3/ops/1"), "https://api.example:8443/v3/ops/1");
        assert_eq!(ok("ops/1"), "https://api.example:8443/v3/devices/7/ops/1");
        assert_eq!(
            ok("../ops/1?wait=1"),
            "https://api.example:8443/v3/devices/ops/1?wait=1"
        );
        assert_eq!(
            ok("./x/./y/../z"),
            "https://api.example:8443/v3/devices/7/x/z"
        );
        assert_eq!(ok("/a/b/../../../../c"), "https://api.example:8443/c");
        assert_eq!(
            ok("?page=3"),
            "https://api.example:8443/v3/devices/7/data?page=3"
        );
        assert_eq!(ok("/ops/1#fragment"), "https://api.example:8443/ops/1");
        assert_eq!(ok("  /ops/1\t"), "https://api.example:8443/ops/1");
    }

    #[test]
    fn empty_segments_are_kept_as_rfc_3986_says() {
        assert_eq!(ok("/a//b"), "https://api.example:8443/a//b");
        assert_eq!(ok("/a//b/../c"), "https://api.example:8443/a//c");
        assert_eq!(ok("x//"), "https://api.example:8443/v3/devices/7/x//");
        assert_eq!(ok("..//x"), "https://api.example:8443/v3/devices//x");
        assert_eq!(ok("/a/b/.."), "https://api.example:8443/a/");
        assert_eq!(ok("/a/."), "https://api.example:8443/a/");
        assert_eq!(ok("/.."), "https://api.example:8443/");
        assert_eq!(
            ok("https://api.example:8443//ops//1/./"),
            "https://api.example:8443//ops//1/"
        );
    }

    #[test]
    fn absolute_same_origin_urls_are_followed() {
        assert_eq!(
            ok("https://api.example:8443/ops/1"),
            "https://api.example:8443/ops/1"
        );
        assert_eq!(
            ok("HTTPS://API.EXAMPLE:8443/ops/1"),
            "https://API.EXAMPLE:8443/ops/1"
        );
        assert_eq!(
            ok("//api.example:8443/ops/1"),
            "https://api.example:8443/ops/1"
        );
        let plain: Uri = "http://api.example/x".parse().unwrap();
        let same_port =
            resolve_status_url(&plain, &plain, b"http://api.example:80/ops", &[]).unwrap();
        assert!(matches!(same_port, Target::SameOrigin(_)));
    }

    #[test]
    fn other_hosts_ports_and_schemes_are_refused() {
        assert!(
            matches!(refused(b"https://evil.example:8443/ops"), Refusal::OtherOrigin(o) if o == "https://evil.example:8443")
        );
        assert!(
            matches!(refused(b"https://api.example/ops"), Refusal::OtherOrigin(_)),
            "other port"
        );
        assert!(matches!(
            refused(b"//evil.example/ops"),
            Refusal::OtherOrigin(_)
        ));
        assert_eq!(refused(b"http://api.example:8443/ops"), Refusal::Downgrade);
        assert_eq!(refused(b"javascript:alert(1)"), Refusal::Scheme);
        assert_eq!(refused(b"file:///etc/passwd"), Refusal::Scheme);
        assert_eq!(refused(b"ftp://api.example/x"), Refusal::Scheme);
        assert_eq!(
            refused(b"https://user:pw@api.example:8443/ops"),
            Refusal::Userinfo
        );
        assert_eq!(refused(b"//user@api.example:8443/ops"), Refusal::Userinfo);
    }

    #[test]
    fn garbage_is_malformed() {
        for bad in [
            &b""[..],
            b"   ",
            b"/ops/1\r\nX-Injected: 1",
            b"/ops/ 1",
            b"https://",
            b"https:///ops",
            b"http://[::1/ops",
            b"\xff\xfe",
            "https://bücher.example/ops".as_bytes(),
        ] {
            let refusal = resolve_status_url(&base(), &base(), bad, &[]);
            assert!(
                matches!(refusal, Err(Refusal::Malformed) | Err(Refusal::Scheme)),
                "{:?}: {refusal:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn ipv6_and_punycode_hosts() {
        let v6: Uri = "http://[::1]:8080/write".parse().unwrap();
        let target = resolve_status_url(&v6, &v6, b"/ops/1", &[]).unwrap();
        assert_eq!(target.uri().to_string(), "http://[::1]:8080/ops/1");
        let target = resolve_status_url(&v6, &v6, b"http://[::1]:8080/ops/2", &[]).unwrap();
        assert!(matches!(target, Target::SameOrigin(_)));
        assert!(matches!(
            resolve_status_url(&v6, &v6, b"http://[::2]:8080/ops", &[]),
            Err(Refusal::OtherOrigin(_))
        ));
        let idn: Uri = "https://xn--bcher-kva.example/w".parse().unwrap();
        assert!(matches!(
            resolve_status_url(&idn, &idn, b"https://XN--BCHER-KVA.example/ops", &[]),
            Ok(Target::SameOrigin(_))
        ));
    }

    #[test]
    fn allowed_origins_are_followed_but_never_downgraded() {
        let allowed = [Origin::parse("https://ops.example").unwrap()];
        let target =
            resolve_status_url(&base(), &base(), b"https://ops.example/status/1", &allowed)
                .unwrap();
        assert!(matches!(target, Target::OtherOrigin(_)));
        let downgrade = [Origin::parse("http://ops.example").unwrap()];
        assert_eq!(
            resolve_status_url(&base(), &base(), b"http://ops.example/status/1", &downgrade),
            Err(Refusal::Downgrade)
        );
    }

    #[test]
    fn later_answers_resolve_against_the_url_that_answered() {
        let request = base();
        let status: Uri = "https://api.example:8443/v3/ops/41/status".parse().unwrap();
        let next = resolve_status_url(&request, &status, b"../42/status", &[]).unwrap();
        assert_eq!(
            next,
            Target::SameOrigin("https://api.example:8443/v3/ops/42/status".parse().unwrap())
        );
        // Relative to an allowed other origin, the result stays there and is
        // still another origin: no credentials go with it.
        let allowed = [Origin::parse("https://ops.example").unwrap()];
        let other: Uri = "https://ops.example/jobs/1".parse().unwrap();
        let next = resolve_status_url(&request, &other, b"/jobs/2", &allowed).unwrap();
        assert_eq!(
            next,
            Target::OtherOrigin("https://ops.example/jobs/2".parse().unwrap())
        );
        // The origin checks apply to the result as before.
        assert!(matches!(
            resolve_status_url(&request, &other, b"/jobs/2", &[]),
            Err(Refusal::OtherOrigin(_))
        ));
        assert_eq!(
            resolve_status_url(&request, &status, b"http://api.example:8443/x", &[]),
            Err(Refusal::Downgrade)
        );
        assert_eq!(
            resolve_status_url(&request, &status, b"//u:p@api.example:8443/x", &[]),
            Err(Refusal::Userinfo)
        );
    }

    #[test]
    fn origins_parse_strictly() {
        assert_eq!(
            Origin::parse("https://Ops.Example").unwrap().to_string(),
            "https://ops.example:443"
        );
        assert_eq!(
            Origin::parse("http://ops.example:8080/")
                .unwrap()
                .to_string(),
            "http://ops.example:8080"
        );
        for bad in [
            "ops.example",
            "ftp://ops.example",
            "https://ops.example/path",
            "https://u@ops.example",
            "https://ops.example?q",
        ] {
            assert!(Origin::parse(bad).is_none(), "{bad}");
        }
    }
}
