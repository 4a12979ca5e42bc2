#!/usr/bin/env bash
# Install a FreshMesh store box on a Debian/Ubuntu machine with systemd:
#   sudo ops/systemd/install-edge.sh --box-config out/boxes/S001.box.json --leaf-config out/leaf/S001.conf
# (the files `freshmesh deploy nats-config` wrote for this store). It
#   - creates the system user `freshmesh` (in group dialout, for serial devices), no login shell, no home login;
#   - makes a venv in /opt/freshmesh/venv and installs FreshMesh into it (from --source, default: this repository);
#   - installs the configuration into /etc/freshmesh (root:freshmesh, 0640: the store's password is in it);
#   - installs and enables freshmesh-leaf.service and freshmesh-edge.service (started unless --no-start).
# Run it again to upgrade: the user, the configuration (unless given again) and the store database are kept.
# DESTDIR=/some/dir stages every file under that root instead and skips the user, ownership and systemctl steps
# (packaging, and the test in tests/unit/test_deploy_ops.py).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source_dir="$(cd "$here/../.." && pwd)"
box_config=""
leaf_config=""
start=1
venv=1
python_bin="${PYTHON:-python3.11}"
root="${DESTDIR:-}"

usage() {
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    echo "options: --box-config FILE --leaf-config FILE [--source DIR] [--python BIN] [--no-start] [--no-venv]"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --box-config) box_config="$2"; shift 2 ;;
        --leaf-config) leaf_config="$2"; shift 2 ;;
        --source) source_dir="$2"; shift 2 ;;
        --python) python_bin="$2"; shift 2 ;;
        --no-start) start=0; shift ;;
        --no-venv) venv=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install-edge.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done

staged() { [ -n "$root" ]; }

if ! staged && [ "$(id -u)" -ne 0 ]; then
    echo "install-edge.sh: run as root (or set DESTDIR to stage the files)" >&2
    exit 1
fi
for file in "$box_config" "$leaf_config"; do
    if [ -n "$file" ] && [ ! -r "$file" ]; then
        echo "install-edge.sh: cannot read $file" >&2
        exit 2
    fi
done
if ! staged && [ ! -e /etc/freshmesh/edge.json ] && [ -z "$box_config" ]; then
    echo "install-edge.sh: give --box-config (the store's box configuration) on the first install" >&2
    exit 2
fi

# 1. the service user
if ! staged && ! id -u freshmesh >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/freshmesh --no-create-home --shell /usr/sbin/nologin \
        --groups dialout freshmesh
fi

# 2. the software, in its own venv (root-owned: the service cannot change its own code)
install -d -m 0755 "$root/opt/freshmesh"
if [ "$venv" -eq 1 ]; then
    "$python_bin" -m venv "$root/opt/freshmesh/venv"
    "$root/opt/freshmesh/venv/bin/pip" install --quiet --upgrade pip
    "$root/opt/freshmesh/venv/bin/pip" install --quiet "$source_dir"
fi
install -m 0644 "$source_dir/README.md" "$root/opt/freshmesh/README.md"

# 3. configuration: readable by the service's group only (it holds the store's NATS password)
install -d -m 0750 "$root/etc/freshmesh"
install -d -m 0700 "$root/var/lib/freshmesh" "$root/var/lib/freshmesh/edge"
if [ -n "$box_config" ]; then
    install -m 0640 "$box_config" "$root/etc/freshmesh/edge.json"
fi
if [ -n "$leaf_config" ]; then
    install -m 0640 "$leaf_config" "$root/etc/freshmesh/leaf.conf"
fi
if ! staged; then
    chown root:freshmesh /etc/freshmesh
    chown root:freshmesh /etc/freshmesh/edge.json
    [ -e /etc/freshmesh/leaf.conf ] && chown root:freshmesh /etc/freshmesh/leaf.conf
    chown -R freshmesh:freshmesh /var/lib/freshmesh
fi

# 4. the units
install -d -m 0755 "$root/etc/systemd/system"
install -m 0644 "$here/freshmesh-edge.service" "$root/etc/systemd/system/freshmesh-edge.service"
install -m 0644 "$here/freshmesh-leaf.service" "$root/etc/systemd/system/freshmesh-leaf.service"
if staged; then
    echo "staged under $root (no user, ownership or systemctl changes)"
    exit 0
fi
systemctl daemon-reload
units="freshmesh-edge.service"
if [ -e /etc/freshmesh/leaf.conf ]; then
    units="freshmesh-leaf.service $units"
fi
# shellcheck disable=SC2086 # the unit list is split on purpose
systemctl enable $units
if [ "$start" -eq 1 ]; then
    # shellcheck disable=SC2086
    systemctl restart $units
fi
echo "installed: $units (journalctl -u freshmesh-edge -f)"
