//! HTTP CONNECT proxies: which proxy a connection goes through, and a connector that tunnels.
//!
//! The proxy for a target URL is, in order: the explicit `proxy` option (`None` turns proxies
//! off), else the environment: `grpc_proxy`/`GRPC_PROXY`, then `https_proxy`/`HTTPS_PROXY` for
//! `https://` targets or `http_proxy`/`HTTP_PROXY` for `http://` ones, unless `no_proxy`/`NO_PROXY`
//! names the host (comma list: `*`, host names matching themselves and their subdomains, with or
//! without a leading `.` or `*.`, IP addresses, CIDR ranges, optional `:port`; an IP host matches
//! only IP and CIDR entries).
//! Only `http://` proxies (plain CONNECT) are supported; TLS to the endpoint runs inside the tunnel.

use std::error::Error as StdError;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use hyper::Uri;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::link::{Meter, Metered};
use crate::error::{Result, ZerobusError};

/// How connections pick a proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProxySetting {
    /// From the environment variables (the default).
    FromEnv,
    /// Never use a proxy.
    Off,
    /// Always this proxy (`http://[user:password@]host[:port]`).
    Url(String),
}

/// A parsed proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proxy {
    pub host: String,
    pub port: u16,
    /// `Proxy-Authorization` value, from the URL's user info.
    pub authorization: Option<String>,
}

impl Proxy {
    /// Parses `http://[user:password@]host[:port]` (or the same without a scheme); port 80 by default.
    pub fn parse(url: &str) -> Result<Proxy> {
        let shown = redact(url);
        let bad = |why: &str| ZerobusError::invalid(format!("proxy {shown:?}: {why}"));
        let u = url.trim();
        let rest = match scheme_split(u) {
            None => u,
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(bad(&format!(
                    "{scheme}:// proxies are not supported; give an http:// proxy (HTTP CONNECT; TLS to the endpoint runs inside the tunnel)"
                )))
            }
        };
        // The user info runs to the last `@`, so a password may hold `/`, `?` or `#` unencoded
        // (a proxy URL has no path or query that could hold an `@` of its own).
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let hostport = hostport.split(['/', '?', '#']).next().unwrap_or("");
        let (host, port) = split_host_port(hostport).ok_or_else(|| bad("expected host[:port]"))?;
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let authorization = userinfo.map(|ui| {
            let (user, pass) = ui.split_once(':').unwrap_or((ui, ""));
            let creds = format!("{}:{}", percent_decode(user), percent_decode(pass));
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(creds))
        });
        Ok(Proxy { host: host.to_string(), port: port.unwrap_or(80), authorization })
    }
}

/// The proxy URL with its credentials hidden, for messages and logs: everything before the last
/// `@` is user info (a password may hold `/`, `?`, `#` or `@` unencoded), shown as `user:***@`, or
/// `***@` when it has no `:` (a token as the user name). Without an `@`, what follows a `:` that
/// is not a port is hidden too (`user:password` with the host left out).
pub fn redact(url: &str) -> String {
    let (scheme, rest) = match scheme_split(url) {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let shown = match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) if !user.contains(['/', '?', '#']) => format!("{user}:***@{host}"),
            _ => format!("***@{host}"),
        },
        // No `@`: `user:password` without a host would read as host:port; a port is a number
        // up to 65535 (anything else after the `:` is hidden).
        None => match rest.split_once(':') {
            Some((host, port)) if !host.contains('[') && !port.is_empty() && port.split(['/', '?', '#']).next().unwrap_or("").parse::<u16>().is_err() => {
                format!("{host}:***")
            }
            _ => rest.to_string(),
        },
    };
    match scheme {
        Some(s) => format!("{s}://{shown}"),
        None => shown,
    }
}

/// `scheme` and the rest of `scheme://rest`; None when what precedes `://` is not a scheme
/// (letters, digits, `+`, `-`, `.`, starting with a letter), e.g. a password holding `://`.
fn scheme_split(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let mut chars = scheme.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic()) && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    ok.then_some((scheme, rest))
}

/// `host[:port]` or `[v6][:port]`; None if the port is not a number.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(p) => Some((host, Some(p.parse().ok()?))),
            None if after.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h, Some(p.parse().ok()?))),
        Some(_) => Some((s, None)), // a bare IPv6 address
        None => Some((s, None)),
    }
}

fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn env(names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| std::env::var(n).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty()))
}

/// Whether a `no_proxy` list names `host` (lower case, no brackets) at `port`.
pub fn no_proxy_matches(list: &str, host: &str, port: u16) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let ip: Option<IpAddr> = host.parse().ok();
    list.split(',').map(str::trim).filter(|e| !e.is_empty()).any(|entry| {
        if entry == "*" {
            return true;
        }
        let entry = entry.to_ascii_lowercase();
        // CIDR range
        if let (Some(ip), Some((net, bits))) = (ip, entry.split_once('/')) {
            return match (net.trim_matches(['[', ']']).parse::<IpAddr>(), bits.parse::<u8>()) {
                (Ok(net), Ok(bits)) => in_cidr(ip, net, bits),
                _ => false,
            };
        }
        let (name, want_port) = match split_host_port(&entry) {
            Some((h, p)) => (h.to_string(), p),
            None => return false,
        };
        if want_port.is_some_and(|p| p != port) {
            return false;
        }
        // An IP host matches IP and CIDR entries only, and a name only names (as curl does):
        // `.0.0.1` does not name 127.0.0.1.
        match (ip, name.parse::<IpAddr>()) {
            (Some(ip), Ok(e)) => return ip == e,
            (Some(_), Err(_)) | (None, Ok(_)) => return false,
            (None, Err(_)) => {}
        }
        let name = name.trim_start_matches("*.").trim_start_matches('.').trim_end_matches('.');
        !name.is_empty() && (host == name || host.ends_with(&format!(".{name}")))
    })
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl ProxySetting {
    /// The proxy for `scheme://host:port`, if any.
    pub fn proxy_for(&self, https: bool, host: &str, port: u16) -> Result<Option<Proxy>> {
        match self {
            ProxySetting::Off => Ok(None),
            ProxySetting::Url(u) => Proxy::parse(u).map(Some),
            ProxySetting::FromEnv => {
                let names: &[&str] = if https {
                    &["grpc_proxy", "GRPC_PROXY", "https_proxy", "HTTPS_PROXY"]
                } else {
                    &["grpc_proxy", "GRPC_PROXY", "http_proxy", "HTTP_PROXY"]
                };
                let Some((name, url)) = names.iter().find_map(|n| env(&[n]).map(|v| (*n, v))) else { return Ok(None) };
                if env(&["no_proxy", "NO_PROXY"]).is_some_and(|l| no_proxy_matches(&l, host, port)) {
                    return Ok(None);
                }
                Proxy::parse(&url).map(Some).map_err(|e| ZerobusError::invalid(format!("{name}: {}", e.message)))
            }
        }
    }
}

/// What a connection to `uri` goes to: (https, host without brackets, port with its default).
pub(crate) fn target(uri: &Uri) -> Option<(bool, &str, u16)> {
    let https = uri.scheme_str() == Some("https");
    let host = uri.host()?.trim_matches(['[', ']']);
    Some((https, host, uri.port_u16().unwrap_or(if https { 443 } else { 80 })))
}

type BoxError = Box<dyn StdError + Send + Sync>;

/// Opens TCP connections to a URI's host, directly or through an HTTP CONNECT tunnel; tonic
/// and hyper-rustls add TLS on top for `https://`.
#[derive(Clone)]
pub struct Connector {
    pub(crate) proxy: Arc<ProxySetting>,
    pub(crate) connect_timeout: Duration,
    pub(crate) user_agent: Arc<str>,
    /// Reports the socket's traffic and resets it on request (a stream's connection).
    pub(crate) meter: Option<Arc<Meter>>,
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Metered>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = std::result::Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::result::Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let (https, host, port) = target(&uri).ok_or("URI without a host")?;
            let host = host.to_string();
            let proxy = this.proxy.proxy_for(https, &host, port).map_err(|e| e.message)?;
            let connect = async {
                match &proxy {
                    None => tcp(&host, port).await.map_err(|e| -> BoxError { format!("{host}:{port}: {e}").into() }),
                    Some(p) => tunnel(p, &host, port, &this.user_agent).await,
                }
            };
            let stream = tokio::time::timeout(this.connect_timeout, connect).await.map_err(|_| -> BoxError {
                match &proxy {
                    None => format!("connecting to {host}:{port} timed out").into(),
                    Some(p) => format!("connecting to {host}:{port} through proxy {}:{} timed out", p.host, p.port).into(),
                }
            })??;
            Ok(TokioIo::new(Metered::new(stream, this.meter.clone())))
        })
    }
}

async fn tcp(host: &str, port: u16) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect((host, port)).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Opens `CONNECT host:port` through `proxy` and returns the tunnel once the proxy answered 2xx.
async fn tunnel(proxy: &Proxy, host: &str, port: u16, user_agent: &str) -> std::result::Result<TcpStream, BoxError> {
    let via = format!("proxy {}:{}", proxy.host, proxy.port);
    let mut s = tcp(&proxy.host, proxy.port).await.map_err(|e| -> BoxError { format!("{via}: {e}").into() })?;
    let target = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: {user_agent}\r\n");
    if let Some(a) = &proxy.authorization {
        req.push_str(&format!("Proxy-Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.map_err(|e| -> BoxError { format!("{via}: {e}").into() })?;
    // Read the response head byte by byte-chunk up to the blank line; a server speaks only after
    // the client's first bytes (TLS ClientHello or the HTTP/2 preface), so nothing follows it yet.
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Err(format!("{via}: response head over 16 KiB").into());
        }
        let n = s.read(&mut buf).await.map_err(|e| -> BoxError { format!("{via}: {e}").into() })?;
        if n == 0 {
            return Err(format!("{via} closed the connection before answering CONNECT {target}").into());
        }
        head.push(buf[0]);
    }
    let status_line = String::from_utf8_lossy(head.split(|&b| b == b'\r').next().unwrap_or(&[])).into_owned();
    let code = status_line.split_whitespace().nth(1).and_then(|c| c.parse::<u16>().ok());
    match code {
        Some(200..=299) => Ok(s),
        Some(407) => Err(format!("{via} requires authentication (407): give user:password in the proxy URL").into()),
        _ => Err(format!("{via} refused CONNECT {target}: {status_line}").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls() {
        assert_eq!(Proxy::parse("http://proxy.corp:3128").unwrap(), Proxy { host: "proxy.corp".into(), port: 3128, authorization: None });
        assert_eq!(Proxy::parse("proxy.corp:8080/").unwrap().port, 8080);
        assert_eq!(Proxy::parse("http://p").unwrap().port, 80);
        assert_eq!(Proxy::parse("http://[::1]:9").unwrap().host, "::1");
        let p = Proxy::parse("http://us%40er:p%3Ass@p:1").unwrap();
        let want = base64::engine::general_purpose::STANDARD.encode("us@er:p:ss");
        assert_eq!(p.authorization.unwrap(), format!("Basic {want}"));
        for bad in ["https://p:1", "socks5://p:1", "http://:1", "http://p:notaport"] {
            assert!(Proxy::parse(bad).is_err(), "{bad}");
        }
        let e = Proxy::parse("https://alice:s3cret@p:1").unwrap_err();
        assert!(!e.message.contains("s3cret") && e.message.contains("alice:***@p:1"), "{}", e.message);
        assert_eq!(redact("http://u:p@h:1/x"), "http://u:***@h:1/x");
        assert_eq!(redact("h:1"), "h:1");
        assert_eq!(redact("http://h:1/x"), "http://h:1/x");
        assert_eq!(redact("http://alice:s3cret"), "http://alice:***");
        assert_eq!(redact("http://alice:12345678"), "http://alice:***");
        assert_eq!(redact("alice:98765432/"), "alice:***");
        let e = Proxy::parse("alice:pass://word@proxy.example:3128x").unwrap_err();
        assert!(!e.message.contains("pass") && !e.message.contains("word"), "{}", e.message);
        let p = Proxy::parse("alice:pass://word@proxy.example:3128").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("proxy.example", 3128));
        assert!(!Proxy::parse("http://alice:s3cret").unwrap_err().message.contains("s3cret"));
        // Passwords holding unencoded `/`, `?`, `#` or `@`; a token as the user name.
        for (url, user) in [
            ("http://alice:pa/ss9Q@127.0.0.1:3128", "alice:***@"),
            ("http://alice:pa?ss9Q@127.0.0.1:3128", "alice:***@"),
            ("http://alice:pa#ss9Q@127.0.0.1:3128", "alice:***@"),
            ("alice:pa@ss9Q@127.0.0.1:3128", "alice:***@"),
            ("http://tok/ss9Q@127.0.0.1:3128", "***@"),
            ("http://ss9Qtoken@127.0.0.1:3128", "***@"),
        ] {
            let shown = redact(url);
            assert!(!shown.contains("ss9Q") && shown.contains(&format!("{user}127.0.0.1:3128")), "{url} -> {shown}");
            let p = Proxy::parse(url).unwrap();
            assert_eq!((p.host.as_str(), p.port), ("127.0.0.1", 3128), "{url}");
        }
        let p = Proxy::parse("http://alice:pa/ss9Q@127.0.0.1:3128").unwrap();
        let want = base64::engine::general_purpose::STANDARD.encode("alice:pa/ss9Q");
        assert_eq!(p.authorization.unwrap(), format!("Basic {want}"));
        for bad in ["http://alice:pa/ss9Q@127.0.0.1:x", "https://alice:pa/ss9Q@h:1", "http://alice:pa/ss9Q@"] {
            let e = Proxy::parse(bad).unwrap_err();
            assert!(!e.message.contains("ss9Q"), "{}", e.message);
        }
    }

    #[test]
    fn no_proxy_lists() {
        let l = "localhost, .internal.corp,*.svc, 10.0.0.0/8, 192.168.1.5, example.com:8443, [::1]";
        assert!(no_proxy_matches(l, "localhost", 443));
        assert!(no_proxy_matches(l, "a.internal.corp", 443));
        assert!(no_proxy_matches(l, "internal.corp", 443));
        assert!(!no_proxy_matches(l, "xinternal.corp", 443));
        assert!(no_proxy_matches(l, "x.svc", 443));
        assert!(no_proxy_matches(l, "10.1.2.3", 443));
        assert!(!no_proxy_matches(l, "11.1.2.3", 443));
        assert!(no_proxy_matches(l, "192.168.1.5", 1));
        assert!(no_proxy_matches(l, "example.com", 8443));
        assert!(!no_proxy_matches(l, "example.com", 443));
        assert!(no_proxy_matches(l, "::1", 443));
        assert!(no_proxy_matches("*", "anything", 1));
        assert!(!no_proxy_matches("", "anything", 1));
        assert!(no_proxy_matches("EXAMPLE.com", "www.example.COM", 1));
        // IP hosts against IP and CIDR entries only.
        for entry in [".0.0.1", "0.0.1", "*.0.0.1", ".1", "0.1:443"] {
            assert!(!no_proxy_matches(entry, "127.0.0.1", 443), "{entry}");
        }
        assert!(no_proxy_matches("127.0.0.0/8", "127.0.0.1", 443));
        assert!(no_proxy_matches("127.0.0.1:443", "127.0.0.1", 443));
        assert!(!no_proxy_matches("::1", "1", 443) && !no_proxy_matches("10.0.0.1", "host.10.0.0.1", 1));
    }
}
