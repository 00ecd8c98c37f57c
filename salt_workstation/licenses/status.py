"""What the license clients of this machine have now, read only: the files this feature writes (never
read through a link), what differs from what they should hold, the Autodesk registrations as the
helper lists them, and whether the license servers answer.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shlex
import socket
import stat
import time
from concurrent.futures import ThreadPoolExecutor, wait

from salt_workstation import safefs
from salt_workstation.errors import WorkstationError
from salt_workstation.licenses import contract, plan
from salt_workstation.licenses.contract import Server

STATUSES = ("ok", "refused", "timeout", "unresolved", "unreachable", "invalid")
AUTODESK_NETWORK = (
    "NETWORK",
    1,
    "1",
)  # `AdskLicensingInstHelper list` reports the method as a number
_ASSIGNMENT = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


# --------------------------------------------------------------------------- files


def account_ids(owner: str, group: str) -> tuple[int, int]:
    try:
        uid = pwd.getpwnam(owner).pw_uid
    except KeyError:
        raise WorkstationError(
            f"user '{owner}' does not exist on this machine; create it or pick another owner"
        ) from None
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise WorkstationError(
            f"group '{group}' does not exist on this machine; create it or pick another group"
        ) from None
    return uid, gid


def _look(path: str) -> tuple[os.stat_result | None, bytes | None]:
    """The lstat of `path` and, for a regular file, its bytes; a link is looked at, never through."""
    folder, name = os.path.split(path)
    try:
        holder = safefs.Dir.root(folder or "/")
    except FileNotFoundError:
        return None, None
    with holder:
        info = holder.lstat(name)
        if info is None or not stat.S_ISREG(info.st_mode):
            return info, None
        return info, holder.read_bytes(name)


def file_differences(path: str, data: bytes, mode: int, uid: int, gid: int) -> list[str] | None:
    """None when there is no file at `path`; else what differs: type, content, mode, owner (empty when none)."""
    info, held = _look(path)
    if info is None:
        return None
    if held is None:
        return ["type"]  # a link or something else: replaced by a plain file, never followed
    differences = ["content"] if held != data else []
    if stat.S_IMODE(info.st_mode) != mode:
        differences.append("mode")
    if (info.st_uid, info.st_gid) != (uid, gid):
        differences.append("owner")
    return differences


def file_changes(path: str, data: bytes, mode: int, owner: str, group: str) -> dict:
    """What writing `data` to `path` with this mode and owner would change ({} when nothing): never the content."""
    uid, gid = account_ids(owner, group)
    differences = file_differences(path, data, mode, uid, gid)
    if differences == []:
        return {}
    changes = {"path": path, "mode": f"{mode:04o}", "owner": owner, "group": group}
    if differences is None:
        changes["created"] = True
    else:
        changes["updated"] = differences
    return changes


def read_environment(path: str) -> dict[str, str] | None:
    """The variables of an environment file this feature wrote; None when absent, {} for a link or other
    non-file there (it is replaced, never read through)."""
    info, held = _look(path)
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise WorkstationError(f"{path} is a folder; remove it so the file can be written")
    if info is None:
        return None
    return parse_environment(held.decode("utf-8", errors="replace")) if held is not None else {}


def environment_changes(path: str, variables: dict, style: str) -> dict:
    """What making the environment file hold exactly `variables` would change, each variable's old and new
    value included; with no variables the file goes."""
    old = read_environment(path)
    changed = {
        name: {"old": (old or {}).get(name), "new": variables.get(name)}
        for name in sorted(set(old or {}) | set(variables))
        if (old or {}).get(name) != variables.get(name)
    }
    if not variables:
        return {} if old is None else {"path": path, "removed": True, "variables": changed}
    changes = file_changes(
        path, plan.render_environment(variables, style).encode(), 0o644, "root", "root"
    )
    if changes:
        changes["variables"] = changed
    return changes


def parse_environment(text: str) -> dict[str, str]:
    """The variables of a file plan.render_environment wrote (either style)."""
    found = {}
    for line in text.splitlines():
        match = _ASSIGNMENT.match(line.strip())
        if match:
            value = match.group(2)
            try:
                parts = shlex.split(value)
                value = parts[0] if len(parts) == 1 else value
            except ValueError:
                pass
            found[match.group(1)] = value
    return found


# --------------------------------------------------------------------------- Autodesk


def helper_installed(helper: str) -> bool:
    """Whether the Autodesk licensing helper is there to run (the product's installer brings it)."""
    return os.access(helper, os.X_OK)


def autodesk_registration(
    listing: str, product_key: str, product_version: str, servers: list, server_type: str
) -> str:
    """From `AdskLicensingInstHelper list` output: registered (as wanted), different (another method or
    servers), or absent (the product is not registered at all)."""
    try:
        products = json.loads(listing)
    except ValueError:
        raise WorkstationError(
            "could not read the output of `AdskLicensingInstHelper list` (not JSON)"
        ) from None
    for product in products if isinstance(products, list) else []:
        if not isinstance(product, dict):
            continue
        keys = {product.get("sel_prod_key"), product.get("def_prod_key")}
        versions = {product.get("sel_prod_ver"), product.get("def_prod_ver")}
        if product_key not in keys or product_version not in versions:
            continue
        listed = [server for server in product.get("lic_servers") or [] if server]
        listed_type = product.get("lic_server_type")
        wanted_type = contract.AUTODESK_SERVER_TYPES.get(server_type)
        same_type = listed_type is None or listed_type in (
            server_type,
            wanted_type,
            str(wanted_type),
        )
        if product.get("lic_method") in AUTODESK_NETWORK and listed == list(servers) and same_type:
            return "registered"
        return "different"
    return "absent"


# --------------------------------------------------------------------------- reachability


def probe(host: str, port: int, timeout: float) -> str:
    """ok, refused, timeout, unresolved or unreachable, for one TCP connection within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return "unresolved"
    first = None
    for family, kind, proto, _name, address in addresses:
        left = deadline - time.monotonic()
        if left <= 0:
            return first or "timeout"
        with socket.socket(family, kind, proto) as connection:
            connection.settimeout(left)
            try:
                connection.connect(address)
                return "ok"
            except ConnectionRefusedError:
                status = "refused"
            except TimeoutError:
                status = "timeout"
            except OSError:
                status = "unreachable"  # no route, network down
        first = first or status
    return first or "unresolved"


def probe_all(targets: list[tuple[str, Server | None]], timeout: float) -> list[str]:
    """The status of each (text, Server) target, probed in parallel; None servers are `invalid`."""
    statuses = ["invalid" if server is None else None for _text, server in targets]
    pending = [
        (index, server) for index, (_text, server) in enumerate(targets) if server is not None
    ]
    if not pending:
        return statuses
    executor = ThreadPoolExecutor(
        max_workers=min(16, len(pending)), thread_name_prefix="license-probe"
    )
    futures = {
        executor.submit(probe, server.host, server.port, timeout): index
        for index, server in pending
    }
    done, _late = wait(
        futures, timeout=timeout + 2
    )  # name resolution cannot be interrupted: give it a grace
    executor.shutdown(wait=False, cancel_futures=True)
    for future, index in futures.items():
        statuses[index] = future.result() if future in done else "timeout"
    return statuses


def reachability(section, timeout: float) -> dict:
    """Per license, per server: ok, refused, timeout, unresolved, unreachable, or invalid (malformed in pillar)."""
    targets = []
    for name in sorted(section, key=str) if isinstance(section, dict) else ():
        entry = section[name]
        if isinstance(entry, dict):
            for _path, server, _problem in contract.servers_of(name, entry):
                targets.append((name, server.text if server else None, server))
        elif entry is not None:
            targets.append((name, None, None))
    statuses = probe_all([(text, server) for _name, text, server in targets], timeout)
    servers: dict = {}
    for (name, text, _server), status in zip(targets, statuses, strict=False):
        servers.setdefault(str(name), {})[text if text is not None else "(malformed)"] = status
    return {
        "ok": all(status == "ok" for status in statuses),
        "timeout": timeout,
        "servers": servers,
    }
