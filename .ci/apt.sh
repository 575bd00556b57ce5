# Sourced by .ci/run and tools/notebooks/install.sh (bash).
# apt_install PKG... installs the Debian packages that are not installed yet.
# When another apt or dpkg runs (an unattended upgrade, another job), it
# waits for it (up to 10 minutes) instead of failing on the lock.

# apt_locked: is a lock of apt or dpkg held by a process?
apt_locked() {
  local f
  for f in /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock; do
    [ -e "$f" ] || continue
    if [ -x /usr/bin/python3 ]; then
      # apt's locks are fcntl locks: try to take one without blocking.
      /usr/bin/python3 -c 'import fcntl, sys
f = open(sys.argv[1], "r+")
fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)' "$f" 2>/dev/null || return 0
    elif command -v fuser >/dev/null 2>&1; then
      fuser "$f" >/dev/null 2>&1 && return 0
    fi
  done
  return 1
}

apt_wait() {
  local waited=0
  while apt_locked; do
    if [ "$waited" -ge 600 ]; then
      echo "apt: another apt or dpkg still holds its lock after 600s" >&2
      return 1
    fi
    [ "$waited" -eq 0 ] && echo "apt: waiting for another apt or dpkg to finish"
    sleep 5
    waited=$((waited + 5))
  done
}

apt_install() {
  local need=() p
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
  done
  [ ${#need[@]} -eq 0 ] && return 0
  echo "apt: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  local opts=(-o DPkg::Lock::Timeout=600 -y -qq --no-install-recommends)
  apt_wait
  # The package lists may be missing or stale on a fresh machine.
  if ! apt-get "${opts[@]}" install "${need[@]}" >/dev/null 2>&1; then
    apt_wait
    apt-get -o DPkg::Lock::Timeout=600 -qq update
    apt_wait
    apt-get "${opts[@]}" install "${need[@]}" >/dev/null
  fi
}
