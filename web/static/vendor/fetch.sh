#!/usr/bin/env sh
# Re-vendor the front-end assets from the npm registry (`make vendor`): HTMX and Pico CSS for
# the admin UI, Swagger UI and ReDoc for /docs/ and /redoc/ (web/docs.py names the versions).
# They are committed and served from the package: nothing is fetched from a CDN at run time,
# so every page works on a network without internet access. Each licence is kept beside its
# files; the bundles' own LICENSE.txt lists what they bundle.
set -eu
HTMX=2.0.11
PICO=2.1.1
SWAGGER_UI=5.35.0
REDOC=2.5.4
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "htmx.org@$HTMX" "@picocss/pico@$PICO" \
    "swagger-ui-dist@$SWAGGER_UI" "redoc@$REDOC" >/dev/null
tar xzf "htmx.org-$HTMX.tgz" && cp package/dist/htmx.min.js "$here/htmx-$HTMX.min.js"
cp package/LICENSE "$here/htmx-LICENSE" && rm -rf package
tar xzf "picocss-pico-$PICO.tgz" && cp package/css/pico.min.css "$here/pico-$PICO.min.css"
cp package/LICENSE.md "$here/pico-LICENSE.md" && rm -rf package
tar xzf "swagger-ui-dist-$SWAGGER_UI.tgz"
cp package/swagger-ui-bundle.js "$here/swagger-ui-bundle-$SWAGGER_UI.js"
cp package/swagger-ui-bundle.js.LICENSE.txt "$here/swagger-ui-bundle-$SWAGGER_UI.js.LICENSE.txt"
cp package/swagger-ui.css "$here/swagger-ui-$SWAGGER_UI.css"
cp package/favicon-32x32.png "$here/swagger-ui-favicon-32x32.png"
cp package/LICENSE "$here/swagger-ui-LICENSE" && cp package/NOTICE "$here/swagger-ui-NOTICE"
rm -rf package
tar xzf "redoc-$REDOC.tgz"
cp package/bundles/redoc.standalone.js "$here/redoc-$REDOC.standalone.js"
cp package/bundles/redoc.standalone.js.LICENSE.txt "$here/redoc-$REDOC.standalone.js.LICENSE.txt"
cp package/LICENSE "$here/redoc-LICENSE" && rm -rf package
echo "vendored htmx $HTMX, Pico CSS $PICO, Swagger UI $SWAGGER_UI and ReDoc $REDOC into $here"
