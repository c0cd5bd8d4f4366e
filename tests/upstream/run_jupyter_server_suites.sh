#!/usr/bin/env bash
# jupyter_server's own kernel and session test suites, with memguard loaded and started in
# every server they start. They come from the PyPI sdist of the jupyter_server installed here
# (its tests are not in the wheel) and run against the installed jupyter_server.
#
#   bash tests/upstream/run_jupyter_server_suites.sh [pytest options]
#
# Needs: jupyter_server, jupyter-memguard and pytest-jupyter[server] installed (.[test]), and
# PyPI reachable. Work files go to build/upstream (or $MEMGUARD_UPSTREAM_DIR).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
HERE=$PWD/tests/upstream
VERSION=${JUPYTER_SERVER_VERSION:-$("$PYTHON" -c 'import jupyter_server; print(jupyter_server.__version__)')}
WORK=${MEMGUARD_UPSTREAM_DIR:-$PWD/build/upstream}/jupyter_server-$VERSION

if [ ! -d "$WORK/tests/services/kernels" ]; then
  echo "== fetching jupyter_server $VERSION's tests (its sdist from PyPI)"
  mkdir -p "$WORK" "$WORK.download"
  "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation \
    "jupyter_server==$VERSION" -d "$WORK.download" 2>/dev/null \
    || "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: \
      "jupyter_server==$VERSION" -d "$WORK.download"
  tar -xzf "$WORK.download/jupyter_server-$VERSION.tar.gz" -C "$WORK.download"
  rm -rf "$WORK/tests"
  cp -r "$WORK.download/jupyter_server-$VERSION/tests" "$WORK/tests"
  rm -rf "$WORK.download"
fi

# What the upstream tests need beyond memguard's own test extra (its `flaky` marks).
"$PYTHON" -c "import flaky" 2>/dev/null || "$PYTHON" -m pip install --quiet flaky

# The upstream pytest settings (warnings are errors), plus one ignore: tornado 6.6 deprecates
# HTTPServerRequest attributes that jupyter_server 2.21 still uses.
cat > "$WORK/pytest.ini" <<INI
[pytest]
xfail_strict = true
timeout = 100
timeout_method = thread
filterwarnings =
    error
    ignore:datetime.datetime.utc:DeprecationWarning
    module:add_callback_from_signal is deprecated:DeprecationWarning
    ignore::jupyter_server.utils.JupyterServerAuthWarning
    ignore:unclosed database in <sqlite3.Connection:ResourceWarning
    ignore::DeprecationWarning:tornado
    ignore:.*HTTPServerRequest.*:DeprecationWarning
INI

echo "== jupyter_server $VERSION: tests/services/kernels and tests/services/sessions, memguard on"
cd "$WORK"
PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m pytest -p memguard_everywhere \
  -p no:cacheprovider -q tests/services/kernels tests/services/sessions "$@"
