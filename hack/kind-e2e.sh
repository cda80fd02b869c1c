#!/usr/bin/env bash
# End-to-end demo on a real cluster: kind + KubeVirt + kvha installed with its Helm chart.
#
#   NOT RUN IN CI. It needs Docker, kind, kubectl and helm on PATH, about 8 GiB of free memory and
#   a network connection (KubeVirt manifests and images). The CI machine has none of these; the
#   testbed (real control plane, simulated kubelets and KubeVirt) covers the same paths there.
#   `KVHA_E2E=1 pytest -m e2e tests/e2e` runs this script from pytest.
#
# Steps: create the kind cluster (kind-config.yaml: 1 control plane, 3 workers), install a pinned
# KubeVirt release with software emulation (kind nodes have no nested virtualisation), build the
# kvha image and load it into the nodes, helm install the chart with an HAPolicy, start VMs,
# `docker stop` the worker running most of them, confirm the fencing as an operator would (the
# default fencing waits for the kvha.io/fence-confirmed annotation), watch the NodeFailover, and
# check that every VM runs again on another worker.
#
# Environment: CLUSTER (kvha-e2e), KIND_NODE_IMAGE, KUBEVIRT_VERSION, VMS (number of VMs, 6),
# KEEP_CLUSTER=1 to leave the cluster running afterwards (default: delete it on exit).
set -euo pipefail

cd "$(dirname "$0")/.."

CLUSTER="${CLUSTER:-kvha-e2e}"
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-kindest/node:v1.33.1}"
KUBEVIRT_VERSION="${KUBEVIRT_VERSION:-v1.7.1}"
CONTAINER_DISK="${CONTAINER_DISK:-quay.io/kubevirt/cirros-container-disk-demo:${KUBEVIRT_VERSION}}"
IMAGE_REPOSITORY="${IMAGE_REPOSITORY:-ghcr.io/kvha/kvha}"
IMAGE_TAG="${IMAGE_TAG:-e2e}"
VMS="${VMS:-6}"
NAMESPACE=kvha-system
VM_NAMESPACE=kvha-e2e
WORKDIR="$(mktemp -d)"
WATCH_PID=""

log() { printf '\n\033[1m[kind-e2e %s] %s\033[0m\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '[kind-e2e] FAILED: %s\n' "$*" >&2; exit 1; }

cleanup() {
  local status=$?
  if [[ -n "$WATCH_PID" ]]; then kill "$WATCH_PID" 2>/dev/null || true; fi
  rm -rf "$WORKDIR"
  if [[ $status -ne 0 ]]; then
    printf '\n[kind-e2e] failed (exit %s); state for debugging:\n' "$status" >&2
    kubectl get nodes,nodefailovers,hapolicies 2>/dev/null || true
    kubectl -n "$VM_NAMESPACE" get vm,vmi -o wide 2>/dev/null || true
    kubectl -n "$NAMESPACE" logs -l app.kubernetes.io/name=kvha --tail=50 --prefix 2>/dev/null || true
  fi
  if [[ "${KEEP_CLUSTER:-0}" != 1 ]]; then
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  else
    printf '[kind-e2e] cluster %s kept (KEEP_CLUSTER=1); delete it with: kind delete cluster --name %s\n' \
      "$CLUSTER" "$CLUSTER"
  fi
  exit "$status"
}
trap cleanup EXIT

# Poll a command until it prints the expected value: wait_for <what> <timeout-s> <expected> <cmd...>
wait_for() {
  local what=$1 timeout=$2 expected=$3 got=""
  shift 3
  local deadline=$((SECONDS + timeout))
  while ((SECONDS < deadline)); do
    got="$("$@" 2>/dev/null || true)"
    [[ "$got" == "$expected" ]] && return 0
    sleep 5
  done
  die "timed out after ${timeout}s waiting for ${what} (last: '${got}')"
}

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || die "$tool is not on PATH"
done
docker info >/dev/null 2>&1 || die "docker is not running (or this user may not use it)"

log "1/8 kind cluster ${CLUSTER} (${KIND_NODE_IMAGE})"
if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --config kind-config.yaml --image "$KIND_NODE_IMAGE" --wait 5m
fi
kubectl config use-context "kind-${CLUSTER}"
kubectl wait node --all --for=condition=Ready --timeout=5m

log "2/8 KubeVirt ${KUBEVIRT_VERSION} with software emulation"
KUBEVIRT_RELEASE="https://github.com/kubevirt/kubevirt/releases/download/${KUBEVIRT_VERSION}"
kubectl apply -f "${KUBEVIRT_RELEASE}/kubevirt-operator.yaml"
kubectl apply -f "${KUBEVIRT_RELEASE}/kubevirt-cr.yaml"
kubectl -n kubevirt patch kubevirt kubevirt --type=merge \
  -p '{"spec":{"configuration":{"developerConfiguration":{"useEmulation":true}}}}'
kubectl -n kubevirt wait kv kubevirt --for=condition=Available --timeout=20m

log "3/8 kvha image ${IMAGE_REPOSITORY}:${IMAGE_TAG}"
docker build -t "${IMAGE_REPOSITORY}:${IMAGE_TAG}" .
kind load docker-image "${IMAGE_REPOSITORY}:${IMAGE_TAG}" --name "$CLUSTER"

log "4/8 helm install (chart CRDs, RBAC, 2 replicas, an HAPolicy for VMs labelled ha=true)"
cat >"$WORKDIR/values.yaml" <<EOF
image:
  repository: ${IMAGE_REPOSITORY}
  tag: ${IMAGE_TAG}
  pullPolicy: Never
defaultPolicy:
  enabled: true
  name: e2e
  spec:
    vmSelector:
      matchLabels:
        ha: "true"
    detection:
      unhealthyConditions:
        - {type: Ready, status: "Unknown", duration: 15s}
        - {type: Ready, status: "False", duration: 15s}
      leaseStaleAfter: 30s
    admissionControl:
      hostFailuresToTolerate: 1
EOF
helm upgrade --install kvha charts/kvha --namespace "$NAMESPACE" --create-namespace \
  --values "$WORKDIR/values.yaml" --wait --timeout 5m
kubectl -n "$NAMESPACE" rollout status deployment/kvha --timeout=5m
wait_for "a kvha leader" 120 true \
  bash -c "kubectl -n $NAMESPACE get lease kvha-leader -o jsonpath='{.spec.holderIdentity}' | grep -q . && echo true"
wait_for "HAPolicy e2e to be Ready" 120 True \
  kubectl get hapolicy e2e -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'

log "5/8 ${VMS} VMs labelled ha=true"
kubectl create namespace "$VM_NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -
for i in $(seq 1 "$VMS"); do
  kubectl apply -f - <<EOF
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: vm-${i}
  namespace: ${VM_NAMESPACE}
  labels:
    ha: "true"
spec:
  runStrategy: Always
  template:
    metadata:
      labels:
        kvha-e2e/vm: vm-${i}
    spec:
      domain:
        devices:
          disks:
            - name: root
              disk: {bus: virtio}
        resources:
          requests:
            memory: 128Mi
      terminationGracePeriodSeconds: 0
      volumes:
        - name: root
          containerDisk:
            image: ${CONTAINER_DISK}
EOF
done
kubectl -n "$VM_NAMESPACE" wait vmi --all --for=condition=Ready --timeout=10m
kubectl -n "$VM_NAMESPACE" get vmi -o wide

log "6/8 stop the worker running most VMs"
VICTIM="$(kubectl -n "$VM_NAMESPACE" get vmi -o jsonpath='{range .items[*]}{.status.nodeName}{"\n"}{end}' \
  | sort | uniq -c | sort -rn | awk 'NR==1 {print $2}')"
[[ -n "$VICTIM" ]] || die "no VMI reports a node"
MOVED="$(kubectl -n "$VM_NAMESPACE" get vmi -o jsonpath="{range .items[?(@.status.nodeName==\"${VICTIM}\")]}{.metadata.name}{\" \"}{end}")"
echo "worker ${VICTIM} runs: ${MOVED}"
kubectl get nodefailovers -w &
WATCH_PID=$!
docker stop "$VICTIM"

log "7/8 confirm fencing: the node's container is stopped, i.e. powered off"
# The default HAPolicy fencing (OutOfServiceTaint, confirmation Manual) restarts nothing until a
# human or an out-of-band agent says the node is off. That is what this annotation says; its value
# names the incident it confirms, so it can never confirm a later one.
wait_for "a NodeFailover for ${VICTIM}" 300 "$VICTIM" \
  kubectl get nodefailovers -o "jsonpath={.items[?(@.spec.nodeName==\"${VICTIM}\")].spec.nodeName}"
INCIDENT="$(kubectl get nodefailovers -o "jsonpath={.items[?(@.spec.nodeName==\"${VICTIM}\")].metadata.name}")"
kubectl annotate node "$VICTIM" "kvha.io/fence-confirmed=${INCIDENT}" --overwrite
wait_for "the NodeFailover of ${VICTIM} to complete" 900 Completed \
  kubectl get nodefailovers -o "jsonpath={.items[?(@.spec.nodeName==\"${VICTIM}\")].status.phase}"
kill "$WATCH_PID" 2>/dev/null || true
WATCH_PID=""

log "8/8 every VM runs again, none on ${VICTIM}"
kubectl -n "$VM_NAMESPACE" wait vmi --all --for=condition=Ready --timeout=10m
kubectl -n "$VM_NAMESPACE" get vmi -o wide
kubectl get nodefailovers -o wide
RUNNING="$(kubectl -n "$VM_NAMESPACE" get vmi -o jsonpath='{range .items[?(@.status.phase=="Running")]}{.metadata.name}{"\n"}{end}' | wc -l)"
[[ "$RUNNING" -eq "$VMS" ]] || die "only ${RUNNING} of ${VMS} VMIs are Running"
ON_VICTIM="$(kubectl -n "$VM_NAMESPACE" get vmi -o jsonpath="{range .items[?(@.status.nodeName==\"${VICTIM}\")]}{.metadata.name}{\" \"}{end}")"
[[ -z "$ON_VICTIM" ]] || die "VMIs still on ${VICTIM}: ${ON_VICTIM}"
echo "kind-e2e: all ${VMS} VMs running; ${MOVED}moved off ${VICTIM}"
