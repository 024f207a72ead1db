#!/usr/bin/env bash
# Installs the system packages the build needs, and only those that are missing.
#
# Called by `make deps`, by the first `make` in a build folder, by .ci/run and by the
# Dockerfile, so that one script is exercised by every CI run. Looks first at what is already
# there (the GPU machine has the headers but no package registry): a header found on the
# include path counts as installed, whatever put it there. As root it runs apt-get; otherwise
# it prints the exact command to run and fails.
set -euo pipefail

# package  header-or-command-that-proves-it-is-there
needed=(
  "libfmt-dev:fmt/format.h"
  "doctest-dev:doctest/doctest.h"
  "nlohmann-json3-dev:nlohmann/json.hpp"
  "zlib1g-dev:zlib.h"
  "gnuplot-nox:cmd:gnuplot"
)

have_header() {
  local header=$1
  for dir in /usr/include /usr/local/include $(echo "${CPATH:-}" | tr : " "); do
    [ -f "$dir/$header" ] && return 0
  done
  return 1
}

missing=()
optional_missing=()
for entry in "${needed[@]}"; do
  package=${entry%%:*}
  probe=${entry#*:}
  if [[ $probe == cmd:* ]]; then
    # Tools used by `make plots` only: missing ones are installed when possible, never fatal.
    command -v "${probe#cmd:}" >/dev/null 2>&1 || optional_missing+=("$package")
  else
    have_header "$probe" || missing+=("$package")
  fi
done

all_missing=("${missing[@]}" "${optional_missing[@]}")
[ ${#all_missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: installing ${all_missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if apt-get update -qq && apt-get install -y -qq --no-install-recommends "${all_missing[@]}"; then
    exit 0
  fi
  echo "install-deps: apt-get could not install ${all_missing[*]}" >&2
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "install-deps: optional ${optional_missing[*]} not installed (plots will be skipped);" \
     "run: sudo apt-get install -y ${optional_missing[*]}" >&2
exit 0
