//! The CA's certificates checked as a TLS peer would: path validation with rustls-webpki
//! against the trust bundle, and the fields Istio's workloads rely on.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls_pki_types::{CertificateDer, UnixTime};
use trellis_identity::pem;
use trellis_identity::spiffe::SpiffeId;
use webpki::{EndEntityCert, KeyUsage, anchor_from_trusted_cert};
use x509_parser::extensions::GeneralName;

use super::authority::{Authority, DEFAULT_TTL, MAX_TTL};
use super::*;

fn id() -> SpiffeId {
    SpiffeId::new("cluster.local", "default", "reviews").unwrap()
}

fn options(state: &Path) -> CaOptions {
    CaOptions {
        state_dir: state.to_path_buf(),
        cacerts: None,
        trust_domain: "cluster.local".into(),
    }
}

fn issue(authority: &Authority, ttl: Duration) -> Vec<String> {
    let (_, csr) = trellis_identity::client::key_and_csr(&id()).unwrap();
    let key = csr::check(&csr, &id()).unwrap();
    authority
        .issue_workload(&id(), key, ttl, SystemTime::now())
        .unwrap()
}

/// Validates `chain` (as CreateCertificate returns it) for both client and server use
/// against the roots in its last element.
fn verify(chain: &[String]) {
    let leaf = pem::certificates(&chain[0]).unwrap().remove(0);
    let intermediates: Vec<CertificateDer<'static>> = chain[1..chain.len() - 1]
        .iter()
        .flat_map(|p| pem::certificates(p).unwrap())
        .collect();
    let roots = pem::certificates(chain.last().unwrap()).unwrap();
    let anchors: Vec<_> = roots
        .iter()
        .map(|r| anchor_from_trusted_cert(r).unwrap().to_owned())
        .collect();
    let leaf = EndEntityCert::try_from(&leaf).unwrap();
    for usage in [KeyUsage::client_auth(), KeyUsage::server_auth()] {
        leaf.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &intermediates,
            UnixTime::now(),
            usage,
            None,
            None,
        )
        .unwrap();
    }
}

#[test]
fn workload_certificates_carry_one_spiffe_uri_and_chain_to_the_root() {
    let state = tempfile::tempdir().unwrap();
    let ca = Ca::open(&options(state.path())).unwrap();
    let chain = issue(&ca.authority, Duration::ZERO);
    assert_eq!(
        chain.len(),
        2,
        "leaf and root: a self-signed CA has no intermediates"
    );
    verify(&chain);

    let der = pem::certificates(&chain[0]).unwrap().remove(0);
    let cert = pem::parse(&der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    assert!(san.critical, "the subject is empty, so the SAN is critical");
    assert_eq!(
        san.value.general_names,
        vec![GeneralName::URI(
            "spiffe://cluster.local/ns/default/sa/reviews"
        )]
    );
    assert!(!cert.is_ca());
    assert!(!cert.basic_constraints().unwrap().unwrap().value.ca);
    let usage = cert.key_usage().unwrap().unwrap().value;
    assert!(usage.digital_signature() && usage.key_encipherment() && !usage.key_cert_sign());
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    let (not_before, not_after) = pem::validity(&cert);
    let life = not_after.duration_since(not_before).unwrap();
    assert_eq!(
        life,
        DEFAULT_TTL + Duration::from_secs(60),
        "24 h plus the backdate"
    );
}

#[test]
fn the_requested_lifetime_is_honoured_up_to_the_maximum() {
    let state = tempfile::tempdir().unwrap();
    let ca = Ca::open(&options(state.path())).unwrap();
    let life = |ttl| {
        let chain = issue(&ca.authority, ttl);
        let der = pem::certificates(&chain[0]).unwrap().remove(0);
        let (from, to) = pem::validity(&pem::parse(&der).unwrap());
        to.duration_since(from).unwrap() - Duration::from_secs(60)
    };
    assert_eq!(life(Duration::from_secs(3600)), Duration::from_secs(3600));
    assert_eq!(life(Duration::from_secs(1000 * 86400)), MAX_TTL);
}

#[test]
fn the_root_is_created_once_kept_private_and_reused() {
    let state = tempfile::tempdir().unwrap();
    let first = Ca::open(&options(state.path())).unwrap();
    let again = Ca::open(&options(state.path())).unwrap();
    assert_eq!(first.authority.bundle(), again.authority.bundle());
    let key = state.path().join("ca").join(store::CA_KEY);
    let mode = std::fs::metadata(key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let root = pem::certificates(first.authority.bundle())
        .unwrap()
        .remove(0);
    let root = pem::parse(&root).unwrap();
    assert!(root.is_ca());
    let (from, to) = pem::validity(&root);
    assert!(to.duration_since(from).unwrap() >= Duration::from_secs(3650 * 86400));
}

/// An organisation's root and an intermediate it signed, in Istio's cacerts layout.
fn write_cacerts(dir: &Path, root_for_bundle: Option<&str>) {
    let ca_params = |name: &str| {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p
    };
    let root_key = KeyPair::generate().unwrap();
    let root_params = ca_params("Example Org Root");
    let root = root_params.self_signed(&root_key).unwrap();
    let root_issuer = Issuer::new(root_params, root_key);
    let int_key = KeyPair::generate().unwrap();
    let int = ca_params("Example Org Mesh Intermediate")
        .signed_by(&int_key, &root_issuer)
        .unwrap();
    std::fs::write(dir.join("ca-cert.pem"), int.pem()).unwrap();
    std::fs::write(dir.join("ca-key.pem"), int_key.serialize_pem()).unwrap();
    std::fs::write(
        dir.join("cert-chain.pem"),
        format!("{}{}", int.pem(), root.pem()),
    )
    .unwrap();
    let bundle = root_for_bundle.map_or(root.pem(), str::to_string);
    std::fs::write(dir.join("root-cert.pem"), bundle).unwrap();
}

#[test]
fn a_plugged_in_ca_signs_below_the_organisations_root() {
    let state = tempfile::tempdir().unwrap();
    let cacerts = tempfile::tempdir().unwrap();
    write_cacerts(cacerts.path(), None);
    let ca = Ca::open(&CaOptions {
        cacerts: Some(cacerts.path().to_path_buf()),
        ..options(state.path())
    })
    .unwrap();
    let chain = issue(&ca.authority, Duration::ZERO);
    assert_eq!(chain.len(), 3, "leaf, intermediate, root");
    verify(&chain);
    let int = pem::certificates(&chain[1]).unwrap().remove(0);
    let int = pem::parse(&int).unwrap();
    assert!(int.subject().to_string().contains("Intermediate"));
    assert!(
        !state.path().join("ca").exists(),
        "no self-signed root is made"
    );
}

#[test]
fn a_plugged_in_ca_that_does_not_chain_to_its_roots_is_refused() {
    let state = tempfile::tempdir().unwrap();
    let cacerts = tempfile::tempdir().unwrap();
    let stranger = tempfile::tempdir().unwrap();
    let other = Ca::open(&options(stranger.path())).unwrap();
    write_cacerts(cacerts.path(), Some(other.authority.bundle()));
    let error = Ca::open(&CaOptions {
        cacerts: Some(cacerts.path().to_path_buf()),
        ..options(state.path())
    })
    .unwrap_err();
    assert!(
        error.to_string().contains("does not end at any root"),
        "{error}"
    );
    std::fs::write(cacerts.path().join("ca-key.pem"), "garbage").unwrap();
    assert!(
        Ca::open(&CaOptions {
            cacerts: Some(cacerts.path().to_path_buf()),
            ..options(state.path())
        })
        .is_err()
    );
}

#[test]
fn rotating_the_root_keeps_the_old_root_trusted_until_removed() {
    let state = tempfile::tempdir().unwrap();
    let old = Ca::open(&options(state.path())).unwrap();
    let old_chain = issue(&old.authority, Duration::ZERO);
    let old_root = store::fingerprints(old.authority.bundle())
        .unwrap()
        .remove(0);

    store::rotate_root(state.path(), "cluster.local", SystemTime::now()).unwrap();
    let new = Ca::open(&options(state.path())).unwrap();
    let roots = store::fingerprints(new.authority.bundle()).unwrap();
    assert_eq!(roots.len(), 2);
    assert_eq!(roots[1], old_root, "the new root first, the old one kept");
    let new_chain = issue(&new.authority, Duration::ZERO);
    verify(&new_chain);
    // A peer still holding an old-root certificate verifies against the new bundle.
    let mut mixed = old_chain.clone();
    *mixed.last_mut().unwrap() = new.authority.bundle().to_string();
    verify(&mixed);

    assert!(
        store::remove_root(state.path(), &roots[0]).is_err(),
        "the signer stays"
    );
    assert_eq!(
        store::remove_root(state.path(), &old_root[..12]).unwrap(),
        old_root
    );
    let after = Ca::open(&options(state.path())).unwrap();
    assert_eq!(
        store::fingerprints(after.authority.bundle()).unwrap(),
        vec![roots[0].clone()]
    );
}
