"""The evidence package on disk: manifest, signature, verification (docs/design.md, "second
batch", Evidence package).

``manifest.json`` is written once, as UTF-8 JSON; ``manifest.sig`` is the base64 of the 64-byte
Ed25519 signature over its exact bytes; ``hub_public_key.pem`` is the signer's public key. A copy
can be checked without the hub: ``sha256sum`` against the manifest's ``files``, and any Ed25519
implementation against the signature (:func:`verify` is this check in Python).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hub.export.keys import fingerprint, load_public_pem, public_pem

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
PUBLIC_KEY = "hub_public_key.pem"
PACKAGE_FILES = (MANIFEST, SIGNATURE, PUBLIC_KEY)
CHUNK = 1024 * 1024


def sha256_file(path: Path) -> tuple[str, int]:
    """(hex SHA-256, bytes) of a file, read in 1 MB chunks."""
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def seal(directory: Path, manifest: dict[str, Any], key: Ed25519PrivateKey) -> bytes:
    """Write manifest.json, manifest.sig and hub_public_key.pem into ``directory``; returns the
    manifest's bytes."""
    data = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    _write_synced(directory / MANIFEST, data)
    _write_synced(directory / SIGNATURE, base64.b64encode(key.sign(data)) + b"\n")
    _write_synced(directory / PUBLIC_KEY, public_pem(key.public_key()))
    return data


def verify(directory: Path, key: Ed25519PublicKey | None = None) -> tuple[list[str], str | None]:
    """Check a package: ``(problems, fingerprint of the key used)``; no problems means intact.

    With ``key`` (the hub's pinned public key) the signature must be that key's; without it, the
    package's own ``hub_public_key.pem`` is used, which proves integrity but not origin: compare
    the fingerprint returned with the one the hub prints (``anninh export key``)."""
    directory = Path(directory)
    problems: list[str] = []
    if not directory.is_dir():
        return [f"{directory}: not a directory"], None
    try:
        data = (directory / MANIFEST).read_bytes()
    except OSError:
        return [f"{MANIFEST}: missing"], None
    used: Ed25519PublicKey | None = key
    if used is None:
        try:
            used = load_public_pem((directory / PUBLIC_KEY).read_bytes())
        except (OSError, ValueError):
            problems.append(f"{PUBLIC_KEY}: missing or not an Ed25519 public key")
    elif (directory / PUBLIC_KEY).exists():
        try:
            if load_public_pem((directory / PUBLIC_KEY).read_bytes()) != used:
                problems.append(f"{PUBLIC_KEY}: not the key given (the package was signed by another key)")
        except ValueError:
            problems.append(f"{PUBLIC_KEY}: not an Ed25519 public key")
    if used is not None:
        try:
            sig = base64.b64decode((directory / SIGNATURE).read_bytes().strip(), validate=True)
            used.verify(sig, data)
        except OSError:
            problems.append(f"{SIGNATURE}: missing")
        except (InvalidSignature, ValueError):
            problems.append(f"{SIGNATURE}: bad signature: {MANIFEST} was changed or signed by another key")
    try:
        manifest = json.loads(data)
        files = {f["path"]: f for f in manifest["files"]}
    except (ValueError, KeyError, TypeError):
        problems.append(f"{MANIFEST}: not a valid manifest")
        files = {}
    present = {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}
    for rel, entry in sorted(files.items()):
        path = directory / rel
        if ".." in Path(rel).parts or rel.startswith("/"):
            problems.append(f"{rel}: path outside the package")
        elif rel not in present:
            problems.append(f"{rel}: removed")
        else:
            digest, size = sha256_file(path)
            if digest != entry.get("sha256") or size != entry.get("bytes"):
                problems.append(f"{rel}: changed (SHA-256 or size differs from the manifest)")
    for rel in sorted(present - set(files) - set(PACKAGE_FILES)):
        problems.append(f"{rel}: added (not in the manifest)")
    return problems, fingerprint(used) if used is not None else None
