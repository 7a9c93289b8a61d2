//! Who may speak to a participant: every connection proves that it knows
//! the cluster's secret before anything else is read from it.
//!
//! The handshake (challenge–response, both ways):
//! 1. node → peer: `hello {node, pid, faults_allowed, nonce: N}`, N fresh;
//! 2. peer → node: `auth {role, cluster, epoch, legacy_history, nonce: M,
//!    proof}` with proof = HMAC-SHA256(secret, N, M, the node and every
//!    field of the `auth`);
//! 3. node → peer: `welcome {proof}` with HMAC-SHA256(secret, N, M, node)
//!    under another label, or an `error` line and the connection closed.
//!
//! What it gives: only holders of the secret open a session, in either
//! direction; the secret never crosses the wire; a recorded handshake
//! cannot be replayed (each side brings a fresh nonce); the cluster and
//! epoch a coordinator claims are bound to its proof. What it does not
//! give: encryption, or protection of an established TCP connection from an
//! attacker on the path who can inject into it (keep the participants'
//! network private, or tunnel it).

use std::fmt;
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::limits::{
    AUTH_NONCE_BYTES, CLUSTER_SECRET_BYTES, CLUSTER_SECRET_BYTES_MIN, CLUSTER_SECRET_FILE_BYTES_MAX,
};
use crate::wire::{ClusterId, Epoch, NodeId, PeerRole, Reply, Request};

/// The secret every process of one cluster holds (hex in a file, created
/// by the coordinator in its data dir; see the README's deployment notes).
#[derive(Clone)]
pub struct ClusterSecret {
    bytes: Vec<u8>,
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterSecret(hidden)")
    }
}

impl ClusterSecret {
    /// A secret from fresh random bytes (the caller's).
    pub fn from_random(bytes: [u8; CLUSTER_SECRET_BYTES]) -> ClusterSecret {
        ClusterSecret {
            bytes: bytes.to_vec(),
        }
    }

    /// A secret as its file holds it: hex, surrounding whitespace ignored.
    pub fn parse(text: &str) -> Result<ClusterSecret, String> {
        let bytes = from_hex(text.trim()).ok_or_else(|| {
            "a cluster secret is hexadecimal digits (0-9, a-f) and nothing else".to_string()
        })?;
        if bytes.len() < CLUSTER_SECRET_BYTES_MIN {
            return Err(format!(
                "a cluster secret needs at least {} hex digits ({CLUSTER_SECRET_BYTES_MIN} bytes); this one has {}",
                2 * CLUSTER_SECRET_BYTES_MIN,
                2 * bytes.len()
            ));
        }
        Ok(ClusterSecret { bytes })
    }

    /// The file's text: hex and a newline.
    pub fn to_file_text(&self) -> String {
        format!("{}\n", to_hex(&self.bytes))
    }

    /// Reads the secret file at `path`; errors name the file and the fix.
    pub fn load(path: &Path) -> Result<ClusterSecret, String> {
        let fix = "copy the coordinator's <data-dir>/coordinator/cluster.secret there (see the README, \"Deployment\")";
        let meta = std::fs::metadata(path).map_err(|e| {
            format!(
                "cannot read the cluster secret {}: {e}; {fix}",
                path.display()
            )
        })?;
        if meta.len() > CLUSTER_SECRET_FILE_BYTES_MAX {
            return Err(format!(
                "the cluster secret {} is {} bytes, more than the {CLUSTER_SECRET_FILE_BYTES_MAX} a secret file may have; {fix}",
                path.display(),
                meta.len()
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read the cluster secret {}: {e}; {fix}",
                path.display()
            )
        })?;
        ClusterSecret::parse(&text).map_err(|e| format!("{}: {e}; {fix}", path.display()))
    }

    /// Reads the secret at `path`, or creates it there (readable by its
    /// owner only, synced with its directory) from `random` if there is no
    /// file yet. Returns whether it was created.
    pub fn load_or_create(
        path: &Path,
        random: impl FnOnce() -> [u8; CLUSTER_SECRET_BYTES],
    ) -> Result<(ClusterSecret, bool), String> {
        if path.exists() {
            return ClusterSecret::load(path).map(|s| (s, false));
        }
        let secret = ClusterSecret::from_random(random());
        write_private(path, secret.to_file_text().as_bytes())
            .map_err(|e| format!("cannot create the cluster secret {}: {e}", path.display()))?;
        Ok((secret, true))
    }

    fn mac(&self, label: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.bytes)
            .expect("HMAC takes keys of any length");
        mac.update(label);
        mac
    }
}

/// Writes a new file only its owner can read, then syncs it and its
/// directory (a secret that a crash loses would lock the cluster out).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()
}

/// What a peer claims in its `auth`, bound to its proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub role: PeerRole,
    pub cluster: ClusterId,
    pub epoch: Epoch,
    pub legacy_history: bool,
}

/// A fresh nonce from the caller's random bytes, as the handshake sends it.
pub fn nonce(random: [u8; AUTH_NONCE_BYTES]) -> String {
    to_hex(&random)
}

/// Fields go in with their lengths, so no two different handshakes hash
/// the same bytes.
fn field(mac: &mut Hmac<Sha256>, bytes: &[u8]) {
    mac.update(&(bytes.len() as u64).to_le_bytes());
    mac.update(bytes);
}

fn peer_mac(
    secret: &ClusterSecret,
    node: &NodeId,
    node_nonce: &str,
    peer_nonce: &str,
    claim: &Claim,
) -> Hmac<Sha256> {
    let mut mac = secret.mac(b"tpc-auth-v1 peer");
    field(&mut mac, node.as_bytes());
    field(&mut mac, node_nonce.as_bytes());
    field(&mut mac, peer_nonce.as_bytes());
    let role: &[u8] = match claim.role {
        PeerRole::Coordinator => b"coordinator",
        PeerRole::Admin => b"admin",
    };
    field(&mut mac, role);
    field(&mut mac, claim.cluster.as_bytes());
    field(&mut mac, &claim.epoch.to_le_bytes());
    field(&mut mac, &[u8::from(claim.legacy_history)]);
    mac
}

fn node_mac(
    secret: &ClusterSecret,
    node: &NodeId,
    node_nonce: &str,
    peer_nonce: &str,
) -> Hmac<Sha256> {
    let mut mac = secret.mac(b"tpc-auth-v1 node");
    field(&mut mac, node.as_bytes());
    field(&mut mac, node_nonce.as_bytes());
    field(&mut mac, peer_nonce.as_bytes());
    mac
}

/// The peer's proof for its `auth` (step 2).
pub fn peer_proof(
    secret: &ClusterSecret,
    node: &NodeId,
    node_nonce: &str,
    peer_nonce: &str,
    claim: &Claim,
) -> String {
    to_hex(
        &peer_mac(secret, node, node_nonce, peer_nonce, claim)
            .finalize()
            .into_bytes(),
    )
}

/// Whether an `auth`'s proof is right (constant time).
pub fn verify_peer(
    secret: &ClusterSecret,
    node: &NodeId,
    node_nonce: &str,
    peer_nonce: &str,
    claim: &Claim,
    proof: &str,
) -> bool {
    let Some(proof) = from_hex(proof) else {
        return false;
    };
    peer_mac(secret, node, node_nonce, peer_nonce, claim)
        .verify_slice(&proof)
        .is_ok()
}

/// The node's proof for its `welcome` (step 3).
pub fn node_proof(
    secret: &ClusterSecret,
    node: &NodeId,
    node_nonce: &str,
    peer_nonce: &str,
) -> String {
    to_hex(
        &node_mac(secret, node, node_nonce, peer_nonce)
            .finalize()
            .into_bytes(),
    )
}

/// Whether a `welcome`'s proof is right (constant time).
pub fn verify_node(
    secret: &ClusterSecret,
    node: &NodeId,
    node_nonce: &str,
    peer_nonce: &str,
    proof: &str,
) -> bool {
    let Some(proof) = from_hex(proof) else {
        return false;
    };
    node_mac(secret, node, node_nonce, peer_nonce)
        .verify_slice(&proof)
        .is_ok()
}

/// A peer's side of the handshake, step 2: the `auth` that answers a
/// node's `hello`, with `nonce` fresh from the caller's random bytes.
/// Returns the node's id and nonce (to check its `welcome` with
/// [`check_welcome`]) and the request to send.
pub fn answer_hello(
    secret: &ClusterSecret,
    hello: &Reply,
    claim: &Claim,
    nonce: String,
) -> Result<(NodeId, String, Request), String> {
    let Reply::Hello {
        node,
        nonce: node_nonce,
        ..
    } = hello
    else {
        return Err(format!(
            "the participant did not say hello first: {hello:?}"
        ));
    };
    let proof = peer_proof(secret, node, node_nonce, &nonce, claim);
    let auth = Request::Auth {
        role: claim.role,
        cluster: claim.cluster.clone(),
        epoch: claim.epoch,
        legacy_history: claim.legacy_history,
        nonce,
        proof,
    };
    Ok((node.clone(), node_nonce.clone(), auth))
}

/// A peer's side of the handshake, step 4: the node's answer to its
/// `auth` must be a `welcome` with the node's proof; an `error` is the
/// node's refusal, whose sentence is returned.
pub fn check_welcome(
    secret: &ClusterSecret,
    node: &NodeId,
    node_nonce: &str,
    peer_nonce: &str,
    answer: &Reply,
) -> Result<(), String> {
    match answer {
        Reply::Welcome { proof } if verify_node(secret, node, node_nonce, peer_nonce, proof) => Ok(()),
        Reply::Welcome { .. } => Err(format!(
            "node {node} answered with a wrong proof: it does not hold this cluster's secret (an impostor, or another cluster's node)"
        )),
        Reply::Error { message } => Err(message.clone()),
        other => Err(format!("node {node} did not welcome us: {other:?}")),
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(byte: u8) -> ClusterSecret {
        ClusterSecret::from_random([byte; CLUSTER_SECRET_BYTES])
    }

    fn claim() -> Claim {
        Claim {
            role: PeerRole::Coordinator,
            cluster: "c1".into(),
            epoch: 3,
            legacy_history: false,
        }
    }

    #[test]
    fn a_proof_holds_only_for_its_secret_nonces_node_and_claim() {
        let s = secret(7);
        let node = NodeId::from("6001");
        let proof = peer_proof(&s, &node, "n1", "m1", &claim());
        assert!(verify_peer(&s, &node, "n1", "m1", &claim(), &proof));
        assert!(!verify_peer(
            &secret(8),
            &node,
            "n1",
            "m1",
            &claim(),
            &proof
        ));
        assert!(!verify_peer(
            &s,
            &"6002".into(),
            "n1",
            "m1",
            &claim(),
            &proof
        ));
        assert!(!verify_peer(&s, &node, "n2", "m1", &claim(), &proof));
        assert!(!verify_peer(&s, &node, "n1", "m2", &claim(), &proof));
        for other in [
            Claim {
                epoch: 4,
                ..claim()
            },
            Claim {
                cluster: "c2".into(),
                ..claim()
            },
            Claim {
                role: PeerRole::Admin,
                ..claim()
            },
            Claim {
                legacy_history: true,
                ..claim()
            },
        ] {
            assert!(
                !verify_peer(&s, &node, "n1", "m1", &other, &proof),
                "{other:?}"
            );
        }
        assert!(!verify_peer(&s, &node, "n1", "m1", &claim(), "zz"));
        assert!(!verify_peer(&s, &node, "n1", "m1", &claim(), ""));
        // The node's proof is another function of the same inputs: a
        // peer's proof is never a valid welcome, nor the other way round.
        let welcome = node_proof(&s, &node, "n1", "m1");
        assert!(verify_node(&s, &node, "n1", "m1", &welcome));
        assert!(!verify_node(&s, &node, "n1", "m1", &proof));
        assert!(!verify_node(&secret(8), &node, "n1", "m1", &welcome));
    }

    #[test]
    fn secrets_parse_from_hex_and_refuse_short_or_odd_text() {
        let s = secret(0xab);
        let back = ClusterSecret::parse(&s.to_file_text()).expect("round trip");
        assert_eq!(back.bytes, s.bytes);
        assert!(ClusterSecret::parse("abc").is_err());
        assert!(ClusterSecret::parse("not hex at all, not hex at all, not hex").is_err());
        let short = ClusterSecret::parse(&"ab".repeat(CLUSTER_SECRET_BYTES_MIN - 1)).unwrap_err();
        assert!(short.contains("at least"), "{short}");
        assert!(ClusterSecret::parse(&format!("  {}\n\n", "0f".repeat(16))).is_ok());
        assert_eq!(format!("{s:?}"), "ClusterSecret(hidden)");
    }

    #[test]
    fn a_secret_file_is_created_private_once_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("cluster.secret");
        let (first, created) =
            ClusterSecret::load_or_create(&path, || [5; CLUSTER_SECRET_BYTES]).expect("created");
        assert!(created);
        let mode = std::fs::metadata(&path)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, created) =
            ClusterSecret::load_or_create(&path, || [6; CLUSTER_SECRET_BYTES]).expect("read");
        assert!(!created);
        assert_eq!(again.bytes, first.bytes);
        std::fs::write(&path, "xyz").expect("overwrite");
        let e = ClusterSecret::load(&path).unwrap_err();
        assert!(
            e.contains("cluster.secret") && e.contains("hexadecimal"),
            "{e}"
        );
        let e = ClusterSecret::load(&dir.path().join("missing")).unwrap_err();
        assert!(
            e.contains("missing") && e.contains("copy the coordinator"),
            "{e}"
        );
    }
}
