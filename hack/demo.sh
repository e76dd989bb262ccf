#!/usr/bin/env bash
# The demo: a real local control plane, the AIAgent CRD, the operator, and an example fleet
# of the seven agent types; prints `kubectl get aia` once every agent is Ready.
#   hack/demo.sh up | down        (normally through `make demo` / `make demo-down`)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
CLUSTER_DIR=${CLUSTER_DIR:-_output/cluster}
PIDFILE=_output/demo-operator.pid
LOG=_output/demo-operator.log

down() {
  if [[ -f $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    local pid
    pid=$(cat "$PIDFILE")
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    echo "operator stopped"
  fi
  rm -f "$PIDFILE"
  "$BIN/agentfleet" dev cluster down --dir "$CLUSTER_DIR"
}

up() {
  "$BIN/agentfleet" dev cluster up --dir "$CLUSTER_DIR" --keda
  eval "$("$BIN/agentfleet" dev cluster env --dir "$CLUSTER_DIR")"
  kubectl apply --server-side -f crds/aiagents.agentfleet.io.yaml
  kubectl wait --for=condition=Established crd/aiagents.agentfleet.io --timeout=60s
  if [[ -f $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "operator already running (pid $(cat "$PIDFILE"))"
  else
    "$BIN/agentfleet" run --metrics-address 127.0.0.1 --metrics-port 0 --health-port 0 \
      --prometheus-address "$AGENTFLEET_PROMETHEUS_URL" >"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    echo "operator started (pid $!, log $LOG)"
  fi
  kubectl apply -f manifests/examples/
  echo "waiting for the fleet to become Ready ..."
  kubectl wait --for=condition=Ready aia --all -n ai-agents --timeout=300s >/dev/null
  kubectl get aia -n ai-agents
  echo
  kubectl get scaledobjects,hpa -n ai-agents
  cat <<MSG

The fleet is up. Try:
  eval "\$($BIN/agentfleet dev cluster env --dir $CLUSTER_DIR)"
  kubectl get aia -n ai-agents -o wide
  kubectl patch aia/coding -n ai-agents --type=merge -p '{"spec":{"autoscaling":{"minReplicas":7}}}'
  $BIN/agentfleet gpus                    # the VRAM ledger: per node and GPU
  kubectl get deploy,svc,pods -n ai-agents
Stop everything with: make demo-down
MSG
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
