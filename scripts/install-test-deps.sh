#!/usr/bin/env bash
# install-test-deps.sh: what `make test` needs on a fresh Debian machine, as root.
# Idempotent: installs only what is missing, so a second run costs one dpkg query.
set -euo pipefail

# Debian packages: real clients written by others (interop tests),
# Prometheus (telemetry tests, promtool for the alert rules),
# Alertmanager (alert delivery test), Burrow and the ZooKeeper it needs (agent).
pkgs=(kcat python3-kafka python3-confluent-kafka prometheus prometheus-alertmanager burrow zookeeper)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "install-test-deps: need root to apt-get install ${missing[*]}" >&2
		exit 1
	fi
	echo "install-test-deps: apt-get install ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm: the Jolokia 2 JavaScript client (jolokia.js, pinned by its lock file)
# for exporters/jolokia's interop test. npm ships with node here; Debian's
# separate npm package is only needed where it does not.
jsdir=exporters/jolokia/testdata/jolokiajs
if [[ ! -f $jsdir/node_modules/jolokia.js/package.json ]]; then
	command -v node >/dev/null || { echo "install-test-deps: need nodejs (apt-get install nodejs npm)" >&2; exit 1; }
	npm ci --prefix "$jsdir" --no-audit --no-fund >/dev/null
fi

# Go modules.
go mod download
