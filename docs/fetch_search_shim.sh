#!/usr/bin/env bash
# Fetch the iframe-worker shim (MIT, npm) that lets the search of the Material theme run from
# file:// pages, into docs/assets/generated/ (not committed). Without it the built site still
# works, but search needs the site served over HTTP. Needs npm and the npm registry.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p assets/generated
scratch=$(mktemp -d)
(cd "$scratch" && npm pack --silent iframe-worker@1.0.4 > /dev/null && tar xzf iframe-worker-1.0.4.tgz)
cp "$scratch/package/shim/index.js" assets/generated/iframe-worker-shim.js
cp "$scratch/package/LICENSE" assets/generated/iframe-worker-LICENSE.txt
rm -rf "$scratch"
echo "wrote docs/assets/generated/iframe-worker-shim.js"
