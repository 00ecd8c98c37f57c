"""What the license clients of this machine should have, as plain data: the variables of the environment
files, the vendor files and their contents, the node-locked license files, the Autodesk registrations.

`desired(config)` is what `workstation.licenses` loops over; the renderers give the exact bytes the
states compare against. Secrets are not in any of it: the states get the pillar path of each one.
"""

from __future__ import annotations

import os
import re
import shlex
from xml.sax.saxutils import escape

from salt_workstation import pillar
from salt_workstation.errors import WorkstationError
from salt_workstation.licenses import contract
from salt_workstation.licenses.contract import SECTION
from salt_workstation.pillar import ENV_NAME, path_of

ENVIRONMENT_STYLES = ("profile", "environment.d")
# What a variable's value may hold (servers, server chains, paths): nothing environment.d or a shell interprets.
_ENV_VALUE = re.compile(r"^[A-Za-z0-9._+/:;,@-]*$")
MANAGED_HEADER = (
    "Managed by salt-workstation from the workstation:licenses pillar; local edits are overwritten."
)
# (ID part, `workstation:os:licenses` key, style): login shells read profile.d, desktop sessions environment.d.
ENVIRONMENT_FILES = (
    ("profile", "profile_file", "profile"),
    ("session", "environment_file", "environment.d"),
)
# The vendor files some types write, by the `workstation:os:licenses` key they hang off.
VENDOR_FILES = {"sidefx": "sidefx_file", "chaos": "chaos_dir"}


def desired(config) -> dict:
    """Everything `workstation.licenses` lays out, from the merged config (secrets in it are read, never copied).

    `errors`: every problem of `workstation:licenses` and `workstation:os:licenses` ("path: message");
    the environment files wait for there being none. Entries with a problem, and files whose path
    cannot be computed, are left out: valid ones still converge.
    """
    params = contract.parameters(config)
    section = config.get(SECTION, {})
    judged = contract.check_section(section, params)
    issues = contract.check_parameters(config) + judged.issues
    reported = {issue.path for issue in issues}
    issues += [issue for issue in contract.chaos_dir_issues(params) if issue.path not in reported]
    register_now = (
        config.get("phase", "all") != "bake"
    )  # an image bake registers nothing; its first boot does
    installs = installs_needing(config)
    vendor_files, license_files, registrations = [], [], []
    for name in judged.accepted:
        entry, kind = section[name], section[name]["type"]
        if kind in VENDOR_FILES:
            item = vendor_file(name, entry, params)
            vendor_files += [item] if item["path"] else []
        elif kind == "nodelocked" and rooted(params, entry["path"]):
            license_files.append(license_file(name, entry, params))
        elif (
            kind == "autodesk"
            and contract.safe_path(params["autodesk_helper"])
            and contract.positive_number(params["autodesk_timeout"])
        ):
            registrations.append(registration(name, entry, params, installs.get(name, [])))
    return {
        "errors": [str(issue) for issue in issues],
        "variables": judged.variables,
        "environment_files": [
            {"scope": scope, "path": rooted(params, params[key]), "style": style}
            for scope, key, style in ENVIRONMENT_FILES
            if rooted(params, params[key])
        ],
        "vendor_files": vendor_files,
        "license_files": license_files,
        "registrations": registrations,
        "register_now": register_now,
        "requires_apps": register_now and any(item["installs"] for item in registrations),
    }


def vendor_file(name, entry, params) -> dict:
    """hserver's license preference file (sidefx) or vrlclient.xml (chaos): where, and its contents."""
    key = VENDOR_FILES[entry["type"]]
    if entry["type"] == "sidefx":
        path, contents = params[key], render_sidefx(entry)
    else:
        path = f"{params[key]}/vrlclient.xml" if isinstance(params[key], str) else None
        contents = render_vrlclient(entry)
    return {"name": name, "path": rooted(params, path), "contents": contents}


def license_file(name, entry, params) -> dict:
    """A node-locked license: where, mode and owner; its content stays in the pillar at content_pillar."""
    return {
        "name": name,
        "path": rooted(params, entry["path"]),
        "content_pillar": path_of(SECTION, name, "content"),
        "mode": f"{contract.file_mode(entry.get('mode', '0600')):04o}",
        "owner": entry.get("owner", "root"),
        "group": entry.get("group", "root"),
    }


def registration(name, entry, params, installs) -> dict:
    """An Autodesk product registered for network licenses; `installs` are the app install states that bring
    the helper (the apps whose catalog entry lists this license)."""
    return {
        "name": name,
        "product_version": entry["product_version"],
        "product_key_pillar": path_of(SECTION, name, "product_key"),
        "servers": list(entry["servers"]),
        "server_type": entry.get("server_type", "SINGLE"),
        "config_file": entry.get("config_file"),
        "eula_locale": entry.get("eula_locale", "US"),
        "helper": params["autodesk_helper"],
        "timeout": params["autodesk_timeout"],
        "installs": installs,
    }


def installs_needing(config) -> dict[str, list[str]]:
    """License name -> the app install states (workstation.apps) whose catalog entry lists it."""
    needing: dict[str, list[str]] = {}
    for wanted in pillar.wanted_versions(config):
        for name in contract.licenses_needed(wanted.spec):
            needing.setdefault(name, []).append(wanted.state_id)
    return needing


def rooted(params, path) -> str | None:
    """Where `path` of the running machine lies under `root` (the path itself when root is /);
    None when either is not a valid absolute path (check_parameters says which)."""
    root = params.get("root", "/")
    if not (contract.safe_path(root) and contract.safe_path(path)):
        return None
    return os.path.normpath(os.path.join(root, path.lstrip("/")))


# --------------------------------------------------------------------------- what the clients read


def environment(section, params) -> tuple[dict[str, str], list]:
    """The variables of the valid entries (sorted), and the issues of the section and of chaos_dir."""
    judged = contract.check_section(section if section is not None else {}, params)
    return judged.variables, judged.issues + contract.chaos_dir_issues(params)


def check_environment(variables, style) -> list[str]:
    """What is wrong with an environment file's variables and style, as given to a state or the CLI."""
    if style not in ENVIRONMENT_STYLES or not isinstance(variables, dict):
        return [
            f"style must be one of {', '.join(ENVIRONMENT_STYLES)} (got {style!r}) and variables a mapping "
            f"of NAME: value (got {type(variables).__name__})"
        ]
    return [
        f"variable {name!r}: names are letters, digits and _, values letters, digits and . _ + / : ; , @ -"
        for name, value in variables.items()
        if not (
            isinstance(name, str)
            and ENV_NAME.match(name)
            and isinstance(value, str)
            and _ENV_VALUE.match(value)
        )
    ]


def render_environment(variables: dict, style: str) -> str:
    """A profile.d script (`profile`) or a systemd environment.d file (`environment.d`)."""
    lines = [f"# {MANAGED_HEADER}"]
    if style == "profile":
        lines += [
            f"export {name}={shlex.quote(value)}" for name, value in sorted(variables.items())
        ]
    elif style == "environment.d":
        # Values are validated to need no quoting: environment.d expands $ and honours quotes.
        lines += [f"{name}={value}" for name, value in sorted(variables.items())]
    else:
        raise WorkstationError(
            f"unknown environment file style '{style}'; use profile or environment.d"
        )
    return "\n".join(lines) + "\n"


def render_sidefx(entry) -> str:
    """The license preference file hserver reads: one `serverhost=` line."""
    return f"serverhost={contract.sidefx_server_list(entry)}\n"


def render_vrlclient(entry) -> str:
    """V-Ray's vrlclient.xml: up to three license servers (Host/Port, Host1/Port1, Host2/Port2)."""
    servers = [contract.parse_server("chaos", text)[0] for text in entry["servers"]]
    lines = [f"<!-- {MANAGED_HEADER} -->", "<VRLClient>", "  <LicServer>"]
    for index in range(contract.CHAOS_MAX_SERVERS):
        suffix = str(index) if index else ""
        server = servers[index] if index < len(servers) else None
        lines.append(f"    <Host{suffix}>{escape(server.host) if server else ''}</Host{suffix}>")
        lines.append(f"    <Port{suffix}>{server.port if server else 30304}</Port{suffix}>")
    lines += ["    <User></User>", "    <Pass></Pass>", "  </LicServer>", "</VRLClient>"]
    return "\n".join(lines) + "\n"


def autodesk_changes(action, product_version, servers, server_type) -> dict:
    """What registering reports: the action (register or change) and the network licensing it sets."""
    return {
        "action": action,
        "product_version": product_version,
        "license_method": "NETWORK",
        "server_type": server_type,
        "servers": list(servers),
    }
