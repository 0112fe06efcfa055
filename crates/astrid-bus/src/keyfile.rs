//! Ed25519 key files of `astrid-bus keygen`, `pub --sign-key` and
//! `sub --trust`.
//!
//! # Format
//!
//! One line of text, a label, one space and 64 hex digits:
//!
//! - secret key (`FILE`): `ed25519-seed <hex of the 32-byte seed>`;
//! - public key (`FILE.pub`): `ed25519-public <hex of the 32-byte key>`.
//!
//! Surrounding whitespace is ignored and either hex case is read; files are
//! written in lowercase with a final newline. The labels keep the two kinds
//! apart: handing a secret file to `--trust` (or a public one to
//! `--sign-key`) is refused with a message saying so, instead of failing
//! later as an untrusted key. The public hex is also the key id the bridge
//! sends first in its `Astrid-Signature` header.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use astrid_events_nats::{NodeSigner, TrustedKeys};
use ed25519_dalek::VerifyingKey;

/// Label of a secret key (seed) file.
const SEED_LABEL: &str = "ed25519-seed";
/// Label of a public key file.
const PUBLIC_LABEL: &str = "ed25519-public";

/// The public key file that goes with secret key file `secret`.
pub(crate) fn public_path(secret: &Path) -> PathBuf {
    let mut name = secret.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// Generates a key pair: writes `secret` (owner-only on Unix) and
/// `secret.pub`, refusing to overwrite either. Returns the key id (public
/// key hex).
pub(crate) fn generate(secret: &Path) -> anyhow::Result<String> {
    let public = public_path(secret);
    if public.exists() {
        bail!("{} already exists; not overwriting it", public.display());
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow!("cannot get random bytes: {e}"))?;
    let signer = NodeSigner::from_secret_bytes(&seed);
    let key_id = to_hex(signer.verifying_key().as_bytes());

    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(secret)
        .with_context(|| format!("cannot create {}", secret.display()))?;
    writeln!(file, "{SEED_LABEL} {}", to_hex(&seed))
        .with_context(|| format!("cannot write {}", secret.display()))?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&public)
        .with_context(|| format!("cannot create {}", public.display()))?;
    writeln!(file, "{PUBLIC_LABEL} {key_id}")
        .with_context(|| format!("cannot write {}", public.display()))?;
    Ok(key_id)
}

/// Reads a secret key file.
pub(crate) fn read_signer(path: &Path) -> anyhow::Result<NodeSigner> {
    let bytes = read_key(path, SEED_LABEL)?;
    Ok(NodeSigner::from_secret_bytes(&bytes))
}

/// Reads public key files into a trust set.
pub(crate) fn read_trusted(paths: &[PathBuf]) -> anyhow::Result<TrustedKeys> {
    let mut keys = TrustedKeys::new();
    for path in paths {
        let bytes = read_key(path, PUBLIC_LABEL)?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| anyhow!("{}: not a valid ed25519 public key", path.display()))?;
        keys.trust(key);
    }
    Ok(keys)
}

/// Reads the 32 bytes of a key file whose label must be `want`.
fn read_key(path: &Path, want: &str) -> anyhow::Result<[u8; 32]> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    parse_key(&text, want).map_err(|e| anyhow!("key file {}: {e}", path.display()))
}

/// Parses `<label> <64 hex>`; the error never repeats the file's content.
fn parse_key(text: &str, want: &str) -> Result<[u8; 32], String> {
    let (label, hex) = text
        .trim()
        .split_once(' ')
        .ok_or_else(|| format!("expected one line `{want} <64 hex digits>`"))?;
    if label != want {
        return Err(match label {
            SEED_LABEL => "is a secret key; --trust takes the public key file (FILE.pub)".into(),
            PUBLIC_LABEL => "is a public key; --sign-key takes the secret key file".into(),
            _ => format!("expected one line `{want} <64 hex digits>`"),
        });
    }
    from_hex(hex.trim())
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .ok_or_else(|| "the key is not 64 hex digits".to_owned())
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Strict hex: digits only (no sign, no space), either case, even length.
fn from_hex(s: &str) -> Option<Vec<u8>> {
    let digits: Option<Vec<u8>> = s
        .chars()
        .map(|c| c.to_digit(16).and_then(|d| u8::try_from(d).ok()))
        .collect();
    let digits = digits?;
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    Some(digits.chunks_exact(2).map(|p| (p[0] << 4) | p[1]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_strictness() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(from_hex(&to_hex(&bytes)), Some(bytes));
        assert_eq!(from_hex("ABcd"), Some(vec![0xab, 0xcd]));
        for bad in ["a", "zz", "+1", "é0", " 1"] {
            assert_eq!(from_hex(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn labels_keep_secret_and_public_apart() {
        let hex = "ab".repeat(32);
        let seed = format!("{SEED_LABEL} {hex}\n");
        let public = format!("  {PUBLIC_LABEL} {hex}");
        assert_eq!(parse_key(&seed, SEED_LABEL), Ok([0xab; 32]));
        assert_eq!(parse_key(&public, PUBLIC_LABEL), Ok([0xab; 32]));
        assert!(
            parse_key(&seed, PUBLIC_LABEL)
                .unwrap_err()
                .contains("secret")
        );
        assert!(
            parse_key(&public, SEED_LABEL)
                .unwrap_err()
                .contains("public")
        );
        assert!(parse_key(&hex, SEED_LABEL).is_err());
        let short = format!("{SEED_LABEL} {}", "ab".repeat(31));
        assert!(
            parse_key(&short, SEED_LABEL)
                .unwrap_err()
                .contains("64 hex")
        );
    }

    #[test]
    fn generated_pair_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("node");
        let key_id = generate(&secret).expect("keygen");
        let signer = read_signer(&secret).expect("secret reads");
        assert_eq!(signer.key_id().to_string(), key_id);
        let trusted = read_trusted(&[public_path(&secret)]).expect("public reads");
        assert_eq!(trusted.len(), 1);
        assert!(generate(&secret).is_err(), "never overwrites");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&secret)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "secret is owner-only");
        }
    }
}
