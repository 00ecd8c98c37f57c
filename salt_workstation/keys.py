"""Repository signing keys, pinned by fingerprint: a key is installed only when it is the one the pillar names."""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import tempfile

from salt_workstation import safefs
from salt_workstation.errors import WorkstationError

GPG = "gpg"


@contextlib.contextmanager
def _scratch_home():
    """A new private (0700) folder in the temporary folder, removed afterwards without following a link."""
    with safefs.Dir.root(tempfile.gettempdir()) as temporary:
        name = f"workstation-gpg-{secrets.token_hex(8)}"
        temporary.mkdir(name, 0o700).close()
        try:
            yield temporary.join(name)
        finally:
            temporary.remove(name)


def _gpg(args: list[str], data: bytes) -> bytes:
    """Run gpg with a throwaway home, so no keyring of the machine is read or changed."""
    with _scratch_home() as home:
        try:
            completed = subprocess.run(
                [GPG, "--homedir", home, "--batch", "--no-tty", *args],
                input=data,
                capture_output=True,
                timeout=60,
                check=False,
            )
        except FileNotFoundError:
            raise WorkstationError(
                "gpg is not installed; install the gnupg package to manage repository keys"
            ) from None
    if completed.returncode != 0:
        raise WorkstationError(
            f"gpg could not read the key: {completed.stderr.decode(errors='replace').strip()}"
        )
    return completed.stdout


def fingerprints(key: str | bytes) -> list[str]:
    """Primary-key fingerprints (upper-case hex) of an armoured or binary public key."""
    data = key.encode() if isinstance(key, str) else key
    listing = _gpg(["--with-colons", "--show-keys"], data).decode()
    result, primary = [], False
    for line in listing.splitlines():
        fields = line.split(":")
        if fields[0] == "pub":
            primary = True
        elif fields[0] == "sub":
            primary = False
        elif fields[0] == "fpr" and primary:
            result.append(fields[9].upper())
            primary = False
    return result


def normalize_fingerprint(value: str) -> str:
    return "".join(str(value).split()).upper()


def pinned_keyring(key: str, fingerprint: str) -> bytes:
    """The binary keyring for apt's signed-by, or an error when the key is not the pinned one."""
    want = normalize_fingerprint(fingerprint)
    found = fingerprints(key)
    if found != [want]:
        raise WorkstationError(
            f"the key's fingerprint is {', '.join(found) or 'unreadable'}, the pillar pins {want}; "
            "the key was not installed. Check the key text, or update the pinned fingerprint after verifying the new key"
        )
    return _gpg(["--dearmor"], key.encode()) if "BEGIN PGP" in key else key.encode()
