#!/usr/bin/env bash
# Rebuilds examples/*.ipynb from tools/notebooks/src/ and executes them in
# place, so that the committed notebooks show their outputs. Edit the sources,
# not the notebooks (CI checks that they agree).
# Usage: tools/notebooks/regen.sh [NAME.KERNEL ...]   e.g. quickstart.gophernotes quickstart.gonb
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
"$here/install.sh"
cd "$root"
/usr/bin/python3 "$here/nb.py" build "$@"
mapfile -t nbs < <(/usr/bin/python3 "$here/nb.py" list "$@")
for nb in "${nbs[@]}"; do
  echo "== $nb"
  # gophernotes prints gomacro's progress on its stdout: keep it out of sight.
  /usr/bin/jupyter nbconvert --to notebook --execute --inplace \
    --ExecutePreprocessor.timeout=900 "$nb" >/dev/null
done
