#!/bin/bash
# Runs runc v1.1.5's own integration tests (tests/integration/*.bats) against a runtime,
# `shoal runtime` by default, offline:
#
#   tests/runc/run-runc-bats.sh RUNC_SOURCE [BATS_FILE...]
#
# RUNC_SOURCE is a runc checkout or git directory (e.g. the search tools' mirror,
# /work/.mirror/opencontainers+runc/repo); the tests are exported from tag $RUNC_TAG (v1.1.5)
# into a scratch directory, never copied into shoal (they are runc's, Apache-2.0). BATS_FILE
# names files of tests/integration (default: all but seccomp-notify*.bats, which
# wait forever for the seccompagent that is not built). RUNTIME names the runtime under test
# (default: shoal's runtime as a drop-in named runc, $WORK/bin/runc, made here as setup.sh makes
# shoal-runtime, by worker.runtime.start_script with $PYTHON, the worktree's .venv/bin/python:
# the same quick start-up, and the runtime answers to runc's name in help and version text;
# RUNTIME=/usr/sbin/runc measures runc itself).
#
# Changes to runc's harness, made in the scratch copy only: get-images.sh is replaced (it
# downloads busybox and Debian with curl and needs go): the busybox image is shoal's test
# image layer (/bin/busybox from busybox-static, an applet symlink each, /etc/passwd and
# /etc/group; no proc/ or sys/, as docker-library's busybox rootfs); there is no Debian
# image (its tests fail). contrib/cmd/recvtty is tests/runc/recvtty (Python); sd-helper and
# seccompagent are absent (their tests fail).
#
# Writes the TAP stream to $WORK/result.tap and prints "passed N of M (skipped S)".
# Needs root, bats, jq and gawk (Debian packages; deploy/setup.sh installs them).
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
repo=$(readlink -f "$here/../..")
src=${1:?usage: run-runc-bats.sh RUNC_SOURCE [BATS_FILE...]}
shift
tag=${RUNC_TAG:-v1.1.5}
work=${WORK:-$(mktemp -d /tmp/runc-bats.XXXXXX)}
python=${PYTHON:-$repo/.venv/bin/python}
if [ -n "${RUNTIME:-}" ]; then
    runtime=$(readlink -f "$RUNTIME")
else
    # A file named runc (sys.argv[0]): the runtime calls itself runc, as a drop-in does.
    runtime=$work/bin/runc
    mkdir -p "$work/bin"
    "$python" -m worker.runtime.start_script "$runtime"
fi

for tool in bats jq; do
    command -v "$tool" >/dev/null || { echo "run-runc-bats: $tool is missing" >&2; exit 2; }
done

mkdir -p "$work"
if git --git-dir="$src" rev-parse --verify -q "$tag^{commit}" >/dev/null 2>&1; then
    git --git-dir="$src" archive "$tag" tests/integration | tar -x -C "$work"
elif git -C "$src" rev-parse --verify -q "$tag^{commit}" >/dev/null 2>&1; then
    git -C "$src" archive "$tag" tests/integration | tar -x -C "$work"
elif [ -d "$src/tests/integration" ]; then
    cp -r "$src/tests/integration" "$work/tests/"
else
    echo "run-runc-bats: no tag $tag nor tests/integration in $src" >&2
    exit 2
fi
integration=$work/tests/integration

mkdir -p "$work/contrib/cmd/recvtty"
ln -sf "$here/recvtty" "$work/contrib/cmd/recvtty/recvtty"

busybox_tar=$integration/testdata/busybox-rootfs.tar
# Without proc/ and sys/, as docker-library's busybox rootfs (mask.bats makes them symlinks).
(cd "$repo" && "$python" -c '
import io, sys, tarfile
from worker.images.testimage import layer_base
with tarfile.open(fileobj=io.BytesIO(layer_base())) as src, \
        tarfile.open(sys.argv[1], "w") as out:
    for member in src:
        if member.name.strip("./").split("/")[0] in ("proc", "sys"):
            continue
        out.addfile(member, src.extractfile(member) if member.isfile() else None)' \
    "$busybox_tar")
cat > "$integration/get-images.sh" <<IMAGES
#!/bin/bash
echo BUSYBOX_IMAGE=$busybox_tar
echo DEBIAN_IMAGE=$integration/testdata/no-debian-image.tar
IMAGES

files=()
if [ $# -eq 0 ]; then
    # Without runc's seccompagent (Go) the seccomp-notify tests wait forever, under runc too.
    for f in "$integration"/*.bats; do
        case $f in */seccomp-notify*.bats) ;; *) files+=("$f") ;; esac
    done
else
    for f in "$@"; do files+=("$integration/${f##*/}"); done
fi

cd "$integration"
status=0
export RUNC=$runtime
# The foreground-terminal tests (tty.bats) open /dev/tty: give bats a terminal if it has none.
if [ -t 0 ] || ! command -v script >/dev/null; then
    bats --tap "${files[@]}" > "$work/result.tap" 2>"$work/bats.stderr" || status=$?
else
    printf '%q ' bats --tap "${files[@]}" > "$work/bats.command"
    script -q -e -c "$(cat "$work/bats.command") >$work/result.tap 2>$work/bats.stderr" \
        /dev/null </dev/null >/dev/null || status=$?
fi
total=$(grep -c '^\(not \)\?ok ' "$work/result.tap" || true)
failed=$(grep -c '^not ok ' "$work/result.tap" || true)
skipped=$(grep -c '^ok .* # skip' "$work/result.tap" || true)
echo "passed $((total - failed - skipped)) of $total (skipped $skipped) with $runtime; TAP in $work/result.tap"
exit $status
