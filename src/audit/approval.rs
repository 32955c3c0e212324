//! Release approvals that are real signatures: an in-toto Statement (v1)
//! whose subject is a binder's manifest digest and whose predicate says
//! who decided what and when, in a DSSE envelope signed with Ed25519.
//!
//! DSSE signs `PAE(payloadType, payload)` = `"DSSEv1" SP len(type) SP type
//! SP len(body) SP body` (lengths in ASCII decimal), so the payload type is
//! authenticated too and no JSON canonicalisation is needed: the payload
//! bytes are signed as they are. Keys are PEM files as OpenSSL writes them
//! (`openssl genpkey -algorithm ed25519`: PKCS#8 private key; `openssl pkey
//! -pubout`: SPKI public key), or made by `resynth keygen`. The key id is
//! the sha256 of the raw 32-byte public key, a hint only: verification
//! tries every trusted key, as DSSE asks.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// DSSE payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// Predicate type of a resynth release decision.
pub const PREDICATE_TYPE: &str = "urn:resynth:predicate:release-approval:v1";

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("key file {path}: {message}")]
    Key { path: String, message: String },
    #[error("envelope: {0}")]
    Envelope(String),
    #[error("no trusted key verifies the envelope's signature (key ids tried: {0})")]
    Untrusted(String),
}

/// A DSSE envelope (JSON form).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub payload_type: String,
    /// Base64 of the serialized statement.
    pub payload: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    #[serde(default)]
    pub keyid: String,
    /// Base64 of the Ed25519 signature over PAE.
    pub sig: String,
}

/// What an approver decides about one release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Release id (batch id).
    pub release: String,
    /// sha256 of the binder's `manifest.json` the approver reviewed.
    pub manifest_sha256: String,
    /// `pass` (approved for release) or `fail` (rejected).
    pub result: String,
    /// Who decided (name or role).
    pub approver: String,
    /// RFC 3339 time of the decision.
    pub time: String,
    #[serde(default)]
    pub comment: String,
}

/// An envelope whose signature checked out, with what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub decision: Decision,
    /// Id of the trusted key that verified it.
    pub keyid: String,
    /// sha256 of the envelope's JSON bytes as stored.
    pub envelope_sha256: String,
}

/// DSSE's pre-authentication encoding.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Key id: hex sha256 of the raw public key.
pub fn keyid(key: &VerifyingKey) -> String {
    format!("{:x}", Sha256::digest(key.as_bytes()))
}

fn key_error(path: &Path, message: impl std::fmt::Display) -> ApprovalError {
    ApprovalError::Key {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// Reads a PKCS#8 PEM Ed25519 private key.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, ApprovalError> {
    let text = std::fs::read_to_string(path).map_err(|e| key_error(path, e))?;
    SigningKey::from_pkcs8_pem(&text).map_err(|e| {
        key_error(
            path,
            format!("not a PKCS#8 PEM Ed25519 private key (BEGIN PRIVATE KEY): {e}"),
        )
    })
}

/// Reads an SPKI PEM Ed25519 public key.
pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey, ApprovalError> {
    let text = std::fs::read_to_string(path).map_err(|e| key_error(path, e))?;
    VerifyingKey::from_public_key_pem(&text).map_err(|e| {
        key_error(
            path,
            format!("not an SPKI PEM Ed25519 public key (BEGIN PUBLIC KEY): {e}"),
        )
    })
}

/// A new key pair from the OS random source, as (private PEM, public PEM).
pub fn generate() -> Result<(String, String), ApprovalError> {
    use rand::TryRngCore;
    let mut seed = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut seed)
        .map_err(|e| ApprovalError::Envelope(format!("OS random source: {e}")))?;
    let key = SigningKey::from_bytes(&seed);
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| ApprovalError::Envelope(e.to_string()))?;
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| ApprovalError::Envelope(e.to_string()))?;
    Ok((private.to_string(), public))
}

/// The in-toto statement of a decision.
pub fn statement(d: &Decision) -> Value {
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": format!("resynth-binder/{}/manifest.json", d.release),
                     "digest": {"sha256": d.manifest_sha256}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {"release": d.release, "result": d.result, "approver": d.approver,
                      "time": d.time, "comment": d.comment},
    })
}

/// Signs a decision.
pub fn sign(d: &Decision, key: &SigningKey) -> Envelope {
    let body = serde_json::to_vec(&statement(d)).expect("statement serialises");
    let sig: Signature = key.sign(&pae(PAYLOAD_TYPE, &body));
    Envelope {
        payload_type: PAYLOAD_TYPE.into(),
        payload: STANDARD.encode(&body),
        signatures: vec![EnvelopeSignature {
            keyid: keyid(&key.verifying_key()),
            sig: STANDARD.encode(sig.to_bytes()),
        }],
    }
}

fn b64(s: &str) -> Result<Vec<u8>, ApprovalError> {
    STANDARD
        .decode(s)
        .or_else(|_| URL_SAFE.decode(s))
        .map_err(|e| ApprovalError::Envelope(format!("not base64: {e}")))
}

/// Verifies an envelope's bytes against the trusted keys and parses the
/// statement, following DSSE's verification order (signature, then type,
/// then parsing).
pub fn verify(bytes: &[u8], trusted: &[VerifyingKey]) -> Result<Verified, ApprovalError> {
    let envelope: Envelope = serde_json::from_slice(bytes)
        .map_err(|e| ApprovalError::Envelope(format!("not a DSSE envelope: {e}")))?;
    let body = b64(&envelope.payload)?;
    let message = pae(&envelope.payload_type, &body);
    let mut accepted = None;
    'outer: for s in &envelope.signatures {
        let Ok(raw) = b64(&s.sig) else { continue };
        let Ok(sig) = Signature::from_slice(&raw) else {
            continue;
        };
        for key in trusted {
            if key.verify_strict(&message, &sig).is_ok() {
                accepted = Some(keyid(key));
                break 'outer;
            }
        }
    }
    let Some(keyid) = accepted else {
        let ids: Vec<&str> = envelope
            .signatures
            .iter()
            .map(|s| s.keyid.as_str())
            .collect();
        return Err(ApprovalError::Untrusted(ids.join(", ")));
    };
    if envelope.payload_type != PAYLOAD_TYPE {
        return Err(ApprovalError::Envelope(format!(
            "payloadType {:?}, expected {PAYLOAD_TYPE}",
            envelope.payload_type
        )));
    }
    let st: Value = serde_json::from_slice(&body)
        .map_err(|e| ApprovalError::Envelope(format!("payload is not JSON: {e}")))?;
    if st["_type"] != STATEMENT_TYPE || st["predicateType"] != PREDICATE_TYPE {
        return Err(ApprovalError::Envelope(format!(
            "statement _type {} / predicateType {}: not a resynth release decision",
            st["_type"], st["predicateType"]
        )));
    }
    let p = &st["predicate"];
    let field = |v: &Value, name: &str| -> Result<String, ApprovalError> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| ApprovalError::Envelope(format!("statement: {name} missing")))
    };
    let decision = Decision {
        release: field(&p["release"], "predicate.release")?,
        manifest_sha256: field(&st["subject"][0]["digest"]["sha256"], "subject digest")?,
        result: field(&p["result"], "predicate.result")?,
        approver: field(&p["approver"], "predicate.approver")?,
        time: field(&p["time"], "predicate.time")?,
        comment: p["comment"].as_str().unwrap_or("").to_string(),
    };
    if !["pass", "fail"].contains(&decision.result.as_str()) {
        return Err(ApprovalError::Envelope(format!(
            "predicate.result {:?}: expected pass or fail",
            decision.result
        )));
    }
    Ok(Verified {
        decision,
        keyid,
        envelope_sha256: format!("{:x}", Sha256::digest(bytes)),
    })
}

/// Loads every trusted public key.
pub fn load_trusted(paths: &[std::path::PathBuf]) -> Result<Vec<VerifyingKey>, ApprovalError> {
    paths.iter().map(|p| load_verifying_key(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision() -> Decision {
        Decision {
            release: "demo-0-v1".into(),
            manifest_sha256: "ab".repeat(32),
            result: "pass".into(),
            approver: "privacy officer".into(),
            time: "2026-01-01T00:00:00.000Z".into(),
            comment: String::new(),
        }
    }

    #[test]
    fn pae_matches_the_dsse_test_vector() {
        // DSSE protocol.md: PAE("http://example.com/HelloWorld", "hello world").
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn ed25519_matches_rfc8032_test_1() {
        // RFC 8032 §7.1 TEST 1: empty message.
        let secret: [u8; 32] =
            hex_bytes("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let key = SigningKey::from_bytes(&secret);
        assert_eq!(
            hex(key.verifying_key().as_bytes()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        assert_eq!(
            hex(&key.sign(b"").to_bytes()),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn hex_bytes<const N: usize>(s: &str) -> [u8; N] {
        let mut out = [0u8; N];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    #[test]
    fn signed_decisions_verify_only_against_the_signer_and_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = generate().unwrap();
        std::fs::write(dir.path().join("k.pem"), &private).unwrap();
        std::fs::write(dir.path().join("k.pub.pem"), &public).unwrap();
        let key = load_signing_key(&dir.path().join("k.pem")).unwrap();
        let trusted = load_verifying_key(&dir.path().join("k.pub.pem")).unwrap();
        let envelope = sign(&decision(), &key);
        let bytes = serde_json::to_vec(&envelope).unwrap();
        let v = verify(&bytes, &[trusted]).unwrap();
        assert_eq!(v.decision, decision());
        assert_eq!(v.keyid, keyid(&trusted));

        let (_, other) = generate().unwrap();
        std::fs::write(dir.path().join("o.pub.pem"), &other).unwrap();
        let other = load_verifying_key(&dir.path().join("o.pub.pem")).unwrap();
        assert!(matches!(
            verify(&bytes, &[other]),
            Err(ApprovalError::Untrusted(_))
        ));

        // A changed payload (another manifest digest) no longer verifies.
        let mut forged = envelope.clone();
        let mut d = decision();
        d.manifest_sha256 = "cd".repeat(32);
        forged.payload = STANDARD.encode(serde_json::to_vec(&statement(&d)).unwrap());
        assert!(verify(&serde_json::to_vec(&forged).unwrap(), &[trusted]).is_err());
        // So does a changed payload type (it is authenticated by PAE).
        let mut retyped = envelope.clone();
        retyped.payload_type = "application/json".into();
        assert!(verify(&serde_json::to_vec(&retyped).unwrap(), &[trusted]).is_err());
        // URL-safe base64 is accepted, as DSSE requires.
        let mut url = envelope;
        let body = STANDARD.decode(&url.payload).unwrap();
        url.payload = URL_SAFE.encode(body);
        assert!(verify(&serde_json::to_vec(&url).unwrap(), &[trusted]).is_ok());
        // Keys of the wrong kind are named.
        std::fs::write(dir.path().join("bad.pem"), "hello").unwrap();
        let err = load_signing_key(&dir.path().join("bad.pem")).unwrap_err();
        assert!(err.to_string().contains("bad.pem"), "{err}");
    }
}
