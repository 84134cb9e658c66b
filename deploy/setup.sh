#!/usr/bin/env bash
# Installs everything shoal needs on a Debian machine (run as root): the system packages its
# runtime and tests use, and a virtualenv in .venv with shoal and its dev tools.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: etcd for cluster state, busybox-static for test images, runc/crun as
# reference runtimes, iproute2 for network namespaces, skopeo/umoci to check image layouts,
# python3-venv for the virtualenv.
need_pkgs=()
command -v etcd >/dev/null 2>&1 || need_pkgs+=(etcd-server)
[ -x /bin/busybox ] || need_pkgs+=(busybox-static)
command -v runc >/dev/null 2>&1 || need_pkgs+=(runc)
command -v crun >/dev/null 2>&1 || need_pkgs+=(crun)
command -v ip >/dev/null 2>&1 || need_pkgs+=(iproute2)
# Bridge networks: NAT and published ports in a table of shoal's own.
command -v nft >/dev/null 2>&1 || need_pkgs+=(nftables)
# The private etcd's CA and certificates are made with openssl (scheduler/store/certificates.py).
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)
# Independent checkers of the OCI image layouts the tests build.
command -v skopeo >/dev/null 2>&1 || need_pkgs+=(skopeo)
command -v umoci >/dev/null 2>&1 || need_pkgs+=(umoci)
# A real registry (distribution 2.8) for the registry tests and bench, htpasswd for its auth.
command -v docker-registry >/dev/null 2>&1 || need_pkgs+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || need_pkgs+=(apache2-utils)
# --init runs Debian's static tini as the container's PID 1.
[ -x /usr/bin/tini-static ] || need_pkgs+=(tini)
# tests/runc/run-runc-bats.sh runs runc's own integration tests (bats) against shoal runtime.
command -v bats >/dev/null 2>&1 || need_pkgs+=(bats)
command -v jq >/dev/null 2>&1 || need_pkgs+=(jq)
# python -m bench network measures overlay throughput with iperf3.
command -v iperf3 >/dev/null 2>&1 || need_pkgs+=(iperf3)
command -v gawk >/dev/null 2>&1 || need_pkgs+=(gawk)
# The Docker API front end is tested with the docker CLI, and bench/dockerapi runs a private
# dockerd beside shoal: Debian's docker.io has both.
{ command -v docker >/dev/null 2>&1 && command -v dockerd >/dev/null 2>&1; } ||
    need_pkgs+=(docker.io)
# docker-compose 1.29 (a Python client of the same API) is tested against it too.
[ -x /usr/bin/docker-compose ] || need_pkgs+=(docker-compose)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_pkgs+=(python3-venv)
# The placement engine is compiled with mypyc (deploy/compile_placement.py): a C compiler, the C
# library's headers and Python's.
command -v gcc >/dev/null 2>&1 || need_pkgs+=(gcc)
[ -f /usr/include/stdio.h ] || need_pkgs+=(libc6-dev)
python3 -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' ||
    need_pkgs+=(python3-dev)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing Debian packages ${need_pkgs[*]}; run as root or install them" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "setup: shoal needs Python 3.11 or newer (found $(python3 --version))" >&2
    exit 1
}
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# An editable install in setuptools' "compat" mode: a plain path line in a .pth file. The
# default mode installs an import hook that every Python start loads (pathlib, re, fnmatch:
# ~10 ms before `shoal ps` does anything).
stamp=.venv/.shoal-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ deploy/setup.sh -nt "$stamp" ]; then
    log=.venv/pip-install.log
    if ! { .venv/bin/python -m pip install -q --upgrade pip &&
           .venv/bin/python -m pip install -q -e '.[dev]' \
               --config-settings editable_mode=compat; } >"$log" 2>&1; then
        cat "$log" >&2
        echo "setup: pip install failed (log above, kept in $log)" >&2
        exit 1
    fi
    touch "$stamp"
fi

# shoal-runtime: the runtime's own start-up script (python -IS with its module path written
# in), for what starts a runtime per container operation (runc's place in containerd, docker
# --add-runtime, runc's tests); `shoal runtime` does the same work behind the shoal command.
.venv/bin/python -m worker.runtime.start_script .venv/bin/shoal-runtime
# shoal: the same kind of script (python -S) over the console script pip wrote, which starts
# Python with site: ~3 ms of every shoal command.
.venv/bin/python -m worker.runtime.start_script --command .venv/bin/shoal

# The placement engine compiled with mypyc into .venv/placement-native, used only while its
# sources are the ones compiled (scheduler/placement/native.py); a second run only checks.
if ! .venv/bin/python deploy/compile_placement.py >.venv/compile-placement.log 2>&1; then
    cat .venv/compile-placement.log >&2
    echo "setup: compiling the placement engine failed (log above, kept in" \
        ".venv/compile-placement.log)" >&2
    exit 1
fi

# shoal's own bytecode, compiled here: where PYTHONDONTWRITEBYTECODE is set (as on these
# machines) Python never caches it, and every command would compile its modules again at
# start-up (~20 ms for `shoal runtime run`). Stale files are ignored by Python, never wrong.
.venv/bin/python -m compileall -q -j 0 channels protocol scheduler worker cli bench dockerapi >/dev/null
