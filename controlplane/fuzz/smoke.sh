#!/usr/bin/env bash
# Fuzz smoke test of the control plane's targets: dataplane/fuzz/smoke.sh (same flags,
# same rules, same environment) pointed at this workspace. vm-testbed/test.sh runs it.
#
#   bash controlplane/fuzz/smoke.sh                        # every target, 20 s each
#   FUZZ_SECONDS=300 bash controlplane/fuzz/smoke.sh rest_bodies
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FUZZ_DIR="$here" exec bash "$here/../../dataplane/fuzz/smoke.sh" "$@"
