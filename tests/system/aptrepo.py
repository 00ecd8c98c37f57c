"""A signed apt repository of stand-in packages, made the way a studio's would be.

Keys come from gpg in a throwaway GNUPGHOME (no passphrase), packages from
dpkg-deb, and the indexes (Packages, Release) are written here in Python, so
no apt-utils is needed on the host; Release is signed as InRelease and
Release.gpg. An unsigned tree (no InRelease, no Release.gpg) and a tree signed
by a second key are built beside the good one.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import pkgutil
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.system import standins

SUITE = "bookworm"
COMPONENT = "main"
ARCH = "amd64"


class Gpg:
    """gpg with its own temporary home; close() stops the agent it started and deletes the home."""

    def __init__(self):
        # Short path: gpg-agent's socket lives here and unix socket paths are limited to 108 bytes.
        self.home = Path(tempfile.mkdtemp(prefix="ws-gpg-"))
        self.home.chmod(0o700)

    def run(self, *args: str, input: bytes | None = None) -> bytes:
        completed = subprocess.run(
            [
                "gpg",
                "--homedir",
                str(self.home),
                "--batch",
                "--no-tty",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                *args,
            ],
            input=input,
            capture_output=True,
            timeout=120,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(
                f"gpg {' '.join(args)} failed: {completed.stderr.decode(errors='replace')}"
            )
        return completed.stdout

    def generate(self, uid: str) -> str:
        """A new signing key (ed25519, no expiry); returns its fingerprint (40 upper-case hex)."""
        self.run("--quick-gen-key", uid, "ed25519", "sign", "never")
        listing = self.run("--with-colons", "--list-keys", uid).decode()
        fingerprints = [
            line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
        ]
        return fingerprints[0].upper()

    def armored(self, fingerprint: str) -> str:
        return self.run("--armor", "--export", fingerprint).decode()

    def sign_release(self, fingerprint: str, release: Path) -> None:
        self.run(
            "--yes",
            "--local-user",
            fingerprint,
            "--digest-algo",
            "SHA512",
            "--clearsign",
            "--output",
            str(release.with_name("InRelease")),
            str(release),
        )
        self.run(
            "--yes",
            "--local-user",
            fingerprint,
            "--digest-algo",
            "SHA512",
            "--armor",
            "--detach-sign",
            "--output",
            str(release.with_name("Release.gpg")),
            str(release),
        )

    def close(self) -> None:
        subprocess.run(
            ["gpgconf", "--homedir", str(self.home), "--kill", "all"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.home, ignore_errors=True)


@dataclass
class StandIn:
    """One stand-in package: its files (absolute path -> (bytes, mode))."""

    name: str
    version: str
    files: dict
    description: str
    fields: dict = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return f"{self.name}_{self.version}_all.deb"


def unit_file(description: str, exec_start: str) -> bytes:
    return (
        f"[Unit]\nDescription={description}\n\n[Service]\nType=simple\nExecStart={exec_start}\n\n"
        "[Install]\nWantedBy=multi-user.target\n"
    ).encode()


def stand_ins() -> list:
    """Every stand-in package: each module in tests/system/standins/ lists its own in STAND_INS."""
    found = []
    for module in sorted(pkgutil.iter_modules(standins.__path__), key=lambda m: m.name):
        found.extend(importlib.import_module(f"{standins.__name__}.{module.name}").STAND_INS)
    return found


def build_deb(package: StandIn, workdir: Path) -> tuple[Path, dict]:
    """dpkg-deb --build a package tree; returns the .deb and its control fields."""
    tree = workdir / f"{package.name}-{package.version}"
    for path, (data, mode) in package.files.items():
        target = tree / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(mode)
    installed_kib = max(1, sum(len(data) for data, _ in package.files.values()) // 1024)
    control = {
        "Package": package.name,
        "Version": package.version,
        "Architecture": "all",
        "Maintainer": "Studio Pipeline <pipeline@studio.test>",
        "Installed-Size": str(installed_kib),
        "Section": "misc",
        "Priority": "optional",
        **package.fields,
        "Description": package.description,
    }
    (tree / "DEBIAN").mkdir(parents=True, exist_ok=True)
    (tree / "DEBIAN" / "control").write_text(
        "".join(f"{key}: {value}\n" for key, value in control.items())
    )
    deb = workdir / package.filename
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(deb)],
        check=True,
        capture_output=True,
    )
    return deb, control


def _hashes(data: bytes) -> dict:
    return {"MD5Sum": hashlib.md5(data).hexdigest(), "SHA256": hashlib.sha256(data).hexdigest()}


def write_tree(root: Path, debs: list[tuple[Path, dict]], signer: tuple[Gpg, str] | None) -> Path:
    """dists/<suite>/{Release,InRelease,Release.gpg} and main/binary-amd64/Packages(.gz), pool/ with the debs."""
    stanzas = []
    for deb, control in debs:
        pool = root / "pool" / COMPONENT / control["Package"][0] / control["Package"]
        pool.mkdir(parents=True, exist_ok=True)
        shutil.copy2(deb, pool / deb.name)
        data = deb.read_bytes()
        fields = dict(control)
        description = fields.pop("Description")
        fields.update(
            {
                "Filename": str((pool / deb.name).relative_to(root)),
                "Size": str(len(data)),
                "SHA256": hashlib.sha256(data).hexdigest(),
                "Description": description,
            }
        )
        stanzas.append("".join(f"{key}: {value}\n" for key, value in fields.items()))
    dist = root / "dists" / SUITE
    binary = dist / COMPONENT / f"binary-{ARCH}"
    binary.mkdir(parents=True, exist_ok=True)
    packages = "\n".join(stanzas).encode()
    (binary / "Packages").write_bytes(packages)
    (binary / "Packages.gz").write_bytes(gzip.compress(packages, mtime=0))
    index = {}
    for path in sorted(p for p in dist.rglob("*") if p.is_file()):
        data = path.read_bytes()
        index[str(path.relative_to(dist))] = (len(data), _hashes(data))
    # Dated a minute back: apt refuses a Release from the future.
    date = time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime(time.time() - 60))
    release = [
        "Origin: Studio",
        "Label: Studio stand-ins",
        f"Suite: {SUITE}",
        f"Codename: {SUITE}",
        f"Date: {date}",
        f"Architectures: {ARCH}",
        f"Components: {COMPONENT}",
        "Description: salt-workstation system-test repository",
    ]
    for algorithm in ("MD5Sum", "SHA256"):
        release.append(f"{algorithm}:")
        release += [
            f" {hashes[algorithm]} {size:>8} {name}" for name, (size, hashes) in index.items()
        ]
    (dist / "Release").write_text("\n".join(release) + "\n")
    if signer is not None:
        gpg, fingerprint = signer
        gpg.sign_release(fingerprint, dist / "Release")
    return root


@dataclass
class StudioRepositories:
    """The served trees and the keys: `good` signed by key, `unsigned`, `other_key` signed by other."""

    key: str  # armoured public key the pillar pins
    fingerprint: str
    other_key: str  # a second key, not the pinned one
    other_fingerprint: str
    trees: dict  # name -> path relative to the server root


def build_repositories(serve_root: Path, workdir: Path, gpg: Gpg) -> StudioRepositories:
    fingerprint = gpg.generate("Studio Packages <packages@studio.test>")
    other = gpg.generate("Somebody Else <else@elsewhere.test>")
    debs = [build_deb(package, workdir) for package in stand_ins()]
    trees = {"good": "debian", "unsigned": "debian-unsigned", "other_key": "debian-other-key"}
    write_tree(serve_root / trees["good"], debs, (gpg, fingerprint))
    write_tree(serve_root / trees["unsigned"], debs, None)
    write_tree(serve_root / trees["other_key"], debs, (gpg, other))
    return StudioRepositories(
        gpg.armored(fingerprint), fingerprint, gpg.armored(other), other, trees
    )
