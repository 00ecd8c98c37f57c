"""The only code of the licenses feature that changes the machine: files through `safefs` (atomic,
owner and mode set before the first byte, never through a link) and the Autodesk licensing helper,
run by argv (never a shell) in `run_helper`.
"""

from __future__ import annotations

import subprocess

from salt_workstation import safefs
from salt_workstation.errors import WorkstationError
from salt_workstation.licenses import plan


def write_file(path: str, data: bytes, mode: int, uid: int, gid: int) -> None:
    """Replace `path` with `data` in one rename, mode and owner set before the first byte."""
    safefs.write_file(path, data, mode, uid, gid)


def write_environment(path: str, variables: dict, style: str, uid: int, gid: int) -> None:
    """The environment file with exactly these variables (mode 0644); removed when there are none."""
    if variables:
        safefs.write_file(path, plan.render_environment(variables, style).encode(), 0o644, uid, gid)
    else:
        safefs.remove_file(path)


# --------------------------------------------------------------------------- Autodesk licensing helper


def run_helper(argv: list[str], timeout: float, secrets=()) -> str:
    """Run the helper (argv, no shell) and return its output; errors carry the output with secrets blotted out."""

    def blot(text):
        for secret in secrets:
            text = text.replace(secret, "<secret>")
        return text.strip()

    what = blot(" ".join(argv[:2]))
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError:
        raise WorkstationError(
            f"the Autodesk licensing helper is not at {argv[0]}; install the product (its "
            "installer brings the Autodesk Licensing Service) or set "
            "workstation:lookup:os:licenses:autodesk_helper"
        ) from None
    except subprocess.TimeoutExpired:
        raise WorkstationError(f"`{what}` did not finish in {timeout} s") from None
    if done.returncode != 0:
        raise WorkstationError(
            f"`{what}` failed with exit code {done.returncode}: "
            f"{blot(done.stderr or done.stdout)[-2000:] or 'no output'}"
        )
    return done.stdout


def list_autodesk(helper: str, timeout: float, product_key: str) -> str:
    """`AdskLicensingInstHelper list`: the registrations, as JSON text."""
    return run_helper([helper, "list"], timeout, secrets=[product_key])


def autodesk_argv(
    helper,
    action,
    product_key,
    product_version,
    servers,
    server_type,
    config_file=None,
    eula_locale="US",
) -> list[str]:
    """`register` (the product is not known to the licensing service) or `change` (it is, licensed otherwise)."""
    argv = [helper, action, "--prod_key", product_key, "--prod_ver", product_version]
    if action == "register":
        argv += ["--eula_locale", eula_locale]
        if config_file:
            argv += ["--config_file", config_file]
    return [
        *argv,
        "--lic_method",
        "NETWORK",
        "--lic_server_type",
        server_type,
        "--lic_servers",
        ",".join(servers),
    ]


def register_autodesk(
    helper,
    action,
    product_key,
    product_version,
    servers,
    server_type,
    config_file,
    eula_locale,
    timeout,
) -> None:
    """Register the product for these network servers (`register`, or `change` when registered otherwise)."""
    run_helper(
        autodesk_argv(
            helper,
            action,
            product_key,
            product_version,
            servers,
            server_type,
            config_file,
            eula_locale,
        ),
        timeout,
        secrets=[product_key],
    )
