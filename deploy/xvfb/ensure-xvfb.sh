#!/usr/bin/env bash
# Make Xvfb and xdotool available for the X input tests and the collector benchmark.
# Idempotent: does nothing when both are already on PATH. Needs root (or sudo) only to install.
set -euo pipefail

missing=()
command -v Xvfb >/dev/null 2>&1 || missing+=(xvfb)
command -v xdotool >/dev/null 2>&1 || missing+=(xdotool)

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-xvfb: ${missing[*]} missing and apt-get is not available; install them by hand" >&2
    exit 1
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo_cmd=(sudo -n)
    else
        echo "ensure-xvfb: ${missing[*]} missing and not running as root (no sudo)" >&2
        exit 1
    fi
fi

echo "ensure-xvfb: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
command -v Xvfb >/dev/null && command -v xdotool >/dev/null
