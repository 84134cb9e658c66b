"""What ``shoal runtime features`` reports: the runtime-spec features document, built from the
tables the runtime itself uses (namespaces, capabilities, mount options, hooks), so that it
cannot claim what the runtime does not do."""

from __future__ import annotations

from typing import Any

from worker.runtime.caps import CAPABILITIES
from worker.runtime.mountopts import known_options
from worker.runtime.oci_version import OCI_VERSION
from worker.runtime.plan import NAMESPACES
from worker.runtime.records import field_keys
from worker.runtime.spec import Hooks

OCI_VERSION_MIN = "1.0.0"


def _seccomp() -> dict[str, Any]:
    from worker.runtime import seccomp

    return {
        "enabled": True,
        "actions": sorted(seccomp.ACTIONS),
        "operators": sorted(seccomp.OPERATORS),
        "archs": sorted(seccomp.ARCHITECTURES),
        "knownFlags": list(seccomp.FLAGS),
        "supportedFlags": list(seccomp.FLAGS),
    }


def features(runtime_version: str) -> dict[str, Any]:
    hooks = field_keys(Hooks)
    return {
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": OCI_VERSION,
        "hooks": hooks,
        "mountOptions": known_options(),
        "linux": {
            "namespaces": sorted(NAMESPACES),
            "capabilities": list(CAPABILITIES),
            # cgroupfs on v1 and on v2 (device rules included: an eBPF device filter there);
            # no systemd driver (cgroupsPath is a plain path).
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            # The planner refuses process.apparmorProfile and selinuxLabel; seccomp's lists
            # are the tables worker.runtime.seccomp checks profiles against.
            "seccomp": _seccomp(),
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
        },
        "annotations": {"org.shoal.runtime.version": runtime_version},
    }
