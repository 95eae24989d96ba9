#!/usr/bin/env bash
# A report page as a person sees it: headless Chromium renders REPORT.html to OUT.png (the top
# WIDTHxHEIGHT pixels). Needs Debian's chromium (`apt-get install chromium`); nothing is fetched:
# the page is self-contained and Chromium's background networking is off.
# Usage: scripts/screenshot.sh docs/experiment/report.html docs/report-screenshot.png [1200] [2400]
set -euo pipefail
page=${1:?usage: scripts/screenshot.sh REPORT.html OUT.png [WIDTH] [HEIGHT]}
out=${2:?usage: scripts/screenshot.sh REPORT.html OUT.png [WIDTH] [HEIGHT]}
width=${3:-1200}
height=${4:-2400}
[ -f "$page" ] || { echo "error: $page not found" >&2; exit 2; }
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "error: no chromium on PATH (Debian: apt-get install chromium)" >&2; exit 2; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --hide-scrollbars \
  --disable-background-networking --disable-component-update --disable-sync --user-data-dir="$profile" \
  --window-size="$width,$height" --screenshot="$(realpath -m "$out")" "file://$(realpath "$page")" 2>/dev/null
echo "wrote $out"
