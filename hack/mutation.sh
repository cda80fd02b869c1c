#!/usr/bin/env bash
# Mutation testing of the decision core (detection, fencing, planner, reconcile) against the unit
# tests, with mutmut, then its score. Run by `make mutation`; MUTATION_JOBS sets the processes.
#
# mutmut names a mutant after its file's path and only knows the ./, src/ and source/ layouts, so
# the run happens in .mutation/, a copy laid out as src/kvha (cp -p keeps mtimes: mutmut reuses
# the results of unchanged functions from the previous run in .mutation/mutants/).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv-mutation}"
JOBS="${MUTATION_JOBS:-1}"
STAGE=.mutation

rm -rf "$STAGE/src" "$STAGE/tests"
mkdir -p "$STAGE/src" "$STAGE/tests"
cp -Rp operator/kvha "$STAGE/src/kvha"
cp -Rp tests/unit tests/conftest.py tests/placement_reference.py "$STAGE/tests/"
find "$STAGE/src" "$STAGE/tests" -name __pycache__ -prune -exec rm -rf {} +
{
    cat pyproject.toml
    cat <<'TOML'

[tool.mutmut]
source_paths = ["src/kvha"]
only_mutate = [
    "src/kvha/detection/*",
    "src/kvha/fencing/*",
    "src/kvha/planner/*",
    "src/kvha/reconcile/*",
]
# The chart's, the CRDs' and the testbed's unit tests exercise none of the core (and read files outside it).
pytest_add_cli_args_test_selection = ["tests/unit", "--ignore=tests/unit/install", "--ignore=tests/unit/testbed", "--ignore=tests/unit/test_crds.py"]
TOML
} > "$STAGE/pyproject.toml.new"
# Rewritten only when it changed: mutmut drops its cached results when its configuration changes.
cmp -s "$STAGE/pyproject.toml.new" "$STAGE/pyproject.toml" || mv "$STAGE/pyproject.toml.new" "$STAGE/pyproject.toml"
rm -f "$STAGE/pyproject.toml.new"

cd "$STAGE"
# mutmut exits non-zero when mutants survive; the score below is the result, not the exit code.
# A run that could not even collect the tests scores nothing: that is a failure.
"../$VENV/bin/mutmut" run --max-children "$JOBS" "$@" 2>&1 | tee mutmut.log || true
if grep -q "Failed to collect list of tests" mutmut.log; then
    echo "mutmut could not collect the unit tests (see above)" >&2
    exit 1
fi
"../$VENV/bin/mutmut" export-cicd-stats
exec "../$VENV/bin/python" ../hack/mutation_score.py mutants
