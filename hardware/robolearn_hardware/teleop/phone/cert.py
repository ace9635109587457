"""The phone page's TLS certificate: self-signed, generated once per install, never overwritten.

A phone browser grants WebXR (and motion sensors) only to a secure context, so the phone page is served over
HTTPS. `ensure_certificate(folder)` makes ``cert.pem`` + ``key.pem`` (EC P-256, valid 10 years, for
``localhost``, this host's name and the addresses given) the first time and reuses them afterwards: the phone
accepts the certificate once and keeps trusting it. The key is written with mode 0600 and opened
exclusively (it is never replaced: delete both files yourself to get a new pair). Needs the ``cryptography``
package (the ``phone`` extra).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from collections.abc import Sequence
from pathlib import Path

from robolearn.errors import MissingExtraError, UserError

__all__ = ["default_folder", "ensure_certificate"]


def default_folder() -> Path:
    """``$XDG_CONFIG_HOME/robolearn/phone`` (``~/.config/robolearn/phone``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "robolearn" / "phone"


def ensure_certificate(folder: str | Path | None = None, addresses: Sequence[str] = ()) -> tuple[Path, Path]:
    """(cert.pem, key.pem) in `folder`, made on the first call (module docstring)."""
    folder = Path(folder) if folder is not None else default_folder()
    cert, key = folder / "cert.pem", folder / "key.pem"
    if cert.exists() and key.exists():
        if key.stat().st_mode & 0o077:
            raise UserError(f"{key} is readable by other users (mode {key.stat().st_mode & 0o777:o}); run "
                            f"`chmod 600 {key}` (robolearn does not change files it finds).")
        return cert, key
    if cert.exists() or key.exists():
        present, missing = (cert, key) if cert.exists() else (key, cert)
        raise UserError(f"{present} exists but {missing} does not; robolearn never overwrites them: move {present} "
                        "away to make a new pair, or put its partner back.")
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        raise MissingExtraError("the phone teleop's HTTPS certificate needs cryptography: "
                                "pip install 'robolearn-hardware[phone]'") from None
    folder.mkdir(parents=True, exist_ok=True)
    private = ec.generate_private_key(ec.SECP256R1())
    host = socket.gethostname()
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.DNSName(host)]
    for a in {"127.0.0.1", *addresses}:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(a)))
        except ValueError:
            names.append(x509.DNSName(a))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"robolearn phone teleop on {host}")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(private.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=3650))
                   .add_extension(x509.SubjectAlternativeName(names), critical=False)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .sign(private, hashes.SHA256()))
    key_bytes = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)   # exclusive: never replaces a key
    with os.fdopen(fd, "wb") as f:
        f.write(key_bytes)
    fd = os.open(cert, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(certificate.public_bytes(serialization.Encoding.PEM))
    return cert, key
