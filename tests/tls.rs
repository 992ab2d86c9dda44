//! TLS targets (wss://, https://): the suite passes over TLS against the
//! reference server, a refused certificate is one line and exit 3 before
//! any case runs, --insecure is said out loud, and the client sends SNI
//! and ALPN. Loopback only; every certificate is made here, at test time.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pushspec::cli::exit;
use pushspec_reference_server::tls::Tls as ServerTls;
use pushspec_reference_server::{Config, Server, ServerHandle};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use support::command::{Output, pushspec, temp_dir};

/// A private CA, made now.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `names`, valid now unless `expired`:
    /// (certificate PEM, key PEM).
    fn leaf(&self, names: &[&str], expired: bool) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        if expired {
            params.not_before = rcgen::date_time_ymd(2001, 1, 1);
            params.not_after = rcgen::date_time_ymd(2002, 1, 1);
        }
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn write(&self, dir: &std::path::Path) -> String {
        let p = dir.join("ca.pem");
        std::fs::write(&p, &self.pem).unwrap();
        p.to_str().unwrap().to_string()
    }
}

/// The reference server serving TLS with this certificate and key.
async fn reference_tls(cert: &str, key: &str) -> ServerHandle {
    let tls = ServerTls::from_pem(cert.as_bytes(), key.as_bytes(), "test").unwrap();
    Server::bind("127.0.0.1:0".parse().unwrap(), Config::conformance())
        .await
        .unwrap()
        .with_tls(tls)
        .spawn_isolated()
        .unwrap()
}

fn report(o: &Output) -> serde_json::Value {
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}\n{}", o.stderr))
}

/// Asserts a refused run: exit 3, one line on standard error that says
/// `says`, and nothing ran.
fn assert_refused(o: &Output, says: &str) {
    assert_eq!(o.code, exit::UNREACHABLE, "{}\n{}", o.stdout, o.stderr);
    assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
    assert!(o.stderr.contains(says), "{}", o.stderr);
    assert!(
        !o.stdout.contains("PASSED") && !o.stdout.contains("FAILED"),
        "{}",
        o.stdout
    );
}

/// The families that carry the most traffic shapes (handshakes, control
/// frames, fragmentation, compression, closing; streams, replay, framing),
/// over wss:// and https://: the whole suite takes minutes on a loaded
/// machine and adds nothing the transport could break differently.
const FAMILIES: [&str; 10] = [
    "ws.handshake",
    "ws.control",
    "ws.close",
    "ws.fragmentation",
    "ws.deflate",
    "ws.utf8",
    "sse.data",
    "sse.delivery",
    "sse.replay",
    "sse.framing",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_server_over_tls_passes_and_the_report_names_the_transport() {
    let mut args = vec!["run", "--tls", "--json", "-"];
    args.extend(FAMILIES);
    let o = pushspec(&args).await;
    assert_eq!(o.code, exit::OK, "{}", o.stderr);
    let r = report(&o);
    let t = &r["targets"];
    assert!(
        t["ws"].as_str().unwrap().starts_with("wss://127.0.0.1:"),
        "{t}"
    );
    assert!(
        t["sse"].as_str().unwrap().starts_with("https://127.0.0.1:"),
        "{t}"
    );
    assert_eq!(t["transport"]["ws"], "tls");
    assert_eq!(t["transport"]["sse"], "tls");
    assert_eq!(t["transport"]["publish"], "tls");
    assert_eq!(t["transport"]["tls_verification"], "embedded-certificate");
    assert_eq!(t["transport"]["insecure"], false);
    assert!(
        r["summary"]["pass"].as_u64().unwrap() > 150,
        "{}",
        r["summary"]
    );
    assert!(o.stderr.contains("over TLS"), "{}", o.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_given_with_ca_cert_verifies_the_target() {
    let ca = Ca::new("pushspec test CA");
    let (cert, key) = ca.leaf(&["localhost", "127.0.0.1"], false);
    let server = reference_tls(&cert, &key).await;
    let port = server.local_addr().port();
    let dir = temp_dir("ca");
    let ca_file = ca.write(&dir);
    let (ws, sse, publish) = (
        format!("wss://localhost:{port}/"),
        format!("https://127.0.0.1:{port}/events"),
        format!("https://127.0.0.1:{port}/publish"),
    );
    let o = pushspec(&[
        "run",
        "--ws",
        &ws,
        "--sse",
        &sse,
        "--publish",
        &publish,
        "--ca-cert",
        &ca_file,
        "ws.control",
        "ws.close",
        "sse.data",
        "--json",
        "-",
    ])
    .await;
    assert_eq!(o.code, exit::OK, "{}", o.stderr);
    let r = report(&o);
    assert_eq!(r["targets"]["transport"]["tls_verification"], "ca-file");
    assert_eq!(r["summary"]["fail"], 0);
    assert!(r["summary"]["pass"].as_u64().unwrap() > 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_certificate_is_one_line_and_exit_3_before_any_case() {
    let ca = Ca::new("pushspec test CA");
    let dir = temp_dir("refused");
    let ca_file = ca.write(&dir);
    let t = Instant::now();

    // Unknown issuer: the platform's roots do not know the test CA.
    let (cert, key) = ca.leaf(&["localhost", "127.0.0.1"], false);
    let good = reference_tls(&cert, &key).await;
    let port = good.local_addr().port();
    let o = pushspec(&["run", "--ws", &format!("wss://127.0.0.1:{port}/")]).await;
    assert_refused(&o, "not issued by a trusted CA");
    // ... nor does another CA given with --ca-cert.
    let other = Ca::new("another CA");
    let other_dir = temp_dir("other-ca");
    let other_file = other.write(&other_dir);
    let o = pushspec(&[
        "run",
        "--sse",
        &format!("https://127.0.0.1:{port}/events"),
        "--ca-cert",
        &other_file,
    ])
    .await;
    assert_refused(&o, "no CA of --ca-cert issued it");

    // The wrong name: the certificate holds another one (SNI and the
    // check use the URL's host).
    let (cert, key) = ca.leaf(&["other.test"], false);
    let wrong = reference_tls(&cert, &key).await;
    let port = wrong.local_addr().port();
    for url in [
        format!("--ws=wss://localhost:{port}/"),
        format!("--sse=https://127.0.0.1:{port}/events"),
    ] {
        let o = pushspec(&["run", &url, "--ca-cert", &ca_file]).await;
        assert_refused(&o, "not valid for name");
    }

    // Expired.
    let (cert, key) = ca.leaf(&["127.0.0.1"], true);
    let old = reference_tls(&cert, &key).await;
    let port = old.local_addr().port();
    let o = pushspec(&[
        "run",
        "--ws",
        &format!("wss://127.0.0.1:{port}/"),
        "--ca-cert",
        &ca_file,
    ])
    .await;
    assert_refused(&o, "expired");

    // A TLS listener given as ws://: said, not a wall of failures.
    let o = pushspec(&[
        "run",
        "--ws",
        &format!("ws://127.0.0.1:{port}/"),
        "ws.control",
    ])
    .await;
    assert_eq!(o.code, exit::UNREACHABLE, "{}", o.stderr);
    assert!(o.stderr.contains("use wss://"), "{}", o.stderr);
    assert!(t.elapsed() < Duration::from_secs(60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_skips_verification_and_says_so() {
    let tls = ServerTls::self_signed(&ServerTls::local_names(None)).unwrap();
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), Config::conformance())
        .await
        .unwrap()
        .with_tls(tls)
        .spawn_isolated()
        .unwrap();
    let port = server.local_addr().port();
    let o = pushspec(&[
        "run",
        "--ws",
        &format!("wss://127.0.0.1:{port}/"),
        "--insecure",
        "ws.control",
        "--json",
        "-",
    ])
    .await;
    assert_eq!(o.code, exit::OK, "{}", o.stderr);
    assert!(o.stderr.contains("warning: --insecure"), "{}", o.stderr);
    let r = report(&o);
    assert_eq!(r["targets"]["transport"]["insecure"], true);
    assert_eq!(r["targets"]["transport"]["tls_verification"], "none");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_flags_that_cannot_apply_are_usage_errors() {
    let cases: [&[&str]; 4] = [
        &["run", "--ws", "ws://127.0.0.1:1/", "--insecure"],
        &["run", "--ws", "wss://127.0.0.1:1/", "--tls"],
        &["run", "--ca-cert", "/nonexistent/ca.pem"],
        &[
            "run",
            "--ws",
            "wss://127.0.0.1:1/",
            "--ca-cert",
            "/nonexistent/ca.pem",
        ],
    ];
    for args in cases {
        let o = pushspec(args).await;
        assert_eq!(o.code, exit::USAGE, "{args:?}: {}", o.stderr);
        assert_eq!(o.stderr.lines().count(), 1, "{args:?}: {}", o.stderr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_runs_over_wss() {
    let o = pushspec(&[
        "bench",
        "ws-echo",
        "--tls",
        "--connections",
        "2",
        "--duration",
        "300ms",
        "--warmup",
        "0s",
        "--json",
        "-",
    ])
    .await;
    assert_eq!(o.code, exit::OK, "{}", o.stderr);
    assert!(o.stdout.contains("\"wss://127.0.0.1:"), "{}", o.stdout);
}

/// What a TLS server saw of the client's hello.
#[derive(Default, Debug)]
struct Hello {
    sni: Option<String>,
    alpn: Option<Vec<u8>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_sends_sni_for_names_only_and_offers_http11() {
    use tokio_rustls::rustls;
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = rustls::pki_types::CertificateDer::from(made.cert.der().to_vec());
    let key = rustls::pki_types::PrivateKeyDer::try_from(made.signing_key.serialize_der()).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<Hello>>> = Arc::default();
    let record = seen.clone();
    let server = tokio::spawn(async move {
        for _ in 0..2 {
            let (tcp, _) = listener.accept().await.unwrap();
            if let Ok(Ok(s)) =
                tokio::time::timeout(Duration::from_secs(5), acceptor.accept(tcp)).await
            {
                let c = s.get_ref().1;
                record.lock().unwrap().push(Hello {
                    sni: c.server_name().map(str::to_string),
                    alpn: c.alpn_protocol().map(<[u8]>::to_vec),
                });
            }
        }
    });
    use pushspec::wire::transport::{Tls, Transport, connect};
    let pinned = Transport::Tls(Tls::pinned(made.cert.pem().as_bytes()).unwrap());
    let within = Duration::from_secs(5);
    connect("localhost", port, &pinned, within).await.unwrap();
    // An IP address is no SNI name (RFC 6066 §3); verification is skipped
    // here because the certificate only names localhost.
    connect("127.0.0.1", port, &Transport::Tls(Tls::insecure()), within)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].sni.as_deref(), Some("localhost"), "{seen:?}");
    assert_eq!(seen[1].sni, None, "{seen:?}");
    // The server prefers h2; the client offers only what it speaks.
    assert!(
        seen.iter()
            .all(|h| h.alpn.as_deref() == Some(&b"http/1.1"[..])),
        "{seen:?}"
    );
}
