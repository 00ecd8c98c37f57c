"""The cached Debian root filesystem the system tier runs minions in.

Two layers, each built once and kept in the cache folder
(WORKSTATION_SYSTEM_CACHE, default ~/.cache/salt-workstation/system):

base-<key>/root
    debootstrap --variant=minbase of Debian bookworm plus python3, python3-venv,
    libarchive13 (libarchive-c loads it) and gpg (repository keys), with Salt
    installed into /opt/salt from wheels made on the host. The key hashes the
    suite, the package list, this recipe and the exact versions of every wheel
    (the dependency closure of salt-workstation as installed in the host venv).

ext-<key>/upper (overlayfs) or full-<key>/root (copy fallback)
    this extension, from a wheel built from the working tree, installed on top.
    The key adds a hash of the extension's source files, so editing the code
    rebuilds only this layer (seconds), never the Debian base (a minute or two).

Nothing is written into a cached layer after it is renamed into place; tests
get overlay (or copied) sandboxes of it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from tests.system.sandbox import (
    CHROOT_ENV,
    SandboxError,
    mount,
    mount_system_dirs,
    referenced_by_mounts,
    remove_tree,
    unmount_all,
)

REPO = Path(__file__).resolve().parents[2]
SUITE = "bookworm"
PACKAGES = (
    "python3",
    "python3-venv",
    "libarchive13",
    "gpg",
    "systemd",
)  # systemd: units are enabled at bake
VENV = "/opt/salt"
RECIPE = "1"  # bump when a build step below changes what ends up in the root
DIST = "salt-workstation"
KEEP = {"base": 2, "ext": 4, "full": 2}

# The extension's inputs: what the wheel is built from.
EXTENSION_FILES = ("setup.cfg", "setup.py", "pyproject.toml", "MANIFEST.in", "README.md")
EXTENSION_DIRS = ("salt_workstation", "formulas")


class Unavailable(Exception):
    """The tier cannot run on this machine; the message is the one-line skip reason."""


def cache_dir() -> Path:
    # Outside the checkout by default, so every clone on this machine (CI's too) starts warm.
    default = (
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        / "salt-workstation"
        / "system"
    )
    return Path(os.environ.get("WORKSTATION_SYSTEM_CACHE") or default).resolve()


# ---- inputs --------------------------------------------------------------------------------------


def _deb822_stanzas(text: str) -> list[dict]:
    stanzas, current = [], {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                stanzas.append(current)
            current = {}
        elif line.startswith("#"):
            continue
        elif line[0].isspace() and current:
            continue  # continuation lines (Signed-By key blocks) do not matter here
        elif ":" in line:
            key, value = line.split(":", 1)
            current[key.strip().lower()] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def _sources_entries() -> list[tuple[str, list[str]]]:
    """(URI, suites) for every `deb` source the host's apt knows, in the order apt reads them."""
    entries = []
    main = Path("/etc/apt/sources.list.d/debian.sources")
    files = (
        [main, *sorted(p for p in Path("/etc/apt/sources.list.d").glob("*.sources") if p != main)]
        if Path("/etc/apt/sources.list.d").is_dir()
        else []
    )
    for path in files:
        if path.is_file():
            for stanza in _deb822_stanzas(path.read_text(encoding="utf-8", errors="replace")):
                if (
                    "deb" in stanza.get("types", "").split()
                    and stanza.get("enabled", "yes") != "no"
                ):
                    for uri in stanza.get("uris", "").split():
                        entries.append((uri, stanza.get("suites", "").split()))
    legacy = (
        [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]
        if Path("/etc/apt/sources.list.d").is_dir()
        else [Path("/etc/apt/sources.list")]
    )
    for path in legacy:
        if path.is_file():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                line = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
                if len(line) >= 3 and line[0] == "deb":
                    entries.append((line[1], [line[2]]))
    return entries


def debian_mirror() -> str | None:
    """The Debian mirror the host's apt uses (never a name written into the project)."""
    override = os.environ.get("WORKSTATION_SYSTEM_MIRROR")
    if override:
        return override.rstrip("/")
    entries = [
        (uri, suites)
        for uri, suites in _sources_entries()
        if not any("security" in suite for suite in suites) and "security" not in uri
    ]
    for uri, suites in entries:
        if SUITE in suites:
            return uri.rstrip("/")
    return entries[0][0].rstrip("/") if entries else None


def mirror_reachable(mirror: str, timeout: float = 15) -> str | None:
    """None when the mirror serves the suite's InRelease; otherwise why not."""
    url = f"{mirror}/dists/{SUITE}/InRelease"
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, method="HEAD"), timeout=timeout
        ) as response:
            return None if response.status == 200 else f"{url} answered {response.status}"
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        return f"{url} is unreachable ({getattr(exc, 'reason', exc)})"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dependency_pins() -> list[str]:
    """name==version for every distribution salt-workstation needs at run time, as the host venv has them."""
    from packaging.requirements import Requirement  # the venv has packaging (pip and salt need it)

    pins, todo, seen = {}, [DIST], set()
    while todo:
        name = todo.pop()
        if _canonical(name) in seen:
            continue
        seen.add(_canonical(name))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise Unavailable(
                f"{name} is not installed in the host venv ({sys.prefix}); run pip install -e . there"
            ) from None
        if _canonical(name) != _canonical(DIST):
            pins[_canonical(name)] = f"{dist.metadata['Name']}=={dist.version}"
        for raw in dist.requires or []:
            requirement = Requirement(raw)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return sorted(pins.values(), key=str.lower)


def extension_sources() -> list[Path]:
    """The files the extension's wheel is built from, relative to the repository."""
    files = [Path(name) for name in EXTENSION_FILES if (REPO / name).is_file()]
    for folder in EXTENSION_DIRS:
        for path in sorted((REPO / folder).rglob("*")):
            relative = path.relative_to(REPO)
            if (
                path.is_file()
                and "__pycache__" not in relative.parts
                and not path.name.endswith((".pyc", ".pyo"))
                and not any(part.endswith(".egg-info") for part in relative.parts)
            ):
                files.append(relative)
    return files


def _digest(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def base_key(pins: list[str]) -> str:
    abi = f"cp{sys.version_info.major}{sys.version_info.minor}"
    return _digest(
        {
            "recipe": RECIPE,
            "suite": SUITE,
            "packages": PACKAGES,
            "abi": abi,
            "arch": platform.machine(),
            "pins": pins,
        }
    )


def extension_key(base: str, files: list[Path]) -> str:
    digest = hashlib.sha256()
    for relative in files:
        digest.update(str(relative).encode() + b"\0" + (REPO / relative).read_bytes() + b"\0")
    return _digest({"base": base, "sources": digest.hexdigest()})


# ---- building ------------------------------------------------------------------------------------


class BuildLog:
    """One build's log file; a failed step raises with the end of the log in the message."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def note(self, text: str) -> None:
        self.handle.write(f"\n=== {time.strftime('%H:%M:%S')} {text}\n")
        self.handle.flush()

    def run(self, argv, *, env=None, timeout=900, cwd=None) -> None:
        self.note("$ " + " ".join(map(str, argv)))
        completed = subprocess.run(
            [str(arg) for arg in argv],
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            env=env,
            timeout=timeout,
            cwd=cwd,
            check=False,
        )
        if completed.returncode != 0:
            self.handle.flush()
            tail = "".join(
                self.path.read_text(encoding="utf-8", errors="replace").splitlines(True)[-40:]
            )
            raise SandboxError(
                f"{argv[0]} {argv[1] if len(argv) > 1 else ''} exited {completed.returncode} "
                f"(full log: {self.path}):\n{tail}"
            )

    def chroot(self, root: Path, argv, timeout=900) -> None:
        self.run(["chroot", root, *argv], env=dict(CHROOT_ENV), timeout=timeout)

    def close(self) -> None:
        self.handle.close()


@contextmanager
def _locked(directory: Path):
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@contextmanager
def _system_mounts(root: Path):
    """/proc, /sys, /dev for a build step; always unmounted."""
    try:
        mount_system_dirs(root)
        yield
    finally:
        left = unmount_all(root, include_self=False)
        if left:
            raise SandboxError(f"could not unmount {', '.join(left)} after building {root}")


def overlay_supported(scratch: Path) -> bool:
    """Whether overlayfs mounts work here (probed with a tiny mount, honouring WORKSTATION_SYSTEM_NO_OVERLAY=1)."""
    if os.environ.get("WORKSTATION_SYSTEM_NO_OVERLAY") == "1":
        return False
    scratch.mkdir(parents=True, exist_ok=True)
    probe = Path(tempfile.mkdtemp(prefix="overlay-probe-", dir=scratch))
    try:
        for name in ("lower", "upper", "work", "merged"):
            (probe / name).mkdir()
        try:
            mount(
                "-t",
                "overlay",
                "overlay",
                "-o",
                f"lowerdir={probe / 'lower'},upperdir={probe / 'upper'},workdir={probe / 'work'}",
                str(probe / "merged"),
            )
        except SandboxError:
            return False
        unmount_all(probe)
        return True
    finally:
        if not unmount_all(probe):
            remove_tree(probe)


class RootfsCache:
    """Builds (once) and hands out the layers of the system tier's root filesystem."""

    def __init__(self, directory: Path | None = None, overlay: bool | None = None):
        self.dir = Path(directory or cache_dir())
        self.runs = self.dir / "runs"
        self.overlay = overlay_supported(self.dir / "tmp") if overlay is None else overlay
        self.pins = dependency_pins()
        self.base_key = base_key(self.pins)
        self.sources = extension_sources()
        self.ext_key = extension_key(self.base_key, self.sources)
        self.base_root = self.dir / f"base-{self.base_key}" / "root"
        if self.overlay:
            self.ext_layer = self.dir / f"ext-{self.ext_key}" / "upper"
        else:
            self.ext_layer = self.dir / f"full-{self.ext_key}" / "root"
        self.built = []  # what this session had to build: ["base", "ext"] on a cold cache

    @property
    def base_ready(self) -> bool:
        return self.base_root.is_dir()

    def why_not(self) -> str | None:
        """The one reason a cold build cannot happen here (None when it can, or when the cache is warm)."""
        if self.base_ready:
            return None
        if shutil.which("debootstrap") is None:
            return "the rootfs cache is cold and debootstrap is not installed (apt-get install -y debootstrap)"
        if sys.version_info[:2] != (3, 11):
            return (
                f"the rootfs cache is cold and the host venv runs Python {sys.version_info.major}."
                f"{sys.version_info.minor}; wheels for bookworm's python3 need a 3.11 host venv"
            )
        mirror = debian_mirror()
        if mirror is None:
            return "the rootfs cache is cold and no Debian mirror is configured in /etc/apt/sources.list(.d)"
        problem = mirror_reachable(mirror)
        if problem:
            return f"the rootfs cache is cold and the Debian mirror is not reachable: {problem}"
        return None

    def layers(self) -> list[Path]:
        """The read-only layers a sandbox stacks, top first; builds what is missing."""
        with _locked(self.dir):
            if not self.base_ready:
                self._build_base()
                self.built.append("base")
            if not self.ext_layer.is_dir():
                self._build_extension()
                self.built.append("ext")
            self._prune()
        return [self.ext_layer, self.base_root] if self.overlay else [self.ext_layer]

    # -- base --------------------------------------------------------------------------------------

    def _build_base(self) -> None:
        mirror = debian_mirror()
        staging = self.dir / f"tmp/base-{self.base_key}-{os.getpid()}"
        remove_tree(staging)
        root = staging / "root"
        log = BuildLog(self.dir / "logs" / f"base-{self.base_key}.log")
        try:
            wheelhouse = staging / "wheelhouse"
            wheelhouse.mkdir(parents=True)
            (wheelhouse / "requirements.txt").write_text(
                "\n".join(self.pins) + "\n", encoding="utf-8"
            )
            log.note(f"wheels for {len(self.pins)} distributions")
            log.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "wheel",
                    "--no-deps",
                    "--wheel-dir",
                    wheelhouse,
                    "-r",
                    wheelhouse / "requirements.txt",
                ],
                timeout=900,
            )
            debs = self.dir / "debs"
            debs.mkdir(parents=True, exist_ok=True)
            argv = [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                f"--cache-dir={debs}",
            ]
            keyring = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
            if keyring.is_file():
                argv.append(f"--keyring={keyring}")
            log.run([*argv, SUITE, root, mirror], env=dict(os.environ), timeout=1200)
            self._tidy_base(root)
            shutil.copytree(wheelhouse, root / "tmp" / "wheelhouse")
            with _system_mounts(root):
                log.chroot(root, ["python3", "-m", "venv", VENV])
                log.chroot(
                    root,
                    [
                        f"{VENV}/bin/python",
                        "-m",
                        "pip",
                        "install",
                        "--no-index",
                        "--no-cache-dir",
                        "--disable-pip-version-check",
                        "--find-links",
                        "/tmp/wheelhouse",
                        "-r",
                        "/tmp/wheelhouse/requirements.txt",
                    ],
                )
                log.chroot(
                    root,
                    [
                        f"{VENV}/bin/python",
                        "-c",
                        "import salt.version, zmq, cryptography, libarchive; print(salt.version.__version__)",
                    ],
                )
            shutil.rmtree(root / "tmp" / "wheelhouse")
            (root / "etc" / "salt").mkdir(parents=True, exist_ok=True)
            (staging / "inputs.json").write_text(
                json.dumps(
                    {
                        "suite": SUITE,
                        "packages": PACKAGES,
                        "recipe": RECIPE,
                        "pins": self.pins,
                        "mirror": mirror,
                        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    },
                    indent=1,
                ),
                encoding="utf-8",
            )
            shutil.rmtree(wheelhouse)
            os.rename(staging, self.base_root.parent)
        except BaseException:
            if not unmount_all(staging):
                remove_tree(staging)
            raise
        finally:
            log.close()

    @staticmethod
    def _tidy_base(root: Path) -> None:
        """No Debian mirror inside (tests only see their own repositories), no services started by packages."""
        (root / "etc/apt/sources.list").write_text(
            "# Emptied by the system-test harness: each test configures only its own repositories.\n",
            encoding="utf-8",
        )
        policy = root / "usr/sbin/policy-rc.d"
        policy.write_text(
            "#!/bin/sh\n# No daemons start inside the test root.\nexit 101\n", encoding="utf-8"
        )
        policy.chmod(0o755)
        for folder in (
            "var/cache/apt/archives",
            "var/lib/apt/lists",
            "usr/share/doc",
            "usr/share/man",
            "usr/share/locale",
            "usr/share/info",
        ):
            target = root / folder
            if target.is_dir():
                for entry in target.iterdir():
                    if entry.name in ("partial", "lock"):
                        continue
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()
        for cache in (root / "var/cache/apt").glob("*.bin"):
            cache.unlink()

    # -- extension ---------------------------------------------------------------------------------

    def _extension_wheel(self, out: Path, log: BuildLog) -> Path:
        """pip wheel --no-deps of a clean copy of the working tree (no build/ or egg-info left in the repo)."""
        source = out / "source"
        for relative in self.sources:
            (source / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / relative, source / relative)
        log.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--wheel-dir",
                out / "wheel",
                source,
            ],
            timeout=600,
        )
        wheels = list((out / "wheel").glob("*.whl"))
        if len(wheels) != 1:
            raise SandboxError(f"pip wheel made {len(wheels)} wheels in {out / 'wheel'}")
        return wheels[0]

    def _build_extension(self) -> None:
        kind = "ext" if self.overlay else "full"
        staging = self.dir / f"tmp/{kind}-{self.ext_key}-{os.getpid()}"
        remove_tree(staging)
        log = BuildLog(self.dir / "logs" / f"{kind}-{self.ext_key}.log")
        try:
            staging.mkdir(parents=True)
            wheel = self._extension_wheel(staging, log)
            merged = staging / "root"
            merged.mkdir()
            if self.overlay:
                (staging / "upper").mkdir()
                (staging / "work").mkdir()
                mount(
                    "-t",
                    "overlay",
                    "overlay",
                    "-o",
                    f"lowerdir={self.base_root},upperdir={staging / 'upper'},workdir={staging / 'work'}",
                    str(merged),
                )
            else:
                log.run(["cp", "-a", "--reflink=auto", f"{self.base_root}/.", merged])
            try:
                shutil.copy2(wheel, merged / "tmp" / wheel.name)
                with _system_mounts(merged):
                    log.chroot(
                        merged,
                        [
                            f"{VENV}/bin/python",
                            "-m",
                            "pip",
                            "install",
                            "--no-deps",
                            "--no-index",
                            "--no-cache-dir",
                            "--disable-pip-version-check",
                            f"/tmp/{wheel.name}",
                        ],
                    )
                    log.chroot(
                        merged,
                        [
                            f"{VENV}/bin/python",
                            "-c",
                            (
                                "import importlib.metadata as m, salt_workstation as w; "
                                "assert (w.FORMULA_DIR / 'init.sls').is_file(), w.FORMULA_DIR; "
                                "assert any(e.value == 'salt_workstation' for e in m.entry_points(group='salt.loader')); "
                                "print(w.__version__, w.FORMULA_DIR)"
                            ),
                        ],
                    )
                (merged / "tmp" / wheel.name).unlink()
            finally:
                if self.overlay:
                    left = unmount_all(merged)
                    if left:
                        raise SandboxError(f"could not unmount {', '.join(left)}")
            final = self.ext_layer.parent
            final.mkdir()
            os.rename(staging / ("upper" if self.overlay else "root"), self.ext_layer)
            (final / "inputs.json").write_text(
                json.dumps(
                    {
                        "base": self.base_key,
                        "wheel": wheel.name,
                        "files": [str(p) for p in self.sources],
                    },
                    indent=1,
                ),
                encoding="utf-8",
            )
            if not unmount_all(staging):
                remove_tree(staging)
        except BaseException:
            if not unmount_all(staging):
                remove_tree(staging)
            raise
        finally:
            log.close()

    # -- housekeeping ------------------------------------------------------------------------------

    def _prune(self) -> None:
        """Keep the newest few layers of each kind; never one a mount (another session) still uses."""
        current = {self.base_root.parent, self.ext_layer.parent}
        for kind, keep in KEEP.items():
            entries = sorted(
                self.dir.glob(f"{kind}-*"), key=lambda p: p.stat().st_mtime, reverse=True
            )
            for entry in entries[keep:]:
                if entry not in current and not referenced_by_mounts(entry):
                    remove_tree(entry)
                    log_file = self.dir / "logs" / f"{entry.name}.log"
                    if log_file.exists():
                        log_file.unlink()
        for entry in (self.dir / "tmp").glob("*") if (self.dir / "tmp").is_dir() else []:
            owner = entry.name.rsplit("-", 1)[-1]
            if owner.isdigit() and not Path(f"/proc/{owner}").exists() and not unmount_all(entry):
                remove_tree(entry)
