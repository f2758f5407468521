#!/usr/bin/env bash
# Runs the whole JobCore test suite. Installs what the tests need when it is missing
# (qemu-img/qemu-io from qemu-utils, qemu-system-x86 as the reference QMP peer, socat),
# then builds and runs `dotnet test` with a TRX log per test project in .ci-results/.
set -uo pipefail
cd "$(dirname "$0")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

need=()
command -v qemu-img >/dev/null 2>&1 || need+=(qemu-utils)
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
command -v socat >/dev/null 2>&1 || need+=(socat)
if [ ${#need[@]} -gt 0 ]; then
  echo "test.sh: installing ${need[*]}"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null \
    || { echo "test.sh: could not install ${need[*]} (the interop tests need them)"; exit 1; }
fi

RES="$PWD/.ci-results"; rm -rf "$RES"; mkdir -p "$RES"
if ! dotnet build JobCore.sln -c Release -nologo -clp:ErrorsOnly; then
  echo "test.sh: build failed"; exit 1
fi
dotnet test JobCore.sln -c Release --no-build --logger "trx;LogFilePrefix=tests" --results-directory "$RES" "$@" 2>&1 | tee "$RES/console.log"
exit "${PIPESTATUS[0]}"
