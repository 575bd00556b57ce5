#!/usr/bin/env bash
# Installs what the example notebooks (examples/*.ipynb) need, on a fresh
# Debian machine or again on a set-up one (a second run only checks):
#
#   * Debian's headless Jupyter (jupyter nbconvert / jupyter execute) and gcc
#     (gophernotes builds every import as a Go plugin, which needs cgo);
#   * the project's modules (`go mod download`), also copied into a module
#     cache of the kernel's own, from which it resolves imports offline;
#   * gophernotes v0.7.5, patched (tools/gophernotes/jsoner.patch) and built
#     with the versions pinned in tools/gophernotes/go.mod, into
#     $(go env GOPATH)/bin, with its Jupyter kernel "gophernotes";
#   * GoNB and goimports, pinned in tools/gonb/go.mod, into the same
#     directory, with the Jupyter kernel "gonb" (examples/gonb/*.ipynb), and
#     the modules those notebooks build with (the project's and gonbui's) in
#     the module cache, from which that kernel resolves them offline.
#
# Kernels go to ${JUPYTER_DATA_DIR:-~/.local/share/jupyter}/kernels.
# Usage: tools/notebooks/install.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export PATH="/usr/local/go/bin:$PATH"
gopath=$(go env GOPATH)
bin="$gopath/bin"
modcache=$(go env GOMODCACHE)
kernels="${JUPYTER_DATA_DIR:-$HOME/.local/share/jupyter}/kernels"
nbcache="${XDG_CACHE_HOME:-$HOME/.cache}/gopeft-notebooks/gomodcache"
export PATH="$bin:$PATH"
# Never let the go command fetch another toolchain.
export GOTOOLCHAIN=local

t0=$SECONDS
step() { printf '[notebooks/install %3ds] %s\n' "$((SECONDS - t0))" "$*"; }
# Runs a command, showing its output only if it fails.
quiet() {
  local out
  if ! out=$("$@" 2>&1); then
    printf '%s\n' "$out" >&2
    return 1
  fi
}

# --- Debian packages -------------------------------------------------------
# apt_install (.ci/apt.sh) waits for another apt or dpkg instead of failing.
. "$root/.ci/apt.sh"
need=(jupyter-nbconvert gcc libc6-dev)
if [ "${GOPEFT_JUPYTER_NOTEBOOK:-0}" = 1 ]; then
  # Optional: the classic notebook server, to open the notebooks interactively.
  need+=(jupyter-notebook)
fi
step "Debian packages: ${need[*]}"
apt_install "${need[@]}"

# --- The project's modules, for gophernotes' offline GOPROXY ---------------
# gomacro imports a package by running `go get <path>` (no version: @latest)
# in a throw-away module. Against the whole module cache, "latest" can be a
# version some other module left there as a bare .mod file, which then fails
# to build. So the kernel gets a module cache of its own holding exactly the
# project's module graph: there @latest is the version the project selects.
# It is filled from the main cache (offline), falling back to the proxy.
step "go mod download (project, and the kernel's module cache $nbcache)"
(cd "$root" && go mod download)
(cd "$root" && GOMODCACHE="$nbcache" GOFLAGS=-modcacherw \
   GOPROXY="file://$modcache/cache/download,$(go env GOPROXY)" go mod download)

# Packages linked into both the kernel and the plugins it builds must have one
# version, or every notebook import fails with "plugin was built with a
# different version of package golang.org/x/sync/errgroup".
want_sync=$(cd "$here/../gophernotes" && go list -m -f '{{.Version}}' golang.org/x/sync)
have_sync=$(cd "$root" && go list -m -f '{{.Version}}' golang.org/x/sync)
if [ "$want_sync" != "$have_sync" ]; then
  echo "golang.org/x/sync is $have_sync in go.mod but $want_sync in tools/gophernotes/go.mod: make them equal" >&2
  exit 1
fi

# Rebuild a tool only when its inputs (pinned versions, patch, Go version)
# changed. $1: stamp name; the rest: input files.
stamp_ok() {
  local name=$1; shift
  local want
  want=$( { go version; cat "$@"; } | sha256sum | cut -d' ' -f1)
  STAMP_FILE="$bin/.gopeft-$name.stamp"
  STAMP_WANT=$want
  [ -f "$STAMP_FILE" ] && [ "$(cat "$STAMP_FILE")" = "$want" ]
}

# --- gophernotes -----------------------------------------------------------
gn="$here/../gophernotes"
if [ -x "$bin/gophernotes" ] && stamp_ok gophernotes "$gn/go.mod" "$gn/go.sum" "$gn/jsoner.patch"; then
  step "gophernotes is up to date ($bin/gophernotes)"
else
  stamp_ok gophernotes "$gn/go.mod" "$gn/go.sum" "$gn/jsoner.patch" || true
  step "building gophernotes (patched v0.7.5)"
  # The pristine v0.7.5 source, verified against the checksum database.
  src=$(cd / && go mod download -json github.com/gopherdata/gophernotes@v0.7.5 |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$src" ] || { echo "gophernotes v0.7.5 not downloaded" >&2; exit 1; }
  rm -rf "$gn/_patched"
  cp -r "$src" "$gn/_patched"
  chmod -R u+w "$gn/_patched"
  patch -s -d "$gn/_patched" -p1 <"$gn/jsoner.patch"
  (cd "$gn" && GOBIN="$bin" go install github.com/gopherdata/gophernotes)
  rm -rf "$gn/_patched"
  echo "$STAMP_WANT" >"$STAMP_FILE"
fi

# Kernel spec (gophernotes has no installer). The kernel's env makes gomacro's
# `go get` resolve every import from $nbcache, offline and at the project's
# versions; the project itself is not published, and its `go get` must fail
# as "not found" (which the file proxy says) for gomacro's `replace` to take
# over. GOSUMDB=off: the checksum database is not reachable offline.
mkdir -p "$kernels/gophernotes"
cat >"$kernels/gophernotes/kernel.json" <<EOF
{
  "argv": ["$bin/gophernotes", "{connection_file}"],
  "display_name": "Go (gophernotes)",
  "language": "go",
  "name": "gophernotes",
  "env": {
    "GOPROXY": "file://$nbcache/cache/download",
    "GOSUMDB": "off",
    "GOTOOLCHAIN": "local"
  }
}
EOF
step "kernel gophernotes -> $kernels/gophernotes/kernel.json"

# --- GoNB ------------------------------------------------------------------
# Rebuilt only when tools/gonb/go.mod or go.sum (or Go) changed. `go install
# tool` builds exactly the pinned versions (`go install gonb@v0.11.4` would
# ask the proxy for a version list, which it refuses here).
gb="$here/../gonb"
if [ -x "$bin/gonb" ] && [ -x "$bin/goimports" ] && stamp_ok gonb "$gb/go.mod" "$gb/go.sum"; then
  step "gonb and goimports are up to date ($bin)"
else
  stamp_ok gonb "$gb/go.mod" "$gb/go.sum" || true
  step "building gonb and goimports (tools/gonb)"
  (cd "$gb" && GOBIN="$bin" go install tool)
  echo "$STAMP_WANT" >"$STAMP_FILE"
fi
gonb_version=$(cd "$gb" && go list -m -f '{{.Version}}' github.com/janpfeifer/gonb)
for src in "$here"/src/*.gonb.txt; do
  [ -e "$src" ] || continue
  grep -q "github.com/janpfeifer/gonb@$gonb_version" "$src" || {
    echo "$src does not pin github.com/janpfeifer/gonb@$gonb_version (tools/gonb/go.mod): make them equal" >&2
    exit 1
  }
done

# A GoNB notebook builds in a module of its own, whose go.work uses this
# checkout and which requires gonb (for gonbui's inline pictures; see the
# notebooks' first cell). That module graph, the project's and gonb's
# together, selects versions that neither go.mod lists. rehearse PROXY SUMDB
# goes through the same steps in a scratch module and tells whether they
# succeed: first offline, as the kernel will run, and if that fails with the
# proxy at hand, which downloads what was missing into the module cache.
rehearse() {
  local dir rc=0
  dir=$(mktemp -d)
  (
    cd "$dir" &&
      export GOPROXY="$1" GOSUMDB="$2" &&
      go mod init gonb_rehearsal &&
      go work init &&
      go work use . "$root" &&
      go get "github.com/janpfeifer/gonb@$gonb_version" &&
      printf 'package main\n\nimport _ "github.com/janpfeifer/gonb/gonbui"\n\nfunc main() {}\n' >main.go &&
      go get && # what GoNB runs before every cell
      go list -deps . github.com/gopeft/gopeft/... >/dev/null
  ) || rc=$?
  rm -rf "$dir"
  return "$rc"
}
if rehearse "file://$modcache/cache/download" off >/dev/null 2>&1; then
  step "the GoNB notebooks' modules are in the module cache"
else
  step "downloading the GoNB notebooks' modules (project + gonb $gonb_version)"
  quiet rehearse "file://$modcache/cache/download,$(go env GOPROXY)" "$(go env GOSUMDB)"
fi

# The kernel spec is written by gonb itself (-force_deps: gopls, used only
# for autocompletion, is not installed; -raw_error: plain-text compile errors;
# its log file is /dev/null) and then given an environment like gophernotes':
# the module cache as an offline GOPROXY, no checksum database, the local Go,
# and a PATH with go and goimports, which GoNB runs for every cell (Jupyter
# fills in ${PATH} when it starts the kernel).
gonb -install -force_deps -raw_error -logtostderr=false -log_file=/dev/null
KERNEL_JSON="$kernels/gonb/kernel.json" KERNEL_PATH="$bin:$(dirname "$(command -v go)"):\${PATH}" \
KERNEL_GOPROXY="file://$modcache/cache/download" /usr/bin/python3 -c '
import json, os
path = os.environ["KERNEL_JSON"]
with open(path) as f:
    spec = json.load(f)
spec["env"] = {
    "PATH": os.environ["KERNEL_PATH"],
    "GOPROXY": os.environ["KERNEL_GOPROXY"],
    "GOSUMDB": "off",
    "GOTOOLCHAIN": "local",
}
with open(path, "w") as f:
    json.dump(spec, f, indent=1)
    f.write("\n")
'
step "kernel gonb -> $kernels/gonb/kernel.json"

step "done"
