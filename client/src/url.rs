//! Which node URLs a client may use: `https://`, or `http://` to a
//! loopback host only, so a token and records never cross the network
//! readable. The worker and the `--server` JSON client check alike.

use crate::ClientError;

/// Checks `url`; true when it is `https://`.
pub fn check_server_url(url: &str) -> Result<bool, ClientError> {
    let (https, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => {
            return Err(ClientError::Url(format!(
                "--server {url:?} must start with http:// or https://, e.g. https://host:7878"
            )))
        }
    };
    let authority = rest.split('/').next().unwrap_or("");
    if !https && !is_loopback_host(authority) {
        return Err(ClientError::Url(format!(
            "--server {url:?} is plain http:// to another host: the token and the records \
             would travel readable; use https:// (the node's --tls-cert, trusted with \
             BOOSTER_CA_CERT), or http:// to localhost only"
        )));
    }
    Ok(https)
}

/// `host` (with or without a port, an IPv6 address in brackets) is this
/// machine: `localhost` or a loopback address.
pub fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::check_server_url;

    #[test]
    fn plain_http_is_refused_to_another_host_and_taken_to_loopback() {
        for (url, tls) in [
            ("http://127.0.0.1:7878", false),
            ("http://localhost:1/", false),
            ("http://[::1]:7878", false),
            ("https://node:7878", true),
        ] {
            assert_eq!(check_server_url(url).unwrap(), tls, "{url}");
        }
        for url in [
            "http://node:7878",
            "http://10.0.0.1:7878/api",
            "http://127.0.0.1.evil.example:80",
        ] {
            let err = check_server_url(url).unwrap_err().to_string();
            assert!(err.contains("use https://"), "{url}: {err}");
        }
        let err = check_server_url("node:7878").unwrap_err().to_string();
        assert!(err.contains("must start with"), "{err}");
    }
}
