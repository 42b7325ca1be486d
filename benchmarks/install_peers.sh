#!/usr/bin/env bash
# Install the peer libraries that benchmarks/run_all.py compares batchrmt with into their own virtual
# environment (they are not dependencies of batchrmt). The venv reuses this interpreter's torch / numpy /
# scipy (--system-site-packages) and pins them with a constraints file, so every tool runs on the same
# torch build and pip cannot replace it.
#
#   bash benchmarks/install_peers.sh [VENV]        # default VENV: /tmp/batchrmt-peers
#
# Peers (exact PyPI names and the versions the benchmark was run with):
#   PyHessian==0.1                 (Yao et al.; power iteration, trace, SLQ density)
#   curvlinops-for-pytorch==3.0.1  (Dangel et al.; linear operators for scipy)
#   hessian-eigenthings==1.0.0a5   (Golmant et al.; only pre-releases on PyPI, hence the == pin)
# The outcome of every install (ok / why it failed) is written to VENV/peers-install.json, which
# run_all.py copies into its results; a peer that failed to install is reported as skipped there.
set -u
VENV="${1:-/tmp/batchrmt-peers}"
PYTHON="${PYTHON:-python}"
PEERS=("PyHessian==0.1" "curvlinops-for-pytorch==3.0.1" "hessian-eigenthings==1.0.0a5")

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv --system-site-packages "$VENV" || exit 1
fi
"$VENV/bin/python" - >"$VENV/base-constraints.txt" <<'PY'
import numpy, scipy, torch
print(f"torch=={torch.__version__}\nnumpy=={numpy.__version__}\nscipy=={scipy.__version__}")
PY
status=()
for spec in "${PEERS[@]}"; do
  name="${spec%%==*}"
  log="$VENV/install-$name.log"
  if "$VENV/bin/pip" install -c "$VENV/base-constraints.txt" "$spec" >"$log" 2>&1; then
    status+=("\"$name\": {\"spec\": \"$spec\", \"status\": \"ok\"}")
  else
    why=$(tail -n 3 "$log" | tr '"\n\\' "'  ")
    status+=("\"$name\": {\"spec\": \"$spec\", \"status\": \"failed: $why\"}")
  fi
done
joined=$(IFS=,; echo "${status[*]}")
echo "{${joined}, \"venv\": \"$VENV\", \"date_utc\": \"$(date -u +%FT%TZ)\"}" >"$VENV/peers-install.json"
cat "$VENV/peers-install.json"
"$VENV/bin/pip" check 2>&1 | grep -Ei "pyhessian|curvlinops|eigenthings|backpack|einconv|linear.operator" || true
