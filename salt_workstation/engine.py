"""The install engine: side-by-side app versions under {install_root}/apps/{app}/{version}.

An install streams the source once (hashing while unpacking into a staging
folder on the same filesystem), checks the hash, flushes the unpacked files to
disk, writes the manifest, and promotes the version with one rename. A version
is reported installed only when its manifest is there, and the manifest is
written only after every byte of the version was. A converged check reads one
small manifest and stats the launchers: no network, no archive.

Every step below install_root goes through safefs: descriptors, no symlink
followed, iterative walks, checked writes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass

from salt_workstation import __version__, safefs
from salt_workstation.depot import IDLE_TIMEOUT, HashingReader, open_source, redact_url
from salt_workstation.errors import (
    DepotError,
    DiskError,
    HashMismatch,
    InstallError,
    UnsafePath,
    WorkstationError,
)
from salt_workstation.paths import (
    FILE_LIST,
    HISTORY,
    INSTALL_SLOTS,
    LOCK,
    MANIFEST,
    RESERVED_NAMES,
    STAGING_PREFIX,
    TRASH_PREFIX,
    Layout,
)
from salt_workstation.pillar import VersionSpec

INSTALLED = "installed"
ABSENT = "absent"
CHANGED = "changed"  # another build of this version is installed (hash or unpacking differs)
DAMAGED = (
    "damaged"  # our manifest is there but a launcher is not (or, verified deep, a file changed)
)
FOREIGN = "foreign"  # a folder we did not install, or a symlink, holds the version's place

_LOCK_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
_LOG_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
_REAPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reaper.py")


@dataclass(frozen=True)
class Limits:
    """What one install may take: workstation:limits (defaults.yaml holds the shipped values)."""

    max_unpacked_bytes: int | None = None
    max_expansion: int | None = None
    depot_idle_timeout: float = IDLE_TIMEOUT
    depot_deadline: float | None = None

    @classmethod
    def from_config(cls, limits: dict | None) -> Limits:
        known = {
            key: value for key, value in (limits or {}).items() if key in cls.__dataclass_fields__
        }
        return cls(**known)


def _unpack():
    """unpack brings in libarchive, whose loading forks `ldconfig -p`: only installs and verify need
    it, so a converged state.apply, which reads manifests and stats launchers, never loads it."""
    from salt_workstation import unpack  # pylint: disable=import-outside-toplevel

    return unpack


def _dumps(data) -> bytes:
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


def _loads(raw: bytes | None):
    try:
        return json.loads(raw) if raw is not None else None
    except ValueError:
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


def _target_exists(folder: safefs.Dir, target: str) -> bool:
    """A launcher target inside the version folder exists (links inside it were checked at unpack)."""
    try:
        os.stat(target, dir_fd=folder.fd)
        return True
    except OSError:
        return False


class AppStore:
    """All installed app versions under one install_root."""

    def __init__(
        self, install_root, limits: Limits | dict | None = None, workers: int | None = None
    ):
        self.layout = Layout(install_root)
        self.limits = limits if isinstance(limits, Limits) else Limits.from_config(limits)
        self.workers = workers  # installs that may run at once, across processes; None: no bound

    def _open(self, *names: str, create: bool = False) -> safefs.Dir:
        """install_root/names..., install_root as configured and never a symlink below it."""
        return safefs.open_under(self.layout.root, *names, create=create)

    # ---- reading -------------------------------------------------------------

    def manifest(self, app: str, version: str) -> dict | None:
        try:
            with self._open("apps", app, version) as folder:
                return _loads(folder.read_bytes(MANIFEST))
        except (OSError, WorkstationError):
            return None

    def blocker(self, app: str, version: str) -> str | None:
        """Why the version's place is not ours to write (a symlink, a folder we did not install); None when clear."""
        dest = self.layout.version_dir(app, version)
        try:
            with self._open("apps", app) as app_dir:
                info = app_dir.lstat(version)
                if info is None:
                    return None
                if stat.S_ISLNK(info.st_mode):
                    return (
                        f"{dest} is a symlink; salt-workstation does not follow or replace what it did not "
                        "create there. Move it aside, then apply again"
                    )
        except FileNotFoundError:
            return None
        except UnsafePath as exc:
            return str(exc)
        if self.manifest(app, version) is None:
            return (
                f"{dest} exists but salt-workstation did not install it (no manifest); nothing was changed. "
                "Move it aside or delete it, then apply again"
            )
        return None

    def strangers(self, app: str) -> list[str]:
        """Why each entry among the app's versions that we did not install is left alone (a symlink, no manifest)."""
        try:
            with self._open("apps", app) as app_dir:
                names = [name for name in app_dir.listdir() if not name.startswith(".")]
        except (OSError, WorkstationError) as exc:
            return [str(exc)]
        return [reason for reason in (self.blocker(app, name) for name in names) if reason]

    def installed(self) -> dict:
        """{app: {version: manifest}} for every version this tool installed (symlinks are never ours)."""
        result: dict = {}
        try:
            apps = self._open("apps")
        except (OSError, WorkstationError):
            return result
        with apps:
            for app in apps.listdir():
                info = apps.lstat(app)
                if app.startswith(".") or info is None or not stat.S_ISDIR(info.st_mode):
                    continue
                versions = {}
                with apps.child(app) as app_dir:
                    for version in app_dir.listdir():
                        info = app_dir.lstat(version)
                        if (
                            version.startswith(".")
                            or info is None
                            or not stat.S_ISDIR(info.st_mode)
                        ):
                            continue
                        with (
                            app_dir.child(version) as folder,
                            contextlib.suppress(OSError, WorkstationError),
                        ):
                            manifest = _loads(folder.read_bytes(MANIFEST))
                            if manifest is not None:
                                versions[version] = manifest
                if versions:
                    result[app] = versions
        return result

    def status(self, spec: VersionSpec, package_versions=None, deep: bool = False) -> str:
        """INSTALLED, ABSENT, CHANGED, DAMAGED or FOREIGN, from the manifest and a few stats
        (and, when `deep`, every file re-hashed against the manifest)."""
        manifest = self.manifest(spec.app, spec.version)
        if (
            manifest is None
        ):  # readable only through real folders: a symlink or a foreign folder blocks
            return FOREIGN if self.blocker(spec.app, spec.version) else ABSENT
        if identity(spec) != manifest.get("identity"):
            return CHANGED
        if spec.kind == "packages":
            have = package_versions(list(spec.packages)) if package_versions else {}
            if any(have.get(name) != pinned for name, pinned in spec.packages.items()):
                return CHANGED
            return INSTALLED
        with self._open("apps", spec.app, spec.version) as folder:
            if not all(_target_exists(folder, target) for target in spec.launchers.values()):
                return DAMAGED
        if deep and not self.verify(spec.app, spec.version, deep=True)["ok"]:
            return DAMAGED
        return INSTALLED

    # ---- acting --------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, app: str):
        """One install, removal or prune per app at a time; stale staging goes while we hold it."""
        with self._open("apps", safefs.component(app, "app name"), create=True) as app_dir:
            lock = self._lock_file(app_dir, LOCK)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX)
                self._clean_stale(app_dir)
                yield app_dir
            finally:
                os.close(lock)

    @contextlib.contextmanager
    def _install_slot(self):
        """One of `workers` slots (lock files in apps/.install-slots), held for the whole install, so
        that installs running in parallel processes (Salt's `parallel: True`) stay bounded."""
        if not self.workers:
            yield
            return
        with self._open("apps", INSTALL_SLOTS, create=True) as slots:
            held = None
            while held is None:
                for index in range(self.workers):
                    fd = self._lock_file(slots, f"slot-{index}")
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        os.close(fd)
                        continue
                    held = fd
                    break
                else:
                    time.sleep(0.05)
            try:
                yield
            finally:
                os.close(held)

    @staticmethod
    def _lock_file(folder: safefs.Dir, name: str) -> int:
        try:
            return os.open(name, _LOCK_FLAGS, 0o644, dir_fd=folder.fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePath(
                    f"{folder.join(name)} is a symlink; salt-workstation does not follow it. "
                    "Remove it, then apply again"
                ) from None
            raise

    @staticmethod
    def _clean_stale(app_dir: safefs.Dir) -> list[str]:
        """Under the lock, any staging or trash entry is left from an interrupted run."""
        cleaned = []
        for name in app_dir.listdir():
            if name.startswith((STAGING_PREFIX, TRASH_PREFIX)):
                with contextlib.suppress(OSError, WorkstationError):
                    app_dir.remove(name)
                    cleaned.append(name)
        return cleaned

    def install(
        self, spec: VersionSpec, fetch_salt=None, install_packages=None, progress=None
    ) -> dict:
        """Install one version and return its manifest. Raises WorkstationError on any failure;
        nothing is promoted, and no staging is left, unless every byte was written and flushed.

        progress(phase, bytes_done, bytes_total) hears "download" (bytes read from the
        depot while they are unpacked) and "installer" (a vendor installer running).
        """
        safefs.component(spec.app, "app name")
        safefs.component(spec.version, "version")
        job = _Job(spec)
        try:
            # The slot before the app's lock: an install holding a lock never waits for a slot.
            with self._install_slot(), self.locked(spec.app) as app_dir:
                blocker = self.blocker(spec.app, spec.version)
                if blocker:
                    raise UnsafePath(blocker)
                job.app_dir = app_dir
                try:
                    return self._install_locked(job, fetch_salt, install_packages, progress)
                finally:
                    for name in job.scratch:
                        with contextlib.suppress(OSError, WorkstationError):
                            app_dir.remove(name)
        except OSError as exc:
            raise self._disk_error(exc, job) from None

    def _install_locked(self, job: _Job, fetch_salt, install_packages, progress) -> dict:
        spec, app_dir = job.spec, job.app_dir
        staging_name = job.scratch_name("")
        app_dir.mkdir(staging_name, 0o755).close()
        started = time.monotonic()
        if spec.kind == "packages":
            if install_packages is None:
                raise InstallError(
                    "kind packages needs the OS package manager (run it through Salt)"
                )
            install_packages(spec.packages)
            records = []
        else:
            records = self._fill_staging(job, staging_name, fetch_salt, progress)
        with app_dir.child(staging_name) as staging:
            if spec.kind != "packages":
                missing = [
                    f"{command} -> {target}"
                    for command, target in spec.launchers.items()
                    if not _target_exists(staging, target)
                ]
                if missing:
                    raise InstallError(
                        f"launcher path(s) {', '.join(missing)} are not in the installed files; fix "
                        f"workstation:catalog:{spec.app}:versions:{spec.version}:launchers"
                    )
            staging.sync_filesystem()  # every unpacked byte on disk before the manifest says installed
            manifest = self._manifest(spec, records, time.monotonic() - started, job)
            staging.write_file(FILE_LIST, _dumps([record.as_list() for record in records]), 0o644)
            staging.write_file(MANIFEST, _dumps(manifest), 0o644)
        self._promote(app_dir, staging_name, spec.version)
        # Notes (a skipped mirror) belong to this run's report, not to the version: never persisted.
        return {**manifest, "notes": job.notes} if job.notes else manifest

    def _check_space(self, job: _Job, source_size: int | None) -> None:
        """Before the first byte is read: the catalog `size`, or at least the download's, must fit."""
        needed = job.spec.size or source_size
        if not needed:
            return
        free = safefs.free_bytes(job.app_dir.fd)
        if needed > free:
            what = "needs" if job.spec.size else "needs at least (its download size)"
            raise DiskError(
                f"disk full under {self.layout.root}: {safefs.mib(needed - free)} more needed "
                f"({job.spec.app} {job.spec.version} {what} {safefs.mib(needed)}, "
                f"{safefs.mib(free)} free); nothing was downloaded"
            )

    def _disk_error(self, exc: OSError, job: _Job) -> WorkstationError:
        """An OSError during an install, in words: where, and how much more space it takes."""
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or job.app_dir is None:
            return safefs.disk_error(exc, str(self.layout.root))
        free = 0
        with contextlib.suppress(OSError, WorkstationError), self._open() as root:
            free = safefs.free_bytes(root.fd)
        written = job.budget.used if job.budget else 0
        if job.spec.size:
            more = f": {safefs.mib(max(job.spec.size - free, 1))} more needed"
        else:
            more = (
                f" after {safefs.mib(written)} were unpacked ({safefs.mib(free)} free now): more than that "
                "is needed; declare the unpacked `size` in the catalog so it is checked before downloading"
            )
        return DiskError(f"disk full under {self.layout.root}{more}. Nothing was installed")

    def _fill_staging(self, job: _Job, staging_name: str, fetch_salt, progress) -> list:
        """Download, hash and unpack the source, from the first depot mirror that delivers it;
        for an installer, then run it into staging."""
        spec, app_dir = job.spec, job.app_dir
        unpacked_name = staging_name if spec.kind != "installer" else job.scratch_name("-source")
        failures = []
        for index, url in enumerate(spec.sources):
            if index:  # what the mirror before left half-written goes; the next starts afresh
                self._reset_scratch(job, staging_name)
            if unpacked_name != staging_name:
                app_dir.mkdir(unpacked_name, 0o700).close()
            try:
                records, fetched = self._download(job, url, unpacked_name, fetch_salt, progress)
                break
            except DepotError as exc:
                # A mirror that is down, refuses, stalls or breaks off: try the next. A hash
                # mismatch is not a DepotError: the bytes were wrong, and another mirror of the
                # same catalog entry is not asked to confirm them.
                if len(spec.sources) == 1:
                    raise
                failures.append(str(exc))
                job.notes.append(f"depot mirror skipped: {exc}")
        else:
            raise DepotError(
                f"none of its {len(spec.sources)} depot mirrors delivered it: "
                + "; ".join(failures)
            )
        job.fetched_from = url
        if spec.kind == "installer":
            if progress:
                progress("installer", fetched.done, fetched.total)
            self._run_installer(spec, app_dir.join(unpacked_name), app_dir.join(staging_name))
            with app_dir.child(staging_name) as staging:
                records = _unpack().scan(staging)
        return records

    @staticmethod
    def _reset_scratch(job: _Job, staging_name: str) -> None:
        for name in job.scratch:
            job.app_dir.remove(name)
        job.app_dir.mkdir(staging_name, 0o755).close()

    def _download(self, job: _Job, url: str, unpacked_name: str, fetch_salt, progress):
        """Stream one source URL through the hash into `unpacked_name`: (records, the reader)."""
        spec, app_dir, limits = job.spec, job.app_dir, self.limits
        stream, size = open_source(url, fetch_salt, timeout=limits.depot_idle_timeout)
        reader = HashingReader(
            stream,
            spec.hash_algorithm,
            size,
            (lambda done, total: progress("download", done, total)) if progress else None,
            idle=limits.depot_idle_timeout,
            deadline=limits.depot_deadline,
            shown=redact_url(url),
        )
        job.budget = _unpack().Budget(
            limits.max_unpacked_bytes, spec.size, limits.max_expansion, lambda: reader.done
        )
        with contextlib.closing(reader):
            self._check_space(job, size)
            with (
                app_dir.child(unpacked_name) as target,
                self._source_stream(job, url, reader) as stream,
            ):
                job.reuse = self._reuse(job) if spec.kind == "archive" else None
                try:
                    records = _unpack().extract(
                        stream, target, spec.strip_components, job.budget, job.reuse
                    )
                except WorkstationError:
                    # A truncated or corrupt download fails to unpack: the hash names the real cause.
                    with contextlib.suppress(WorkstationError):
                        reader.drain()
                    if reader.error is not None:
                        raise reader.error from None
                    if reader.hexdigest() != spec.hash_hex:
                        raise self._mismatch(spec, url, reader) from None
                    raise
            reader.drain()
        if reader.hexdigest() != spec.hash_hex:
            raise self._mismatch(spec, url, reader)
        return records, reader

    @staticmethod
    def _reuse(job: _Job):
        """The installed versions' files a new version's identical files may share, newest install
        winning a path: read from each version's file list (the per-file sha256, size and mode)."""
        unpack = _unpack()
        found = []
        for version in job.app_dir.listdir():
            if version.startswith("."):
                continue
            with (
                contextlib.suppress(OSError, WorkstationError),
                job.app_dir.child(version) as folder,
            ):
                manifest, rows = (
                    _loads(folder.read_bytes(MANIFEST)),
                    _loads(folder.read_bytes(FILE_LIST)),
                )
                if isinstance(manifest, dict) and isinstance(rows, list):
                    found.append((manifest.get("installed_at") or "", version, rows))
        candidates = {}
        for _, version, rows in sorted(found):
            for row in rows:
                record = unpack.Record.from_list(row)
                if record.type == "file" and record.size:
                    candidates[record.path] = (version, record)
        return unpack.Reuse(job.app_dir, candidates) if candidates else None

    @contextlib.contextmanager
    def _source_stream(self, job: _Job, url: str, reader: HashingReader):
        """The stream to unpack: the reader itself, or for a zip the (hashed) bytes spooled beside staging.

        A zip keeps Unix modes in its central directory, at the end: libarchive must seek to read it.
        """
        if not urllib.parse.urlsplit(url).path.lower().endswith(".zip"):
            yield reader
            return
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(job.scratch_name("-spool.zip"), flags, 0o600, dir_fd=job.app_dir.fd)
        with os.fdopen(fd, "w+b") as spool:
            while chunk := reader.read(_unpack().READ_BLOCK):
                spool.write(chunk)
            spool.seek(0)
            yield spool

    @staticmethod
    def _mismatch(spec: VersionSpec, url: str, reader: HashingReader) -> HashMismatch:
        return HashMismatch(
            f"{redact_url(url)} has {spec.hash_algorithm} {reader.hexdigest()}, the pillar says "
            f"{spec.hash_hex}. Nothing was installed: fix the hash in the catalog or restore the depot file"
        )

    def _run_installer(self, spec: VersionSpec, source_dir: str, staging: str) -> None:
        """Run the vendor installer under the reaper, so it and everything it started die with this process."""
        argv = [expand(arg, dest=staging, src=source_dir) for arg in spec.installer["command"]]
        log_path = self.layout.install_log(spec.app, spec.version)
        timeout = spec.installer["timeout"]
        with self._open("logs", create=True) as logs:
            log = os.open(log_path.name, _LOG_FLAGS, 0o644, dir_fd=logs.fd)
        try:
            # Its own process group (the reaper leads it), so a timeout stops everything the installer started.
            process = subprocess.Popen(
                [sys.executable or "python3", _REAPER, str(os.getpid()), "--", *argv],
                cwd=source_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise InstallError(f"the installer could not start: {exc}") from None
        finally:
            os.close(log)
        try:
            returncode = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise InstallError(
                f"the installer ran past its {timeout} s timeout and was stopped; log: {log_path}"
            ) from None
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the installer, or what it left running
            process.wait()
        if returncode == 127:
            raise InstallError(f"the installer could not start; log: {log_path}")
        if returncode != 0:
            raise InstallError(f"the installer exited with {returncode}; log: {log_path}")

    def _manifest(self, spec: VersionSpec, records: list, seconds: float, job: _Job) -> dict:
        return {
            "app": spec.app,
            "version": spec.version,
            "kind": spec.kind,
            "source": redact_url(spec.source) if spec.source else None,
            "fetched_from": redact_url(job.fetched_from) if job.fetched_from else None,
            "hash": spec.hash,
            "identity": identity(spec),
            "launchers": spec.launchers,
            "env": spec.env,
            "files": sum(1 for record in records if record.type != "dir"),
            "bytes": sum(record.size for record in records),
            # Identical files of installed versions this one shares by hardlink: bytes it took no space for.
            "shared": _shared(job.reuse),
            "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "install_seconds": round(seconds, 3),
            "installed_by": f"salt-workstation {__version__}",
        }

    @staticmethod
    def _promote(app_dir: safefs.Dir, staging: str, version: str) -> None:
        """Make staging visible as the version in one step. An older build swaps into the staging
        name, which the install's clean-up removes."""
        if not app_dir.exists(version):
            app_dir.rename(staging, version)
        elif not app_dir.exchange(staging, version):
            trash = f"{TRASH_PREFIX}{version}-{os.getpid()}"
            app_dir.rename(version, trash)
            app_dir.rename(staging, version)
            app_dir.fsync()
            app_dir.remove(trash)
        app_dir.fsync()

    def remove(self, app: str, version: str) -> bool:
        """Remove one installed version: gone from view in one rename, then deleted."""
        with self.locked(app) as app_dir:
            return self._remove_locked(app_dir, version)

    def _remove_locked(self, app_dir: safefs.Dir, version: str) -> bool:
        if not app_dir.exists(safefs.component(version, "version")):
            return False
        dest = app_dir.join(version)
        if app_dir.is_symlink(version):
            raise UnsafePath(
                f"{dest} is a symlink salt-workstation did not create; it is left as it is (and what "
                "it points to). Remove it by hand if it should go"
            )
        with app_dir.child(version) as folder:
            if _loads(folder.read_bytes(MANIFEST)) is None:
                raise WorkstationError(
                    f"{dest} was not installed by salt-workstation (no manifest); "
                    "remove it by hand if it should go"
                )
        trash = f"{TRASH_PREFIX}{version}-{os.getpid()}"
        app_dir.rename(version, trash)
        app_dir.fsync()
        app_dir.remove(trash)
        return True

    # ---- retention -------------------------------------------------------------

    def _history(self, app: str) -> list:
        try:
            with self._open("apps", app) as app_dir:
                return _loads(app_dir.read_bytes(HISTORY)) or []
        except (OSError, WorkstationError):
            return []

    def retention(self, app: str, keep: list, retain: int) -> tuple[list, list]:
        """(versions to remove, new history). History lists versions by when they were last wanted."""
        installed = sorted(self.installed().get(app, {}))
        history = self._history(app)
        keep = [version for version in keep if version in installed]
        ordered = [v for v in history if v in installed and v not in keep]
        ordered = [
            v for v in installed if v not in keep and v not in ordered
        ] + ordered  # unknown = oldest
        kept_previous = ordered[len(ordered) - retain :] if retain else []
        remove = [v for v in ordered if v not in kept_previous]
        return remove, kept_previous + sorted(keep)

    def prune(self, app: str, keep: list, retain: int) -> list:
        """Remove versions of app that no production wants, beyond the `retain` most recent."""
        remove, history = self.retention(app, keep, retain)
        if not remove and history == self._history(app):
            return []
        with self.locked(app) as app_dir:
            for version in remove:
                self._remove_locked(app_dir, version)
            app_dir.write_file(HISTORY, _dumps(history), 0o644)
        return remove

    # ---- verification ------------------------------------------------------------

    def verify(self, app: str, version: str, deep: bool = True) -> dict:
        """Compare the installed files with the manifest: missing, changed and extra paths.

        One walk of the version folder through descriptors, never through a link, at any depth.
        """
        dest = self.layout.version_dir(app, version)
        try:
            folder = self._open("apps", app, version)
        except (OSError, WorkstationError) as exc:
            return {
                "app": app,
                "version": version,
                "ok": False,
                "error": f"{dest} cannot be read: {exc}",
            }
        with folder:
            rows = _loads(folder.read_bytes(FILE_LIST))
            if _loads(folder.read_bytes(MANIFEST)) is None or rows is None:
                return {
                    "app": app,
                    "version": version,
                    "ok": False,
                    "error": f"{dest} has no manifest; reinstall it",
                }
            unpack = _unpack()
            records = {row[0]: unpack.Record.from_list(row) for row in rows}
            # Folders the archive created without an entry of their own hold known paths: they are not extra.
            implied = {
                rel.rsplit("/", depth)[0]
                for rel in records
                for depth in range(1, rel.count("/") + 1)
            }
            missing, changed, extra, seen = [], [], [], set()
            for entry in folder.walk():
                record = records.get(entry.rel)
                if record is None:
                    if entry.rel not in RESERVED_NAMES and not (
                        entry.is_dir and entry.rel in implied
                    ):
                        extra.append(entry.rel)
                    continue
                seen.add(entry.rel)
                problem = _check_entry(entry, record, deep, unpack)
                if problem:
                    changed.append(f"{entry.rel}: {problem}")
            missing = [rel for rel in records if rel not in seen]
        kinds = [record.type for record in records.values()]
        return {
            "app": app,
            "version": version,
            "ok": not (missing or changed or extra),
            # Counted apart, so that "3 files" reads as three files (hard links are files too).
            "files": sum(1 for kind in kinds if kind in ("file", "hardlink")),
            "folders": kinds.count("dir"),
            "links": kinds.count("symlink"),
            "deep": deep,
            "missing": missing,
            "changed": changed,
            "extra": extra,
        }


class _Job:
    """One install in progress: what it reserved on disk, for clean-up and for its error messages."""

    def __init__(self, spec: VersionSpec):
        self.spec = spec
        self.app_dir: safefs.Dir | None = None
        self.budget = None
        self.scratch: list[str] = []
        self.notes: list[str] = []  # what the install's report should mention (skipped mirrors)
        self.fetched_from: str | None = None
        self.reuse = None  # files of installed versions that identical new files link to

    def scratch_name(self, suffix: str) -> str:
        """A staging, source or spool name beside the versions; removed however the install ends."""
        name = f"{STAGING_PREFIX}{self.spec.version}-{os.getpid()}{suffix}"
        if name not in self.scratch:
            self.scratch.append(name)
        return name


def _shared(reuse) -> dict:
    if reuse is None or not reuse.linked:
        return {"files": 0, "bytes": 0, "with": []}
    return {
        "files": len(reuse.linked),
        "bytes": reuse.linked_bytes,
        "with": sorted(set(reuse.linked.values())),
    }


def _check_entry(entry: safefs.Entry, record, deep: bool, unpack) -> str | None:
    info = entry.info
    if record.type == "symlink":
        same = (
            stat.S_ISLNK(info.st_mode)
            and os.readlink(entry.name, dir_fd=entry.parent_fd) == record.target
        )
        return None if same else "link target changed"
    if record.type == "dir":
        return None if stat.S_ISDIR(info.st_mode) else "no longer a folder"
    if not stat.S_ISREG(info.st_mode):
        return "no longer a regular file"
    if record.type == "file":
        if info.st_size != record.size:
            return f"size {info.st_size}, expected {record.size}"
        if deep and unpack.hash_file(entry.parent_fd, entry.name) != record.digest:
            return "content changed"
    if stat.S_IMODE(info.st_mode) != record.mode:
        return f"mode {stat.S_IMODE(info.st_mode):o}, expected {record.mode:o}"
    return None
