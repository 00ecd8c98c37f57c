"""
License clients of the DCCs from the ``workstation:licenses`` pillar: what the
formula lays out (``licenses.plan``), the environment launchers pass to the
apps, whether the servers answer, and the reads and writes the ``licenses``
states are made of (docs/licenses.md).

Each function reads (``*_changes``, ``autodesk_registration``) or acts
(``write_*``, ``register_autodesk``) through ``salt_workstation.licenses``; a
failure raises ``CommandExecutionError`` naming the file or product and what
to do, so ``salt-call`` exits non-zero.

Secrets (a node-locked license's ``content``, an Autodesk ``product_key``) are
read from the pillar by path, here, at the moment they are written or handed to
the vendor's helper; an ``sdb://<profile>/<key>`` reference there is resolved
with ``sdb.get`` at that moment. No function returns or logs them.
"""

import contextlib
import logging
import re

import salt.utils.data
from salt.exceptions import CommandExecutionError, SaltInvocationError

from salt_workstation import secrets
from salt_workstation.errors import WorkstationError
from salt_workstation.licenses import contract, effects, status
from salt_workstation.licenses import plan as wanted

log = logging.getLogger(__name__)

__virtualname__ = "licenses"


def __virtual__():
    return __virtualname__


def _config(config=None):
    return config if config is not None else __salt__["workstation.config"](unmask=True)


@contextlib.contextmanager
def _failing(what):
    """The core's errors as Salt's: CommandExecutionError, prefixed with what failed."""
    try:
        yield
    except (OSError, WorkstationError) as err:
        raise CommandExecutionError(f"{what}: {err}") from err


def _sdb_get(uri):
    return __salt__["sdb.get"](uri, strict=True)


def _secret(pillar_path, check):
    """The secret at a pillar path (an sdb reference there resolved now, on this minion), judged by
    `check` without quoting it. (`pillar.get` masks values on purpose; this is the one place that reads
    a secret, right where it is written or handed to the helper.)"""
    value = salt.utils.data.traverse_dict_and_list(__pillar__, pillar_path, None, ":")
    try:
        value = secrets.reveal(value, pillar_path, _sdb_get)
    except WorkstationError as err:
        raise CommandExecutionError(str(err)) from None
    problems = check(value, pillar_path)
    if problems:
        raise CommandExecutionError(str(problems[0]))
    return value


def _mode(mode):
    """An octal file mode, given as 0644 (YAML's number 420) or "0644"."""
    if isinstance(mode, str) and re.fullmatch(r"0?[0-7]{3,4}", mode):
        return int(mode, 8)
    if isinstance(mode, int) and not isinstance(mode, bool) and 0 <= mode <= 0o7777:
        return mode
    raise SaltInvocationError(f'mode must be an octal mode such as "0644", got {mode!r}')


def _secret_mode(mode):
    numeric = contract.file_mode(mode)
    if numeric is None:
        raise SaltInvocationError(
            f'the mode of a license file must be "0600" or "0640", got {mode!r}'
        )
    return numeric


def plan(config=None):
    """
    What ``workstation.licenses`` lays out for this machine, as plain data:
    the variables of the environment files, the vendor files with their
    contents, the node-locked license files and the Autodesk registrations,
    each with where it goes, plus every pillar error of the feature. Secrets
    are not in it: it carries the pillar path of each one.

    CLI Example:

    .. code-block:: bash

        salt '*' licenses.plan
    """
    return wanted.desired(_config(config))


def environment(config=None):
    """
    The environment variables the licenses set (``foundry_LICENSE``,
    ``ADSKFLEX_LICENSE_FILE``, ``SESI_LMHOST``, ``VRAY_AUTH_CLIENT_FILE_PATH``,
    ...), from the valid entries: what the environment files hold and what
    launchers pass to the apps.

    CLI Example:

    .. code-block:: bash

        salt '*' licenses.environment
    """
    merged = _config(config)
    variables, _issues = wanted.environment(
        merged.get(contract.SECTION, {}), contract.parameters(merged)
    )
    return variables


def check(timeout=3, config=None):
    """
    Whether every configured license server answers on TCP within ``timeout``
    seconds (all probed at once). Per license and server: ``ok``, ``refused``
    (nothing listens), ``timeout`` (no answer: a firewall, a hung server),
    ``unresolved`` (the name does not resolve), ``unreachable`` (no route) or
    ``invalid`` (malformed in the pillar, not probed).

    Returns ``{"ok": bool, "timeout": seconds, "servers": {license: {server: status}}}``.

    CLI Example:

    .. code-block:: bash

        salt 'ws-*' licenses.check
        salt 'ws-*' licenses.check timeout=10
    """
    merged = _config(config)
    return status.reachability(merged.get(contract.SECTION, {}), float(timeout))


def environment_changes(path, variables, style="environment.d"):
    """
    What making the environment file at ``path`` (``style`` ``profile`` or
    ``environment.d``) hold exactly ``variables`` would change: ``{}`` when it
    already does; else the file's path, mode and owner, ``created``,
    ``updated`` or ``removed``, and each variable's old and new value.

    CLI Example:

    .. code-block:: bash

        salt '*' licenses.environment_changes /etc/environment.d/90-workstation-licenses.conf '{RLM_LICENSE: 5053@rlm1}'
    """
    problems = wanted.check_environment(variables, style)
    if problems:
        raise SaltInvocationError(f"{path}: {'; '.join(problems)}")
    with _failing(path):
        return status.environment_changes(path, dict(variables), style)


def write_environment(path, variables, style="environment.d"):
    """
    Make the environment file at ``path`` hold exactly ``variables`` (written
    atomically, 0644 root:root); remove it when there are none. Returns what
    changed, as ``licenses.environment_changes`` says it (``{}``: nothing).

    CLI Example:

    .. code-block:: bash

        salt '*' licenses.write_environment /etc/environment.d/90-workstation-licenses.conf '{RLM_LICENSE: 5053@rlm1}' environment.d
    """
    changes = environment_changes(path, variables, style)
    if changes:
        with _failing(path):
            effects.write_environment(
                path, dict(variables), style, *status.account_ids("root", "root")
            )
    return changes


def file_changes(path, contents, mode="0644", owner="root", group="root"):
    """
    What writing ``contents`` to ``path`` with this mode and owner would change:
    ``{}`` when the file already is so; else its path, mode and owner, and
    ``created`` or ``updated`` (what differs: type, content, mode, owner).

    CLI Example:

    .. code-block:: bash

        salt '*' licenses.file_changes /etc/chaos/vrlclient.xml "$(cat vrlclient.xml)"
    """
    if not isinstance(contents, str):
        raise SaltInvocationError(f"{path}: contents must be text, got {type(contents).__name__}")
    with _failing(path):
        return status.file_changes(path, contents.encode(), _mode(mode), owner, group)


def write_file(path, contents, mode="0644", owner="root", group="root"):
    """
    Make ``path`` hold ``contents`` (not secret: a vendor's client config),
    written atomically with its mode and owner set before the first byte, only
    when something differs. Returns what changed (never the content).

    CLI Example:

    .. code-block:: bash

        salt '*' licenses.write_file /etc/chaos/vrlclient.xml "$(cat vrlclient.xml)"
    """
    changes = file_changes(path, contents, mode, owner, group)
    if changes:
        with _failing(path):
            effects.write_file(
                path, contents.encode(), _mode(mode), *status.account_ids(owner, group)
            )
    return changes


def secret_file_changes(path, content_pillar, mode="0600", owner="root", group="root"):
    """
    What writing the secret at pillar path ``content_pillar`` (a node-locked
    license, e.g. ``workstation:licenses:katana-node:content``) to ``path``
    would change; never the content.

    CLI Example:

    .. code-block:: bash

        salt '*' licenses.secret_file_changes /opt/studio/licenses/katana.lic workstation:licenses:katana-node:content 0640 root artists
    """
    numeric = _secret_mode(mode)
    secret = _secret(content_pillar, contract.check_content)
    with _failing(path):
        return status.file_changes(path, secret.encode(), numeric, owner, group)


def write_secret_file(path, content_pillar, mode="0600", owner="root", group="root"):
    """
    Write the secret at pillar path ``content_pillar`` to ``path``, mode 0600
    or 0640 and owner set before the first byte, only when something differs.
    The secret is read here and is in no return and no log.

    CLI Example:

    .. code-block:: bash

        salt '*' licenses.write_secret_file /opt/studio/licenses/katana.lic workstation:licenses:katana-node:content 0640 root artists
    """
    numeric = _secret_mode(mode)
    secret = _secret(content_pillar, contract.check_content).encode()
    with _failing(path):
        changes = status.file_changes(path, secret, numeric, owner, group)
        if changes:
            effects.write_file(path, secret, numeric, *status.account_ids(owner, group))
            log.info("licenses: wrote %s (mode %s, %s:%s)", path, changes["mode"], owner, group)
    return changes


def _helper(helper, timeout):
    params = contract.parameters(_config()) if not (helper and timeout) else {}
    return helper or params["autodesk_helper"], timeout or params["autodesk_timeout"]


def autodesk_registration(
    product_version, product_key_pillar, servers, server_type="SINGLE", helper=None, timeout=None
):
    """
    Whether the Autodesk product (its key read from the pillar at
    ``product_key_pillar``) is registered for network licenses from
    ``servers``, as ``AdskLicensingInstHelper list`` shows it. Returns
    ``{"helper": path, "helper_installed": bool, "changes": {...}}``: the
    changes ``licenses.register_autodesk`` would make, ``{}`` when none (an
    ``action`` of ``register`` while the helper is not installed yet: the
    product's install brings it).

    CLI Example:

    .. code-block:: bash

        salt '*' licenses.autodesk_registration 2025.0.0.F workstation:licenses:maya2025:product_key '[lic1]'
    """
    helper, timeout = _helper(helper, timeout)
    product_key = _secret(product_key_pillar, contract.check_product_key)
    found = {"helper": helper, "helper_installed": status.helper_installed(helper)}
    action = "register"  # while the helper is not installed yet: the product's install brings it
    if found["helper_installed"]:
        with _failing(f"Autodesk {product_version}"):
            listing = effects.list_autodesk(helper, timeout, product_key)
            registered = status.autodesk_registration(
                listing, product_key, product_version, list(servers), server_type
            )
        action = {"registered": None, "absent": "register"}.get(registered, "change")
    found["changes"] = (
        wanted.autodesk_changes(action, product_version, servers, server_type) if action else {}
    )
    return found


def register_autodesk(
    product_version,
    product_key_pillar,
    servers,
    server_type="SINGLE",
    config_file=None,
    eula_locale="US",
    helper=None,
    timeout=None,
):
    """
    Register an Autodesk product with the Autodesk Licensing Service for
    network licenses (``AdskLicensingInstHelper register``, or ``change`` when
    it is registered another way), only when ``AdskLicensingInstHelper list``
    does not show it registered so already, then check with ``list`` again.
    The product key is read from the pillar at ``product_key_pillar`` and
    appears in no return and no log (it is on the helper's command line while
    the helper runs: the helper reads it nowhere else). Returns what changed.

    CLI Example:

    .. code-block:: bash

        salt '*' licenses.register_autodesk 2025.0.0.F workstation:licenses:maya2025:product_key '[lic1]'
    """
    helper, timeout = _helper(helper, timeout)
    servers = list(servers or [])
    product_key = _secret(product_key_pillar, contract.check_product_key)
    with _failing(f"Autodesk {product_version}"):
        listing = effects.list_autodesk(helper, timeout, product_key)
        found = status.autodesk_registration(
            listing, product_key, product_version, servers, server_type
        )
        if found == "registered":
            return {}
        action = "register" if found == "absent" else "change"
        effects.register_autodesk(
            helper,
            action,
            product_key,
            product_version,
            servers,
            server_type,
            config_file,
            eula_locale,
            timeout,
        )
        listing = effects.list_autodesk(helper, timeout, product_key)
        if (
            status.autodesk_registration(
                listing, product_key, product_version, servers, server_type
            )
            != "registered"
        ):
            raise WorkstationError(
                f"`{helper} {action}` succeeded, but `{helper} list` does not show it "
                f"registered with {', '.join(servers)}"
            )
    log.info(
        "licenses: %s Autodesk product %s for network servers %s", action, product_version, servers
    )
    return wanted.autodesk_changes(action, product_version, servers, server_type)
