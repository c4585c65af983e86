//! A request's scheme, host and port, worked out in one place: the key of
//! its host, shared by the breakers (one per host) and the rate limit (one
//! limit per host), and the port that spans, events and the status URL's
//! origin check name.

use http::Uri;

/// How many hosts are kept apart by default: breakers per registry, and
/// the hosts a metrics listener names before the rest share `_other`.
pub(crate) const DEFAULT_MAX_HOSTS: usize = 1024;

/// The port a request goes to: the URI's own, or its scheme's (80 for
/// http, 443 for https); `None` for another scheme that names none.
pub(crate) fn port(uri: &Uri) -> Option<u16> {
    uri.port_u16().or_else(|| default_port(uri.scheme_str()?))
}

/// The port of `scheme` when a URI names none.
pub(crate) fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    }
}

/// The host key of a request: `scheme://host:port`, the host in lower case
/// and the port made explicit. Never the path, the query or userinfo.
pub(crate) fn write_key(uri: &Uri, out: &mut impl std::fmt::Write) -> std::fmt::Result {
    let Some(host) = uri.host() else {
        // A relative URI names no host: such calls share one breaker.
        return out.write_str("(no host)");
    };
    // A URI with a host and no scheme is taken as http, as a client does.
    let scheme = uri.scheme_str().unwrap_or("http");
    let port = uri.port_u16().or_else(|| default_port(scheme));
    out.write_str(scheme)?;
    out.write_str("://")?;
    for c in host.chars() {
        out.write_char(c.to_ascii_lowercase())?;
    }
    if let Some(port) = port {
        write!(out, ":{port}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(uri: &str) -> String {
        let mut out = String::new();
        write_key(&uri.parse().unwrap(), &mut out).unwrap();
        out
    }

    #[test]
    fn one_scheme_host_and_port_for_every_user() {
        let port_of = |uri: &str| port(&uri.parse().unwrap());
        assert_eq!(port_of("http://api.example/a"), Some(80));
        assert_eq!(port_of("https://api.example/a"), Some(443));
        assert_eq!(port_of("https://api.example:8443/a"), Some(8443));
        assert_eq!(port_of("ftp://files.example/a"), None);
        assert_eq!(port_of("/relative"), None);
        assert_eq!(key("HTTPS://API.Example/v3?q=1"), "https://api.example:443");
        assert_eq!(
            key("http://user:pw@api.example:8080/"),
            "http://api.example:8080"
        );
        assert_eq!(key("api.example:8080"), "http://api.example:8080");
        assert_eq!(key("/relative"), "(no host)");
    }
}
