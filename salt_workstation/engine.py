"""The install engine: side-by-side app versions under {install_root}/apps/{app}/{version}.

An install streams the source once (hashing while unpacking into a staging
folder on the same filesystem), checks the hash, writes the manifest, and
promotes the version with one rename. A converged check reads one small
manifest and stats the launchers: no network, no archive.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import shutil
import signal
import stat
import subprocess
import time
import urllib.parse
from pathlib import Path, PurePosixPath

from salt_workstation import __version__, files
from salt_workstation.depot import HashingReader, open_source, redact_url
from salt_workstation.errors import HashMismatch, InstallError, WorkstationError
from salt_workstation.paths import FILE_LIST, MANIFEST, RESERVED_NAMES, STAGING_PREFIX, TRASH_PREFIX, Layout
from salt_workstation.pillar import VersionSpec

INSTALLED = "installed"
ABSENT = "absent"
CHANGED = "changed"  # another build of this version is installed (hash or unpacking differs)
DAMAGED = "damaged"  # our manifest is there but a launcher is not
FOREIGN = "foreign"  # a folder salt-workstation did not install (no manifest) holds the version's place

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _renameat2():
    libc = ctypes.CDLL(None, use_errno=True)  # the libc this process runs on; find_library would fork ldconfig
    function = getattr(libc, "renameat2", None)
    if function is not None:
        function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return function


_RENAMEAT2 = _renameat2()


def exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2); False where the kernel cannot."""
    if _RENAMEAT2 is None:
        return False
    result = _RENAMEAT2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE)
    if result == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(first))


def _unpack():
    """unpack brings in libarchive, whose loading forks `ldconfig -p`: only installs and verify need
    it, so a converged state.apply, which reads manifests and stats launchers, never loads it."""
    from salt_workstation import unpack  # pylint: disable=import-outside-toplevel

    return unpack


def _write_json(path: Path, data) -> None:
    files.write_atomically(path, json.dumps(data, separators=(",", ":"), sort_keys=True).encode(), 0o644)


def _read_json(path: Path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def expand(template: str, **values) -> str:
    """Fill {dest}-style placeholders without str.format (pillar text may hold other braces)."""
    for key, value in values.items():
        template = template.replace("{" + key + "}", str(value))
    return template


def identity(spec: VersionSpec) -> dict:
    """What makes two installs of a version the same: the bytes and how they were laid out."""
    if spec.kind == "packages":
        return {"kind": "packages", "packages": dict(sorted(spec.packages.items()))}
    result = {"kind": spec.kind, "hash": spec.hash, "strip_components": spec.strip_components}
    if spec.installer:
        result["installer"] = spec.installer["command"]
    return result


class AppStore:
    """All installed app versions under one install_root."""

    def __init__(self, install_root):
        self.layout = Layout(install_root)

    # ---- reading -------------------------------------------------------------

    def manifest(self, app: str, version: str) -> dict | None:
        return _read_json(self.layout.manifest(app, version))

    def installed(self) -> dict:
        """{app: {version: manifest}} for every version this tool installed."""
        result: dict = {}
        if not self.layout.apps.is_dir():
            return result
        for app_dir in sorted(self.layout.apps.iterdir()):
            if app_dir.name.startswith(".") or not app_dir.is_dir():
                continue
            versions = {}
            for version_dir in sorted(app_dir.iterdir()):
                if version_dir.name.startswith("."):
                    continue
                manifest = self.manifest(app_dir.name, version_dir.name)
                if manifest is not None:
                    versions[version_dir.name] = manifest
            if versions:
                result[app_dir.name] = versions
        return result

    def status(self, spec: VersionSpec, package_versions=None) -> str:
        """INSTALLED, ABSENT, CHANGED, DAMAGED or FOREIGN, from the manifest and a few stats."""
        dest = self.layout.version_dir(spec.app, spec.version)
        manifest = self.manifest(spec.app, spec.version)
        if manifest is None:
            return FOREIGN if dest.exists() or dest.is_symlink() else ABSENT
        if identity(spec) != manifest.get("identity"):
            return CHANGED
        if spec.kind == "packages":
            have = package_versions(list(spec.packages)) if package_versions else {}
            if any(have.get(name) != pinned for name, pinned in spec.packages.items()):
                return CHANGED
            return INSTALLED
        for target in spec.launchers.values():
            if not (dest / target).exists():
                return DAMAGED
        return INSTALLED

    # ---- acting --------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, app: str):
        """One install, removal or prune per app at a time; stale staging goes while we hold it."""
        app_dir = self.layout.app_dir(app)
        app_dir.mkdir(parents=True, exist_ok=True)
        with open(self.layout.lock(app), "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            self._clean_stale(app_dir)
            yield app_dir

    @staticmethod
    def _clean_stale(app_dir: Path) -> list[str]:
        """Under the lock, any staging or trash folder is left from an interrupted run."""
        cleaned = []
        for entry in app_dir.iterdir():
            if entry.name.startswith((STAGING_PREFIX, TRASH_PREFIX)) and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
                cleaned.append(entry.name)
        return cleaned

    def install(self, spec: VersionSpec, fetch_salt=None, install_packages=None, progress=None) -> dict:
        """Install one version and return its manifest. Raises WorkstationError on any failure.

        progress(phase, bytes_done, bytes_total) hears "download" (bytes read from the
        depot while they are unpacked) and "installer" (a vendor installer running).
        """
        with self.locked(spec.app) as app_dir:
            dest = app_dir / spec.version
            if self.status(spec) == FOREIGN:
                raise WorkstationError(
                    f"{dest} exists but salt-workstation did not install it (no manifest); nothing was changed. "
                    "Move it aside or delete it, then apply again"
                )
            staging = app_dir / f"{STAGING_PREFIX}{spec.version}-{os.getpid()}"
            try:
                staging.mkdir()
                started = time.monotonic()
                if spec.kind == "packages":
                    if install_packages is None:
                        raise InstallError("kind packages needs the OS package manager (run it through Salt)")
                    install_packages(spec.packages)
                    records = []
                else:
                    records = self._fill_staging(spec, staging, fetch_salt, progress)
                    self._check_launchers(spec, staging)
                manifest = self._manifest(spec, records, time.monotonic() - started)
                _write_json(staging / FILE_LIST, [record.as_list() for record in records])
                _write_json(staging / MANIFEST, manifest)
                self._promote(staging, dest)
                return manifest
            finally:
                shutil.rmtree(staging, ignore_errors=True)

    def _fill_staging(self, spec: VersionSpec, staging: Path, fetch_salt, progress) -> list:
        stream, size = open_source(spec.source, fetch_salt)
        reader = HashingReader(stream, spec.hash_algorithm, size,
                               (lambda done, total: progress("download", done, total)) if progress else None)
        if spec.kind == "installer":
            unpacked = staging.with_name(staging.name + "-source")
            unpacked.mkdir()
        else:
            unpacked = staging
        spool = None
        try:
            with contextlib.closing(reader):
                stream = reader
                if urllib.parse.urlsplit(spec.source).path.lower().endswith(".zip"):
                    # A zip keeps Unix modes in its central directory, at the end: libarchive must seek
                    # to read it, so spool the (hashed) bytes beside staging first.
                    spool = staging.with_name(staging.name + "-spool")
                    spool.mkdir()
                    stream = open(spool / "source.zip", "w+b")  # noqa: SIM115 - closed below
                    shutil.copyfileobj(reader, stream, _unpack().READ_BLOCK)
                    stream.seek(0)
                try:
                    with contextlib.ExitStack() as stack:
                        if stream is not reader:
                            stack.enter_context(stream)
                        records = _unpack().extract(stream, unpacked, spec.strip_components)
                except WorkstationError:
                    # A truncated or corrupt download fails to unpack: the hash names the real cause.
                    reader.drain()
                    if reader.hexdigest() != spec.hash_hex:
                        raise self._mismatch(spec, reader) from None
                    raise
                reader.drain()
            if reader.hexdigest() != spec.hash_hex:
                raise self._mismatch(spec, reader)
            if spec.kind == "installer":
                if progress:
                    progress("installer", reader.done, reader.total)
                self._run_installer(spec, unpacked, staging)
                records = _unpack().scan(staging)
        finally:
            if unpacked != staging:
                shutil.rmtree(unpacked, ignore_errors=True)
            if spool is not None:
                shutil.rmtree(spool, ignore_errors=True)
        return records

    @staticmethod
    def _mismatch(spec: VersionSpec, reader: HashingReader) -> HashMismatch:
        return HashMismatch(
            f"{spec.app} {spec.version}: {redact_url(spec.source)} has {spec.hash_algorithm} "
            f"{reader.hexdigest()}, the pillar says {spec.hash_hex}. Nothing was installed: "
            "fix the hash in the catalog or restore the depot file"
        )

    def _run_installer(self, spec: VersionSpec, source_dir: Path, staging: Path) -> None:
        argv = [expand(arg, dest=staging, src=source_dir) for arg in spec.installer["command"]]
        log_path = self.layout.install_log(spec.app, spec.version)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        timeout = spec.installer["timeout"]
        with open(log_path, "wb") as log:
            try:
                # Its own process group, so a timeout stops everything the installer started.
                process = subprocess.Popen(  # noqa: S603 - an argv list, never a shell
                    argv, cwd=source_dir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise InstallError(f"{spec.app} {spec.version}: the installer could not start: {exc}") from None
            try:
                returncode = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise InstallError(
                    f"{spec.app} {spec.version}: the installer ran past its {timeout} s timeout and was stopped; "
                    f"log: {log_path}"
                ) from None
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)  # the installer, or what it left running
                process.wait()
        if returncode != 0:
            raise InstallError(
                f"{spec.app} {spec.version}: the installer exited with {returncode}; log: {log_path}"
            )

    @staticmethod
    def _check_launchers(spec: VersionSpec, staging: Path) -> None:
        missing = [f"{command} -> {target}" for command, target in spec.launchers.items()
                   if not (staging / target).exists()]
        if missing:
            raise InstallError(
                f"{spec.app} {spec.version}: launcher path(s) {', '.join(missing)} are not in the installed "
                f"files; fix workstation:catalog:{spec.app}:versions:{spec.version}:launchers"
            )

    def _manifest(self, spec: VersionSpec, records: list, seconds: float) -> dict:
        return {
            "app": spec.app,
            "version": spec.version,
            "kind": spec.kind,
            "source": redact_url(spec.source) if spec.source else None,
            "hash": spec.hash,
            "identity": identity(spec),
            "launchers": spec.launchers,
            "env": spec.env,
            "files": sum(1 for record in records if record.type != "dir"),
            "bytes": sum(record.size for record in records),
            "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "install_seconds": round(seconds, 3),
            "installed_by": f"salt-workstation {__version__}",
        }

    @staticmethod
    def _promote(staging: Path, dest: Path) -> None:
        """Make staging visible as dest in one step; an older build of dest goes with it."""
        if dest.exists() or dest.is_symlink():
            if exchange(staging, dest):
                return  # staging now holds the old build; the caller removes it
            old = staging.with_name(TRASH_PREFIX + dest.name)
            os.rename(dest, old)
            os.rename(staging, dest)
            shutil.rmtree(old, ignore_errors=True)
            return
        os.rename(staging, dest)

    def remove(self, app: str, version: str) -> bool:
        """Remove one installed version: gone from view in one rename, then deleted."""
        with self.locked(app) as app_dir:
            return self._remove_locked(app_dir, version)

    def _remove_locked(self, app_dir: Path, version: str) -> bool:
        dest = app_dir / version
        if not dest.exists():
            return False
        if self.manifest(app_dir.name, version) is None:
            raise WorkstationError(
                f"{dest} was not installed by salt-workstation (no manifest); remove it by hand if it should go"
            )
        trash = app_dir / f"{TRASH_PREFIX}{version}-{os.getpid()}"
        os.rename(dest, trash)
        shutil.rmtree(trash)
        return True

    # ---- retention -------------------------------------------------------------

    def retention(self, app: str, keep: list, retain: int) -> tuple[list, list]:
        """(versions to remove, new history). History lists versions by when they were last wanted."""
        installed = sorted(self.installed().get(app, {}))
        history = _read_json(self.layout.history(app)) or []
        keep = [version for version in keep if version in installed]
        ordered = [v for v in history if v in installed and v not in keep]
        ordered = [v for v in installed if v not in keep and v not in ordered] + ordered  # unknown = oldest
        kept_previous = ordered[len(ordered) - retain:] if retain else []
        remove = [v for v in ordered if v not in kept_previous]
        return remove, kept_previous + sorted(keep)

    def prune(self, app: str, keep: list, retain: int) -> list:
        """Remove versions of app that no production wants, beyond the `retain` most recent."""
        remove, history = self.retention(app, keep, retain)
        if not remove and history == (_read_json(self.layout.history(app)) or []):
            return []
        with self.locked(app) as app_dir:
            for version in remove:
                self._remove_locked(app_dir, version)
            _write_json(self.layout.history(app), history)
        return remove

    # ---- verification ------------------------------------------------------------

    def verify(self, app: str, version: str, deep: bool = True) -> dict:
        """Compare the installed files with the manifest: missing, changed and extra paths."""
        dest = self.layout.version_dir(app, version)
        rows = _read_json(self.layout.file_list(app, version))
        if self.manifest(app, version) is None or rows is None:
            return {"app": app, "version": version, "ok": False, "error": f"{dest} has no manifest; reinstall it"}
        missing, changed = [], []
        records = [_unpack().Record.from_list(row) for row in rows]
        for record in records:
            problem = _check_record(dest / record.path, record, deep)
            if problem == "missing":
                missing.append(record.path)
            elif problem:
                changed.append(f"{record.path}: {problem}")
        known = {record.path for record in records}
        # Folders the archive created without an entry of their own hold known paths: they are not extra.
        known |= {parent.as_posix() for path in list(known) for parent in PurePosixPath(path).parents} - {"."}
        extra = [path for path in _walk_relative(dest) if path not in known]
        return {
            "app": app, "version": version, "ok": not (missing or changed or extra), "checked": len(records),
            "deep": deep, "missing": missing, "changed": changed, "extra": extra,
        }


def _check_record(path: Path, record, deep: bool) -> str | None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return "missing"
    if record.type == "symlink":
        return None if stat.S_ISLNK(info.st_mode) and os.readlink(path) == record.target else "link target changed"
    if record.type == "dir":
        return None if stat.S_ISDIR(info.st_mode) else "no longer a folder"
    if not stat.S_ISREG(info.st_mode):
        return "no longer a regular file"
    if record.type == "file":
        if info.st_size != record.size:
            return f"size {info.st_size}, expected {record.size}"
        if deep and _unpack().hash_file(path) != record.digest:
            return "content changed"
    if stat.S_IMODE(info.st_mode) != record.mode:
        return f"mode {stat.S_IMODE(info.st_mode):o}, expected {record.mode:o}"
    return None


def _walk_relative(dest: Path):
    for dirpath, dirnames, filenames in os.walk(dest):
        for name in dirnames + filenames:
            rel = (Path(dirpath) / name).relative_to(dest).as_posix()
            if rel not in RESERVED_NAMES:
                yield rel
