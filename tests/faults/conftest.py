"""The fault tier: what `salt-call --local state.apply workstation` does when the world misbehaves.

Every fault is made for real: a tmpfs too small for the app, a loopback depot that
truncates, stalls, throttles or lies, a salt-call killed with SIGKILL, two applies at
once, symlinks planted where the engine writes, hostile names in the pillar, archives
that are a thousand folders deep or inflate to a gigabyte. Each test drives what the
user runs (a masterless salt-call with a pillar it writes) and then checks the same
things: the apply failed (or succeeded) cleanly, nothing outside its place changed,
what was installed still verifies, and once the fault is gone the next apply converges.

Each test has a sandbox folder: its pillar, its Salt config and cache, an install_root
(optionally a tmpfs), the OS paths the launchers and licenses write to, and an
`outside` folder that plays the rest of the machine. Only loopback is reached.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.support import archives
from tests.support.depot import DepotServer
from tests.support.masterless import TOP, minion_config, salt_call_argv, system_paths_under
from tests.support.states import by_id
from tests.support.tree import snapshot

HERE = Path(__file__).resolve().parent
TIMINGS_FILE = HERE / ".timings.json"
ROOT_ONLY = "needs root to mount a tmpfs (CI runs the fault tier as root)"
APPLY_TIMEOUT = 90  # seconds: no salt-call in this tier may take longer, whatever the engine does
MIB = 1 << 20
_COUNTER = itertools.count(1)


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).is_relative_to(HERE):
            item.add_marker(pytest.mark.faults)


# ---- archives, built once per session ----------------------------------------------------------


INSTALL_SCRIPT = """#!/bin/sh
# A vendor installer that leaves a child behind: the child writes its pid and keeps writing
# to the installer's output (the install log) until something kills it. It hangs (so a test
# can kill salt-call mid-install) only while the file named by $3 exists, once.
set -e
dest="$1"; pids="$2"; hang="$3"
cp -R payload/. "$dest"/
if [ -e "$hang" ]; then
  rm -f "$hang"
  ( while :; do echo "left-behind child still writing"; sleep 0.1; done ) &
  echo "$! $$" > "$pids.tmp" && mv "$pids.tmp" "$pids"
  exec sleep 60
fi
echo "installed into $dest"
"""


class Builds:
    """Archives for the whole session, each built the first time a test asks for it.

    Each is a `<app>-<version>/...` tree (strip_components 1) with the app's launcher at
    bin/<app>; file names say what is inside, so two kinds of one app version never collide.
    """

    def __init__(self, root: Path):
        self.root = root

    def _app(self, app, version, kind, files):
        files = {**archives.app_files(app, version), **files}
        return archives.write_tar(
            self.root / f"{app}-{version}{kind}.tar.gz", files, top=f"{app}-{version}"
        )

    @functools.cache
    def good(self, app: str, version: str) -> Path:
        """A small app: a launcher, a library, a script, a README."""
        return self._app(app, version, "", {})

    @functools.cache
    def sized(self, app: str, version: str, mib: int) -> Path:
        """An app with `mib` MiB of random (incompressible) data in 1 MiB files."""
        blobs = {f"data/blob{index:03d}.bin": (os.urandom(MIB), 0o644) for index in range(mib)}
        return self._app(app, version, f"-{mib}m", blobs)

    @functools.cache
    def compressible(self, app: str, version: str, mib: int) -> Path:
        """An app with `mib` MiB of data that gzips about 100 times (one random 16 KiB block, repeated):
        a download that fits where the unpacked files do not."""
        block = os.urandom(16 * 1024)
        blobs = {f"data/blob{index:03d}.bin": (block * 64, 0o644) for index in range(mib)}
        return self._app(app, version, f"-{mib}m-compressible", blobs)

    @functools.cache
    def deep(self, app: str, version: str, depth: int = 1000) -> Path:
        """An app with a file `depth` folders deep."""
        return self._app(
            app, version, f"-deep{depth}", {archives.deep_path(depth): (b"deep\n", 0o644)}
        )

    @functools.cache
    def long_paths(self, app: str, version: str) -> Path:
        """An app with a file whose path is past PATH_MAX (30 folders of 200 characters)."""
        return self._app(app, version, "-long", {archives.long_path(): (b"long\n", 0o644)})

    @functools.cache
    def bomb(self, app: str, version: str, inflated: int = 1 << 30) -> Path:
        """About 1 MiB of tar.gz that inflates to `inflated` bytes of zeros."""
        return archives.write_bomb(
            self.root / f"{app}-{version}-bomb.tar.gz",
            inflated,
            archives.app_files(app, version),
            top=f"{app}-{version}",
        )

    @functools.cache
    def installer(self, app: str, version: str) -> Path:
        """A `kind: installer` source: install.sh (INSTALL_SCRIPT) and the app under payload/."""
        payload = {
            f"payload/{name}": content for name, content in archives.app_files(app, version).items()
        }
        return self._app(
            app, version, "-installer", {"install.sh": (INSTALL_SCRIPT.encode(), 0o755), **payload}
        )


@pytest.fixture(scope="session")
def builds(tmp_path_factory) -> Builds:
    return Builds(tmp_path_factory.mktemp("fault-archives"))


@pytest.fixture(scope="session")
def fault_depot(tmp_path_factory):
    """One loopback depot for the session (each test serves from a folder of its own)."""
    with DepotServer(tmp_path_factory.mktemp("fault-depot")) as server:
        yield server


# ---- timings --------------------------------------------------------------------------------------


class Timings:
    """How long each fault took to surface: the failing state's own duration (from its start to its
    failure, as Salt reports it), and the whole salt-call around it (which the depot faults share)."""

    def __init__(self):
        self.rows: dict[str, dict] = {}

    def record(self, case: str, run: Run, state_id: str) -> None:
        state = run.ids.get(state_id) or {}
        row = {
            "surfaced_s": round(float(state.get("duration", 0)) / 1000, 2),
            "salt_call_s": round(run.seconds, 2),
            "result": state.get("result"),
        }
        self.rows[case] = row
        print(
            f"{case}: surfaced in {row['surfaced_s']} s (the state), {row['salt_call_s']} s (the salt-call)"
        )

    def write(self) -> None:
        if self.rows:
            with contextlib.suppress(
                OSError
            ):  # a read-only checkout still gets the table in the summary
                TIMINGS_FILE.write_text(
                    json.dumps(dict(sorted(self.rows.items())), indent=1) + "\n"
                )

    def table(self) -> list[str]:
        width = max(map(len, self.rows), default=0)
        lines = [f"{'fault'.ljust(width)}  surfaced_s  salt_call_s  result"]
        lines += [
            f"{case.ljust(width)}  {row['surfaced_s']:>10}  {row['salt_call_s']:>11}  {row['result']}"
            for case, row in sorted(self.rows.items())
        ]
        return lines


_TIMINGS = Timings()


@pytest.fixture(scope="session")
def timings():
    """The session's table of fault timings, written to tests/faults/.timings.json at the end."""
    yield _TIMINGS
    _TIMINGS.write()


def pytest_terminal_summary(terminalreporter):
    if _TIMINGS.rows:
        terminalreporter.write_sep(
            "-", f"fault timings (also in {TIMINGS_FILE.relative_to(HERE.parents[1])})"
        )
        for line in _TIMINGS.table():
            terminalreporter.write_line(line)


# ---- one salt-call ---------------------------------------------------------------------------------


@dataclass
class Run:
    """One `salt-call --local --out=json`, read back."""

    args: tuple
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float

    @functools.cached_property
    def data(self):
        assert self.stdout.strip(), (
            f"salt-call {' '.join(self.args)} printed nothing; stderr:\n{self.stderr}"
        )
        return json.loads(self.stdout)["local"]

    @property
    def states(self) -> dict:
        assert isinstance(self.data, dict), (
            f"state.apply returned no states: {self.data}\n{self.stderr}"
        )
        return self.data

    @property
    def ids(self) -> dict:
        return by_id(self.states)

    def results(self) -> dict:
        return {key: state["result"] for key, state in self.ids.items()}

    def comments(self) -> dict:
        return {key: state["comment"] for key, state in self.ids.items()}

    def changed(self) -> dict:
        return {key: state["changes"] for key, state in self.ids.items() if state["changes"]}

    def not_true(self) -> dict:
        return {
            key: state["comment"] for key, state in self.ids.items() if state["result"] is not True
        }


def assert_no_traceback(run: Run) -> None:
    """No Python traceback reached the user: not on stderr, not in a state comment."""
    texts = [run.stderr]
    if run.stdout.strip():
        data = run.data
        texts += [
            str(state.get("comment", "") if isinstance(state, dict) else state)
            for state in (data.values() if isinstance(data, dict) else [data])
        ]
    for text in texts:
        if "Traceback" in text:
            lines = [line for line in text[text.index("Traceback") :].splitlines() if line.strip()]
            pytest.fail(
                f"a traceback reached the user, ending: {' | '.join(lines[-2:])}", pytrace=False
            )


def catalog_path(app: str, version: str) -> str:
    return f"workstation:catalog:{app}:versions:{version}"


def install_id(app: str, version: str) -> str:
    return f"workstation-app-{app}-{version}"


def assert_not_installed(run: Run, app: str, version: str, *fragments: str) -> str:
    """The install of app version failed cleanly and said why; returns its comment."""
    assert_no_traceback(run)
    state = run.ids.get(install_id(app, version))
    assert state is not None, f"no state {install_id(app, version)}: {sorted(run.ids)}"
    comment = state["comment"]
    assert state["result"] is False, f"{app} {version} was reported installed: {comment}"
    assert comment.startswith(f"{app} {version} was not installed"), comment
    assert catalog_path(app, version) in comment, comment
    for fragment in fragments:
        assert fragment in comment, f"{fragment!r} not in: {comment}"
    return comment


# ---- the sandbox -------------------------------------------------------------------------------------


class Sandbox:
    """One test's workstation: pillar, Salt config and cache, install_root, OS paths, the outside world."""

    def __init__(self, root: Path, depot: DepotServer, builds: Builds):
        self.root = root
        self.name = f"t{next(_COUNTER)}"
        self.depot = depot
        self.builds = builds
        self.salt = root / "salt"  # config, cache (salt/root) and log: Salt's own, not checked
        self.pillar_dir = root / "pillar"
        self.install_root = root / "studio"
        self.system = (
            root / "system"
        )  # bin_dir, xdg dirs, fstab, license files: the OS, played here
        self.outside = root / "outside"  # the rest of the machine
        self.probe = root / "probe"  # what the tests' own helpers write (pid files): not checked
        self.depot_dir = depot.root / self.name
        self.mounts: list[Path] = []
        self.pid_files: list[Path] = []
        self.scrub: list[
            Path
        ] = []  # trees too deep for shutil.rmtree (pytest's own cleanup uses it)
        for folder in (
            self.pillar_dir,
            self.install_root,
            self.system,
            self.outside,
            self.probe,
            self.depot_dir,
        ):
            folder.mkdir(parents=True, exist_ok=True)
        (self.pillar_dir / "top.sls").write_text(TOP)
        minion_config(self.salt, f"ws-fault-{self.name}", self.pillar_dir)

    # ---- the depot -----------------------------------------------------------------------------

    @property
    def depot_url(self) -> str:
        return f"{self.depot.url}/{self.name}"

    def publish(self, archive: Path, name: str | None = None) -> str:
        """Serve archive from this test's depot folder; returns its URL path (for depot faults)."""
        name = name or archive.name
        target = self.depot_dir / name
        if not target.exists():
            target.symlink_to(archive)
        return f"/{self.name}/{name}"

    def entry(self, archive: Path, app: str, **overrides) -> dict:
        """The catalog entry for a built archive, published on this test's depot."""
        self.publish(archive)
        spec = {
            "source": archive.name,
            "hash": archives.sha256_of(archive),
            "strip_components": 1,
            "launchers": {app: f"bin/{app}"},
        }
        spec.update(overrides)
        return spec

    def good_catalog(self, *versions: str, app: str = "good") -> dict:
        return {app: {"versions": {v: self.entry(self.builds.good(app, v), app) for v in versions}}}

    # ---- the pillar ------------------------------------------------------------------------------

    def pillar(self, catalog: dict, productions: dict, **top) -> dict:
        lookup = system_paths_under(self.system)
        lookup["os"][
            "mount_packages"
        ] = {}  # never the host's package manager, whatever the pillar says
        lookup["os"]["licenses"] = {"root": str(self.system)}
        data = {
            "install_root": str(self.install_root),
            "depot": self.depot_url,
            "retain": 1,
            "catalog": catalog,
            "productions": productions,
            "lookup": lookup,
        }
        data.update(top)
        return data

    def write_pillar(self, data: dict) -> dict:
        (self.pillar_dir / "workstation.sls").write_text(
            yaml.safe_dump({"workstation": data}, sort_keys=False)
        )
        return data

    # ---- salt-call ---------------------------------------------------------------------------------

    def call(self, *args, timeout: float = APPLY_TIMEOUT) -> Run:
        started = time.monotonic()
        try:
            done = subprocess.run(
                salt_call_argv(self.salt, *args),
                capture_output=True,
                text=True,
                timeout=timeout,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(
                f"salt-call {' '.join(args)} did not finish within {timeout} s "
                f"(killed); stderr:\n{exc.stderr or ''}"
            )
        return Run(args, done.returncode, done.stdout, done.stderr, time.monotonic() - started)

    def apply(self, *args, timeout: float = APPLY_TIMEOUT) -> Run:
        return self.call("state.apply", "workstation", *args, timeout=timeout)

    def start_apply(self, *args) -> subprocess.Popen:
        """An apply in the background (to be killed, or raced), its output in files under probe/."""
        index = next(_COUNTER)
        out, err = self.probe / f"apply-{index}.out", self.probe / f"apply-{index}.err"
        with open(out, "w") as stdout, open(err, "w") as stderr:
            process = subprocess.Popen(
                salt_call_argv(self.salt, "state.apply", "workstation", *args),
                stdout=stdout,
                stderr=stderr,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        process.outputs, process.started = (out, err), time.monotonic()
        return process

    def finish(self, process: subprocess.Popen, timeout: float = APPLY_TIMEOUT) -> Run:
        """Wait for a start_apply() and read it back (killed past the timeout)."""
        try:
            process.wait(timeout=max(1.0, timeout - (time.monotonic() - process.started)))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail(f"a background apply did not finish within {timeout} s (killed)")
        out, err = (path.read_text() for path in process.outputs)
        return Run(
            tuple(process.args[5:]),
            process.returncode,
            out,
            err,
            time.monotonic() - process.started,
        )

    def verify(self, app: str, version: str) -> dict:
        run = self.call("dcc.verify", app, version, "deep=True")
        assert_no_traceback(run)
        return run.data

    def installed(self) -> dict:
        return self.call("dcc.list_installed").data

    # ---- what is on disk ---------------------------------------------------------------------------

    def app_dir(self, app: str) -> Path:
        return self.install_root / "apps" / app

    def snapshot(self) -> dict:
        """Everything in the sandbox but install_root, Salt's config/cache/log and the tests' probes."""
        return snapshot(self.root, skip=[self.install_root, self.salt, self.probe])

    def leftovers(self, app: str) -> list[str]:
        app_dir = self.app_dir(app)
        if not app_dir.is_dir():
            return []
        return sorted(
            p.name for p in app_dir.iterdir() if p.name.startswith((".staging-", ".trash-"))
        )

    # ---- faults on this machine --------------------------------------------------------------------

    def mount_tmpfs(self, size_mib: int) -> Path:
        """install_root becomes a tmpfs of size_mib MiB (unmounted at teardown, whatever happened)."""
        if os.geteuid() != 0:
            pytest.skip(ROOT_ONLY)
        subprocess.run(
            [
                "mount",
                "-t",
                "tmpfs",
                "-o",
                f"size={size_mib}m,mode=0755",
                "tmpfs",
                str(self.install_root),
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        self.mounts.append(self.install_root)
        return self.install_root

    def free_bytes(self) -> int:
        info = os.statvfs(self.install_root)
        return info.f_bavail * info.f_frsize

    def used_bytes(self) -> int:
        info = os.statvfs(self.install_root)
        return (info.f_blocks - info.f_bfree) * info.f_frsize

    @contextlib.contextmanager
    def ballast(self, leave: int):
        """Fill install_root's filesystem until only `leave` bytes are free; the ballast goes on exit."""
        path = self.install_root / "ballast.bin"
        with open(path, "wb") as handle:
            block = bytes(MIB)
            while (free := self.free_bytes()) > leave:
                handle.write(block[: min(MIB, free - leave)])
                handle.flush()
                os.fsync(handle.fileno())
        try:
            yield path
        finally:
            path.unlink()

    def teardown(self) -> None:
        self.depot.clear()
        for (
            pid_file
        ) in self.pid_files:  # what a test's installer left running, if the engine did not stop it
            for pid in running_in(pids_in(pid_file)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for path in self.scrub:
            subprocess.run(
                ["rm", "-rf", "--", str(path)], capture_output=True, timeout=60, check=False
            )
        for mount in reversed(self.mounts):
            subprocess.run(["umount", str(mount)], capture_output=True, timeout=30, check=False)
            if os.path.ismount(mount):
                subprocess.run(
                    ["umount", "-l", str(mount)], capture_output=True, timeout=30, check=False
                )
        shutil.rmtree(self.depot_dir, ignore_errors=True)


def pids_in(pid_file: Path) -> list[int]:
    try:
        return [int(word) for word in pid_file.read_text().split()]
    except (OSError, ValueError):
        return []


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name: state, ppid, pgrp, session, ..."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (exited, not yet reaped: it runs nothing any more)."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def running_in(leaders: list[int]) -> list[int]:
    """Live processes that are one of `leaders`, or in a process group or session one of them leads."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if (
                fields
                and fields[0] != "Z"
                and {int(entry), int(fields[2]), int(fields[3])} & set(leaders)
            ):
                found.append(int(entry))
    return found


@pytest.fixture
def sandbox(tmp_path, fault_depot, builds):
    box = Sandbox(tmp_path, fault_depot, builds)
    yield box
    box.teardown()


# ---- the checks every case makes ------------------------------------------------------------------


def converge(box: Sandbox) -> Run:
    """The next apply succeeds in every state; a further one changes nothing. (When the next apply
    itself changes nothing, it is that further apply: the same pillar on the same disk.)"""
    run = box.apply()
    assert_no_traceback(run)
    assert run.not_true() == {}, "the apply after the fault did not converge"
    if run.changed():
        again = box.apply()
        assert_no_traceback(again)
        assert again.not_true() == {}
        assert again.changed() == {}, "a second apply after the fault still changed something"
    return run


def assert_recovers(box: Sandbox, *installs: tuple[str, str]) -> None:
    """Once the fault is gone: the apply converges, the installs verify deep, no staging or trash is left."""
    converge(box)
    assert_verifies(box, *installs)
    assert {app: box.leftovers(app) for app, _ in installs} == {app: [] for app, _ in installs}


def assert_verifies(box: Sandbox, *installs: tuple[str, str]) -> None:
    """`dcc.verify <app> <version> deep=True` says ok for each (the calls run side by side)."""
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        reports = dict(
            zip(installs, pool.map(lambda install: box.verify(*install), installs), strict=False)
        )
    bad = {
        f"{app} {version}": report
        for (app, version), report in reports.items()
        if report.get("ok") is not True
    }
    assert bad == {}, "dcc.verify deep=True found problems"


def baseline(box: Sandbox, catalog: dict | None = None, apps: dict | None = None, **top) -> dict:
    """Production `show` with `apps` (good 1.0) installed and its launchers written: the machine before the fault."""
    catalog = {**box.good_catalog("1.0"), **(catalog or {})}
    apps = {"good": "1.0"} if apps is None else apps
    pillar = box.write_pillar(box.pillar(catalog, {"show": {"apps": apps}}, **top))
    run = box.apply()
    assert_no_traceback(run)
    assert run.not_true() == {}, "the baseline did not converge"
    return pillar


def with_fault_production(box: Sandbox, pillar: dict, apps: dict, **top) -> dict:
    """The baseline pillar plus production `fault`, which wants `apps`."""
    productions = {**pillar["productions"], "fault": {"apps": apps}}
    return box.write_pillar({**pillar, "productions": productions, **top})


def assert_contained(run: Run, *apps: str) -> None:
    """Only the faulty apps' states (their installs, their retention, production `fault`) did not succeed."""
    prefixes = (*tuple(f"workstation-app-{app}-" for app in apps), "workstation-launchers-fault")
    others = {
        key: comment for key, comment in run.not_true().items() if not key.startswith(prefixes)
    }
    assert others == {}, "states of other apps failed too"


# What an image bake (phase bake) rightly writes outside install_root: the image identity it
# records, and the folder whose entries that changes.
BAKE_FILES = frozenset(
    {"system/etc", "system/etc/salt-workstation", "system/etc/salt-workstation/image.json"}
)


def launcher_files(production: str, *commands: str) -> set[str]:
    """What a production's launchers rightly write outside install_root (sandbox-relative), and the
    folders whose entries that changes: its desktop entries, menu folder and menu fragment."""
    menus, applications, directories = (
        "system/etc/xdg/menus/applications-merged",
        "system/usr/share/applications",
        "system/usr/share/desktop-directories",
    )
    return {
        menus,
        applications,
        directories,
        f"{menus}/workstation-{production}.menu",
        f"{directories}/workstation-{production}.directory",
        *(f"{applications}/workstation-{production}-{command}.desktop" for command in commands),
    }


def assert_in_place(before: dict, after: dict, written=frozenset()) -> None:
    """Two Sandbox.snapshot()s are the same but for `written` (paths a succeeding state rightly
    writes, see launcher_files): nothing else outside install_root was written or deleted."""
    added = sorted(set(after) - set(before) - set(written))
    removed = sorted(set(before) - set(after))
    modified = sorted(
        path for path in set(before) & set(after) - set(written) if before[path] != after[path]
    )
    assert (added, removed, modified) == ([], [], []), "something outside install_root changed"
