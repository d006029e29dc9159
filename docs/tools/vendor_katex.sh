#!/usr/bin/env bash
# Re-vendor KaTeX into docs/src/javascripts/katex/ from the npm registry, so that the site
# typesets math with no network: the script, the stylesheet, its woff2 fonts and the licence.
# Only woff2 fonts are kept: the stylesheet lists woff2 first and every browser KaTeX supports
# reads it, so the woff/ttf fallbacks are never fetched. Usage: docs/tools/vendor_katex.sh [VERSION]
set -euo pipefail
version=${1:-0.19.1}
dest="$(cd "$(dirname "$0")/.." && pwd)/src/javascripts/katex"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "katex@$version" >/dev/null && tar xzf katex-*.tgz)
rm -rf "$dest"
mkdir -p "$dest/fonts"
cp "$tmp/package/dist/katex.min.js" "$tmp/package/dist/katex.min.css" "$dest/"
cp "$tmp/package/dist/fonts/"*.woff2 "$dest/fonts/"
cp "$tmp/package/LICENSE" "$dest/LICENSE"
echo "$version" > "$dest/VERSION"
echo "KaTeX $version vendored into $dest"
