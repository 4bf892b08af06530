#!/usr/bin/env sh
# Re-vendor the admin UI's front-end assets from the npm registry (`make vendor`).
# They are committed and served from the package: nothing is fetched from a CDN at run time.
set -eu
HTMX=2.0.11
PICO=2.1.1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "htmx.org@$HTMX" "@picocss/pico@$PICO" >/dev/null
tar xzf "htmx.org-$HTMX.tgz" && cp package/dist/htmx.min.js "$here/htmx-$HTMX.min.js"
cp package/LICENSE "$here/htmx-LICENSE" && rm -rf package
tar xzf "picocss-pico-$PICO.tgz" && cp package/css/pico.min.css "$here/pico-$PICO.min.css"
cp package/LICENSE.md "$here/pico-LICENSE.md"
echo "vendored htmx $HTMX and Pico CSS $PICO into $here"
