//! Connections are bounded: a client that sends half a request header, or nothing at all, is
//! closed after the configured time; one address cannot hold more than its share of the box's
//! connections while others still get in. Tests wait for the close (an event), never a sleep.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::{Options, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Long enough that only a bug keeps a connection open that long.
const BOUND: Duration = Duration::from_secs(60);

async fn connect_from(source: IpAddr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(source, 0)).expect("bind");
    socket.connect(to).await.expect("connect")
}

/// Read until the server closes the connection; `None` if it is still open after [`BOUND`].
async fn closed<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(BOUND, read_all).await.ok()?;
    Some(got)
}

async fn tls(server: &TestServer, tcp: TcpStream) -> tokio_rustls::client::TlsStream<TcpStream> {
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(server.ca_pem.as_bytes()).expect("ca"))
        .expect("root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from("kekeli.local").expect("name");
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("handshake")
}

fn quick(header: u64, idle: u64) -> Options {
    Options {
        demo: false,
        tweak: Box::new(move |c| {
            c.http.header_timeout_secs = header;
            c.http.idle_timeout_secs = idle;
        }),
    }
}

#[tokio::test]
async fn half_a_request_header_is_closed_after_the_header_timeout() {
    let server = TestServer::start_with(quick(1, 600)).await;
    let half = b"GET /healthz HTTP/1.1\r\nHost: kekeli.local\r\nX-Slow: ";
    // Plain HTTP port.
    let mut plain = TcpStream::connect(server.http_addr).await.expect("connect");
    plain.write_all(half).await.expect("write");
    assert!(
        closed(&mut plain).await.is_some(),
        "a half-sent header on the HTTP port stays open"
    );
    // HTTPS, after a completed handshake.
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let mut s = tls(&server, tcp).await;
    s.write_all(half).await.expect("write");
    s.flush().await.expect("flush");
    assert!(
        closed(&mut s).await.is_some(),
        "a half-sent header over TLS stays open"
    );
    // A whole request is still answered.
    let mut ok = TcpStream::connect(server.http_addr).await.expect("connect");
    ok.write_all(b"GET /healthz HTTP/1.1\r\nHost: kekeli.local\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let answer = closed(&mut ok).await.expect("answered and closed");
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    server.stop().await;
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_idle_timeout() {
    let server = TestServer::start_with(quick(600, 1)).await;
    // A TLS connection that never sends a request (HTTP/2 clients open such connections and
    // hyper has no header timer for them).
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let mut s = tls(&server, tcp).await;
    assert!(
        closed(&mut s).await.is_some(),
        "an idle TLS connection stays open"
    );
    // And a plain TCP connection that sends nothing at all.
    let mut plain = TcpStream::connect(server.http_addr).await.expect("connect");
    assert!(
        closed(&mut plain).await.is_some(),
        "an idle TCP connection stays open"
    );
    server.stop().await;
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let server = TestServer::start_with(Options {
        demo: false,
        tweak: Box::new(|c| {
            c.http.header_timeout_secs = 600;
            c.http.idle_timeout_secs = 600;
            c.http.max_connections_per_address = 3;
        }),
    })
    .await;
    let attacker: IpAddr = [127, 0, 0, 1].into();
    let neighbour: IpAddr = [127, 0, 0, 2].into();
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = connect_from(attacker, server.http_addr).await;
        // Half a header: these stay open (long timeouts here).
        s.write_all(b"GET / HTTP/1.1\r\n").await.expect("write");
        held.push(s);
    }
    let mut extra = connect_from(attacker, server.http_addr).await;
    assert!(
        closed(&mut extra).await.is_some(),
        "a fourth connection from the same address was kept"
    );
    // Someone else still gets in.
    let mut other = connect_from(neighbour, server.http_addr).await;
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: kekeli.local\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let answer = closed(&mut other).await.expect("answered");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    // A place freed is a place the address gets back.
    drop(held.pop());
    let mut again = None;
    let deadline = std::time::Instant::now() + BOUND;
    while std::time::Instant::now() < deadline {
        let mut s = connect_from(attacker, server.http_addr).await;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: kekeli.local\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let answer = closed(&mut s).await.expect("closed");
        if String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200") {
            again = Some(());
            break;
        }
        // The server has not yet seen the dropped connection go: try again.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "the freed place was not given back");
    let b = server.browser();
    let text = b.text("/metrics").await;
    assert!(
        text.lines()
            .any(|l| l.starts_with("kekeli_connections_refused_total ") && !l.ends_with(" 0")),
        "{text}"
    );
    server.stop().await;
}
