//! The key of a request's host, shared by the breakers (one per host) and
//! the rate limit (one limit per host).

use http::Uri;

/// How many hosts are kept apart by default: breakers per registry, and
/// the hosts a metrics listener names before the rest share `_other`.
pub(crate) const DEFAULT_MAX_HOSTS: usize = 1024;

/// The host key of a request: `scheme://host:port`, the host in lower case
/// and the port made explicit. Never the path, the query or userinfo.
pub(crate) fn write_key(uri: &Uri, out: &mut impl std::fmt::Write) -> std::fmt::Result {
    let Some(host) = uri.host() else {
        // A relative URI names no host: such calls share one breaker.
        return out.write_str("(no host)");
    };
    let scheme = uri.scheme_str().unwrap_or("http");
    let port = uri.port_u16().or(match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    });
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
