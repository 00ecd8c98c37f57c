"""
License clients of the DCCs from the ``workstation:licenses`` pillar: the
environment for launchers, the formula's data, and whether the servers answer.

Secrets (a node-locked license's ``content``, an Autodesk ``product_key``) are
read from the pillar by path, here, at the moment they are written or handed to
the vendor's helper; no function returns or logs them.

File paths honour ``workstation:os:licenses:root`` through ``formula_data``;
the functions that write take the final path, so tests and image builds can
point them anywhere.
"""

import logging
import os

import salt.utils.data

from salt_workstation import licenses as core
from salt_workstation.errors import WorkstationError

log = logging.getLogger(__name__)

__virtualname__ = "licenses"


def __virtual__():
    return __virtualname__


def _config(config=None):
    return config if config is not None else __salt__["workstation.config"](unmask=True)


def formula_data(config=None):
    """
    The states the ``workstation.licenses`` SLS renders: two environment files
    and one ``licenses.configured`` state per license. Secrets are not in it:
    the states get the pillar path of each secret.

    CLI Example:

    .. code-block:: bash

        salt '*' licenses.formula_data
    """
    return core.formula_data(_config(config))


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
    variables, _issues = core.environment(merged.get(core.SECTION, {}), core.parameters(merged), public=False)
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
    return core.reachability(merged.get(core.SECTION, {}), float(timeout))


def _secret(pillar_path):
    """The plain value at a pillar path. (`pillar.get` masks values on purpose; this is the one
    place that reads a secret, right where it is written or handed to the vendor's helper.)"""
    return salt.utils.data.traverse_dict_and_list(__pillar__, pillar_path, None, ":")


def _mode(mode):
    return mode if isinstance(mode, int) else int(str(mode), 8)


def write_environment(path, variables, style, test=False):
    """
    Make the environment file at ``path`` (``style`` ``profile`` or
    ``environment.d``) hold exactly ``variables``; remove it when there are none.
    ``test=True`` writes nothing. Returns ``{"changes": {...}}`` or ``{"error": ...}``.

    CLI Example:

    .. code-block:: bash

        salt '*' licenses.write_environment /etc/environment.d/90-workstation-licenses.conf '{RLM_LICENSE: 5053@rlm1}' environment.d
    """
    try:
        return {"changes": core.ensure_environment_file(path, dict(variables or {}), style, test)}
    except (OSError, WorkstationError) as exc:
        return {"error": f"{path}: {exc}"}


def write_file(path, contents, mode="0644", owner="root", group="root", test=False):
    """
    Make ``path`` hold ``contents`` (not secret: a vendor's client config),
    written atomically with its mode and owner set before the first byte.
    Returns ``{"changes": {...}}`` (never the content) or ``{"error": ...}``.

    CLI Example:

    .. code-block:: bash

        salt '*' licenses.write_file /etc/chaos/vrlclient.xml "$(cat vrlclient.xml)"
    """
    if not isinstance(contents, str):
        return {"error": f"{path}: contents must be text, got {type(contents).__name__}"}
    try:
        return {"changes": core.ensure_file(path, contents.encode(), _mode(mode), owner, group, test)}
    except (OSError, ValueError, WorkstationError) as exc:
        return {"error": f"{path}: {exc}"}


def write_secret_file(path, content_pillar, mode="0600", owner="root", group="root", test=False):
    """
    Write the secret found in the pillar at ``content_pillar`` (a node-locked
    license, e.g. ``workstation:licenses:katana-node:content``) to ``path``,
    mode 0600 or 0640 and owner set before the first byte. The secret is read
    here and is in no return and no log. Returns ``{"changes": {...}}`` or
    ``{"error": ...}``.

    CLI Example:

    .. code-block:: bash

        salt '*' licenses.write_secret_file /opt/studio/licenses/katana.lic workstation:licenses:katana-node:content 0640 root artists
    """
    numeric = core.file_mode(mode)
    if numeric is None:
        return {"error": f"{path}: the mode must be 0600 or 0640, got {mode!r}"}
    secret = _secret(content_pillar)
    problems = core.check_content(secret, content_pillar)
    if problems:
        return {"error": str(problems[0])}
    try:
        changes = core.ensure_file(path, secret.encode(), numeric, owner, group, test)
    except (OSError, WorkstationError) as exc:
        return {"error": f"{path}: {exc}"}
    if changes and not test:
        log.info("licenses: wrote %s (mode %s, %s:%s)", path, changes["mode"], owner, group)
    return {"changes": changes}


def register_autodesk(product_version, product_key_pillar, servers, server_type="SINGLE", config_file=None,
                      eula_locale="US", helper=None, timeout=None, test=False):
    """
    Register an Autodesk product with the Autodesk Licensing Service for
    network licenses (``AdskLicensingInstHelper register``, or ``change`` when
    it is registered another way), only when ``AdskLicensingInstHelper list``
    does not show it registered so already. The product key is read from the
    pillar at ``product_key_pillar`` and appears in no return and no log (it is
    on the helper's command line while the helper runs: the helper reads it
    nowhere else). ``test=True`` only lists.

    Returns ``{"changes": {...}}`` or ``{"error": ...}``.

    CLI Example:

    .. code-block:: bash

        salt '*' licenses.register_autodesk 2025.0.0.F workstation:licenses:maya2025:product_key '[lic1]'
    """
    if not helper or not timeout:
        params = core.parameters(_config())
        helper = helper or params["autodesk_helper"]
        timeout = timeout or params["autodesk_timeout"]
    servers = list(servers or [])
    product_key = _secret(product_key_pillar)
    problems = core.check_product_key(product_key, product_key_pillar)
    if problems:
        return {"error": str(problems[0])}
    changes = {"product_version": product_version, "license_method": "NETWORK", "server_type": server_type,
               "servers": servers}
    if test and not os.access(helper, os.X_OK):
        # The product's own install, earlier in this run, brings the helper.
        return {"changes": {"action": "register", **changes},
                "comment": f"the helper {helper} is not installed yet"}
    try:
        listed = core.run_helper([helper, "list"], timeout, secrets=[product_key])
        status = core.autodesk_registration(listed, product_key, product_version, servers, server_type)
        if status == "registered":
            return {"changes": {}}
        action = "register" if status == "absent" else "change"
        if not test:
            core.run_helper(core.autodesk_argv(helper, action, product_key, product_version, servers, server_type,
                                               config_file, eula_locale), timeout, secrets=[product_key])
            listed = core.run_helper([helper, "list"], timeout, secrets=[product_key])
            if core.autodesk_registration(listed, product_key, product_version, servers, server_type) != "registered":
                return {"error": f"`{helper} {action}` succeeded, but `{helper} list` does not show the product "
                                 f"{product_version} registered with {', '.join(servers)}"}
            log.info("licenses: %s Autodesk product %s for network servers %s", action, product_version, servers)
    except WorkstationError as exc:
        return {"error": str(exc)}
    return {"changes": {"action": action, **changes}}
