"""The inventory: hosts, waves, scopes and credentials a migration lead describes in YAML.

Everything that can later reach a remote shell (names, suffixes, addresses) is validated on load, so no
stage downstream has to trust text from a file. The parts live in rooms of their own and are gathered here,
the one name the rest of the project imports from:

- `fields`: the validated field types (DNS names, addresses, tags, durations, URLs);
- `sections`: provisioning, window, credentials, DHCP scopes, defaults, hosts, waves, host tools;
- `schema`: the root `Inventory` and its derived views;
- `checks`: cross-checks that need the whole inventory;
- `loader`: YAML with `include:`s, problems with their lines, `load_inventory`.
"""

from __future__ import annotations

from tasks.inventory.fields import (REMEDIATION_METHODS, Address, DnsSuffix, Duration, EnvName, HostName, OsType,
                                    Port, RequiredSuffix, Slug, Tag, Version)
from tasks.inventory.loader import load_inventory
from tasks.inventory.schema import Inventory
from tasks.inventory.sections import (AmtState, ControlMode, Credentials, Defaults, DhcpScope, Host,
                                      HostToolsSection, KeaSource, LegacyAmtCredentials, LegacyConsole, LegacyRecord,
                                      Provisioning, ProvisioningApi, SshCredentials, Wave, Window, WindowsDhcpSource,
                                      selector_matches)

__all__ = [
    "REMEDIATION_METHODS", "Address", "DnsSuffix", "Duration", "EnvName", "HostName", "OsType", "Port",
    "RequiredSuffix", "Slug", "Tag", "Version", "load_inventory", "Inventory", "AmtState", "ControlMode",
    "Credentials", "Defaults", "DhcpScope", "Host", "HostToolsSection", "KeaSource", "LegacyAmtCredentials",
    "LegacyConsole", "LegacyRecord", "Provisioning", "ProvisioningApi", "SshCredentials", "Wave", "Window",
    "WindowsDhcpSource", "selector_matches",
]
