#!/bin/sh
# One-shot: waits until Temporal answers its gRPC health check, then registers meshflow's
# namespace when it is missing (meshflow registers its search attributes itself).
set -eu
until temporal operator cluster health --address "$TEMPORAL_ADDRESS" | grep -q SERVING; do
  echo "waiting for Temporal at $TEMPORAL_ADDRESS"
  sleep 2
done
temporal operator namespace describe --address "$TEMPORAL_ADDRESS" -n "$TEMPORAL_NAMESPACE" >/dev/null 2>&1 ||
  temporal operator namespace create --address "$TEMPORAL_ADDRESS" -n "$TEMPORAL_NAMESPACE" --retention "$TEMPORAL_RETENTION"
echo "namespace $TEMPORAL_NAMESPACE is registered"
