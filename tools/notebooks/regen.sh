#!/usr/bin/env bash
# Rebuilds examples/*.ipynb from tools/notebooks/src/, executes them and
# stores their normalised outputs (nb.py store: no gophernotes import
# warnings or stray values, no absolute paths), so that the committed
# notebooks show their outputs. Edit the sources, not the notebooks (CI
# checks that they agree, outputs included).
# Usage: tools/notebooks/regen.sh [NAME.KERNEL ...]   e.g. quickstart.gophernotes quickstart.gonb
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export PATH="$(go env GOPATH)/bin:$PATH"
"$here/install.sh"
cd "$root"
/usr/bin/python3 "$here/nb.py" build "$@"
mapfile -t nbs < <(/usr/bin/python3 "$here/nb.py" list "$@")
for nb in "${nbs[@]}"; do
  echo "== $nb"
  /usr/bin/python3 "$here/nb.py" run "$nb" "$nb"
  /usr/bin/python3 "$here/nb.py" store "$nb"
done
