"""The hub's export signing key: Ed25519, kept in ``<data_dir>/keys/`` (docs/design.md, "second
batch"). The private key is written once, 0600, atomically (a crash never leaves half a key); the
public key beside it is what ``anninh export key`` prints for a court or an investigator to pin.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PRIVATE_NAME = "export_ed25519.pem"
PUBLIC_NAME = "export_ed25519.pub.pem"


def key_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "keys"


def load_or_create(data_dir: Path) -> Ed25519PrivateKey:
    """The hub's private key, created on first use."""
    d = key_dir(data_dir)
    path = d / PRIVATE_NAME
    if not path.exists():
        d.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(d, 0o700)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        tmp = d / f".{PRIVATE_NAME}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # never replaces a key another process created meanwhile
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        (d / PUBLIC_NAME).write_bytes(public_pem(load_private(path).public_key()))
    return load_private(path)


def load_private(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def public_pem(key: Ed25519PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM."""
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_pem(data: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def fingerprint(key: Ed25519PublicKey) -> str:
    """``SHA256:`` and the hex SHA-256 of the key's DER SubjectPublicKeyInfo (what
    ``openssl pkey -pubin -outform DER | sha256sum`` prints)."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "SHA256:" + hashlib.sha256(der).hexdigest()
