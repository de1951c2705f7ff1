#!/usr/bin/env bash
# run-monitoring.sh PARENT_PID: for `make run`. Starts Prometheus (generated
# config and rules: scrapes the brokers on 127.0.0.1:8778, 8788 and 8798, the agent on
# 127.0.0.1:9308 and the audit reconciler on 127.0.0.1:8780 that kobs run
# starts) and Alertmanager (alerts/alertmanager.yml) when their
# Debian packages are installed (make deps), prints their URLs, and stops
# them when PARENT_PID (make) exits or on Ctrl-C. Data goes under ./data.
set -uo pipefail
parent=${1:?parent pid}
prom=/usr/bin/prometheus
am=/usr/bin/prometheus-alertmanager
pids=()
stop() { ((${#pids[@]})) && kill "${pids[@]}" 2>/dev/null; exit 0; }
trap stop EXIT INT TERM
mkdir -p data/prometheus data/alertmanager
if [[ -x $am ]]; then
	$am --config.file=alerts/alertmanager.yml --storage.path=data/alertmanager \
		--web.listen-address=127.0.0.1:9095 --cluster.listen-address= --log.level=warn \
		>data/alertmanager.log 2>&1 &
	pids+=($!)
	echo "kobs: Alertmanager on http://127.0.0.1:9095 (alerts/alertmanager.yml; log data/alertmanager.log)"
else
	echo "kobs: Alertmanager not installed (make deps installs prometheus-alertmanager); alerts go nowhere"
fi
if [[ -x $prom ]]; then
	$prom --config.file=alerts/generated/prometheus.yml --storage.tsdb.path=data/prometheus \
		--web.listen-address=127.0.0.1:9090 --log.level=warn >data/prometheus.log 2>&1 &
	pids+=($!)
	echo "kobs: Prometheus on http://127.0.0.1:9090 (rules: http://127.0.0.1:9090/alerts; log data/prometheus.log)"
	echo "      scraping the brokers (8778, 8788, 8798), the agent (9308), the audit reconciler (8780) and the trace shipper (9200) that kobs run starts"
	echo "      dashboards as PNG: bin/kobs dashboards render --prometheus http://127.0.0.1:9090 --es http://127.0.0.1:9200 --out data/dashboards"
else
	echo "kobs: Prometheus not installed (make deps installs it); no rules evaluate"
fi
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
