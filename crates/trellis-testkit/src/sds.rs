//! A stand-in node agent for tests of Istio mTLS through Envoy: a throwaway CA made with
//! the `openssl` command, and an SDS server on a Unix socket that serves Istio's two
//! secrets — `default` (a workload certificate for one SPIFFE id) and `ROOTCA` (the CA) —
//! to the `sds-grpc` cluster of an Envoy bootstrapped with `--sds-socket`.
//!
//! It issues once and never rotates: it stands in for the real agent only where a test
//! needs certificates, not the agent's own behaviour.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Command;

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source::Specifier};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, Secret, TlsCertificate, secret,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_server::{
    SecretDiscoveryService, SecretDiscoveryServiceServer,
};
use envoy_types::util::pack_any;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tonic::{Request, Response, Status, Streaming};

/// A CA whose files live in a directory of the test.
pub struct TestCa {
    dir: PathBuf,
    /// The CA certificate, PEM.
    pub root_pem: String,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const EC_KEY: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

impl TestCa {
    /// A new CA in `dir` (which must exist).
    pub fn new(dir: &Path) -> TestCa {
        let mut args = vec!["req", "-x509", "-nodes", "-days", "2"];
        args.extend(EC_KEY);
        args.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/O=trellis-test/CN=root",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(dir, &args);
        TestCa {
            dir: dir.to_path_buf(),
            root_pem: std::fs::read_to_string(dir.join("ca.pem")).expect("ca.pem"),
        }
    }

    /// A workload certificate and key (PEM) for a SPIFFE id.
    pub fn issue(&self, name: &str, spiffe_id: &str) -> (String, String) {
        let (key, csr, pem, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        std::fs::write(
            self.dir.join(&ext),
            format!(
                "subjectAltName=critical,URI:{spiffe_id}\nbasicConstraints=critical,CA:FALSE\n\
                 keyUsage=critical,digitalSignature,keyEncipherment\n\
                 extendedKeyUsage=serverAuth,clientAuth\n"
            ),
        )
        .expect("write extensions");
        let mut args = vec!["req", "-nodes"];
        args.extend(EC_KEY);
        args.extend(["-keyout", &key, "-out", &csr, "-subj", "/O=trellis-test"]);
        openssl(&self.dir, &args);
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-out",
                &pem,
                "-extfile",
                &ext,
            ],
        );
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).expect("read pem");
        (read(&pem), read(&key))
    }
}

fn inline(pem: &str) -> Option<DataSource> {
    Some(DataSource {
        specifier: Some(Specifier::InlineString(pem.to_string())),
        ..Default::default()
    })
}

/// An SDS server on a Unix socket, stopped on drop.
pub struct Agent {
    pub socket: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Agent {
    /// Serves `default` (`cert_pem` + `key_pem`) and `ROOTCA` (`root_pem`) on `socket`.
    pub fn start(socket: &Path, cert_pem: &str, key_pem: &str, root_pem: &str) -> Agent {
        let secrets = vec![
            Secret {
                name: "default".into(),
                r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
                    certificate_chain: inline(cert_pem),
                    private_key: inline(key_pem),
                    ..Default::default()
                })),
            },
            Secret {
                name: "ROOTCA".into(),
                r#type: Some(secret::Type::ValidationContext(
                    CertificateValidationContext {
                        trusted_ca: inline(root_pem),
                        ..Default::default()
                    },
                )),
            },
        ];
        let _ = std::fs::remove_file(socket);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let listener = {
            let _guard = runtime.enter();
            tokio::net::UnixListener::bind(socket).expect("bind SDS socket")
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let served = tonic::transport::Server::builder()
                    .add_service(SecretDiscoveryServiceServer::new(Sds { secrets }))
                    .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
                        let _ = stopped.await;
                    })
                    .await;
                if let Err(e) = served {
                    eprintln!("test SDS server: {e}");
                }
            })
        });
        Agent {
            socket: socket.to_path_buf(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

struct Sds {
    secrets: Vec<Secret>,
}

type BoxStream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl SecretDiscoveryService for Sds {
    type DeltaSecretsStream = BoxStream<DeltaDiscoveryResponse>;
    type StreamSecretsStream = BoxStream<DiscoveryResponse>;

    async fn delta_secrets(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaSecretsStream>, Status> {
        Err(Status::unimplemented("delta SDS"))
    }

    /// Answers every request that names resources it has not been sent yet, once.
    async fn stream_secrets(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamSecretsStream>, Status> {
        let mut requests = request.into_inner();
        let secrets = self.secrets.clone();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut sent: Vec<String> = Vec::new();
            let mut nonce = 0u64;
            while let Ok(Some(req)) = requests.message().await {
                let mut names = req.resource_names.clone();
                names.sort();
                if names == sent {
                    continue;
                }
                nonce += 1;
                let resources = secrets
                    .iter()
                    .filter(|s| names.contains(&s.name))
                    .map(|s| pack_any(s.clone()))
                    .collect();
                let response = DiscoveryResponse {
                    version_info: "1".into(),
                    resources,
                    type_url: req.type_url.clone(),
                    nonce: nonce.to_string(),
                    ..Default::default()
                };
                sent = names;
                if tx.send(Ok(response)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn fetch_secrets(
        &self,
        _request: Request<DiscoveryRequest>,
    ) -> Result<Response<DiscoveryResponse>, Status> {
        Err(Status::unimplemented("fetch SDS"))
    }
}
