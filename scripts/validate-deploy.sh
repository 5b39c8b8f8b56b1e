#!/usr/bin/env bash
# Validates what deploy/ ships: every Kubernetes manifest (and `tollgate inject`'s output on a
# sample workload) against the Kubernetes 1.29 schemas with kubernetes-validate (strict: no
# unknown field), each kustomization's resources present, and checkov's Kubernetes and
# Dockerfile checks on deploy/ with no failed check (a skipped one carries its reason in the
# manifest). Needs the built binary (TOLLGATE_BINARY, default .build/debug/tollgate).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${TOLLGATE_BINARY:-.build/debug/tollgate}
if ! python3 -c "import kubernetes_validate" 2>/dev/null || ! command -v checkov >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check "kubernetes-validate>=1.29,<2" "checkov>=3.2,<4"
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

manifests=()
while IFS= read -r file; do manifests+=("$file"); done < <(find deploy/kubernetes -name '*.yaml' ! -name kustomization.yaml | sort)
"$BIN" inject Tests/Interop/kubernetes/plain-app.yaml >"$WORK/injected.yaml"
kubernetes-validate --strict --kubernetes-version 1.29.0 --quiet "${manifests[@]}" "$WORK/injected.yaml"
echo "kubernetes-validate: ${#manifests[@]} manifests and the injected sample conform to Kubernetes 1.29"

for kustomization in $(find deploy/kubernetes -name kustomization.yaml); do
    dir=$(dirname "$kustomization")
    for resource in $(sed -n 's/^  - \(.*\.yaml\)$/\1/p' "$kustomization"); do
        [ -f "$dir/$resource" ] || { echo "$kustomization names $resource, which is missing" >&2; exit 1; }
    done
    listed=$(sed -n 's/^  - \(.*\.yaml\)$/\1/p' "$kustomization" | sort)
    present=$(cd "$dir" && ls *.yaml | grep -v '^kustomization.yaml$' | sort)
    [ "$listed" = "$present" ] || { echo "$kustomization does not list every manifest beside it" >&2; exit 1; }
done
echo "kustomizations: every resource listed and present"

checkov -d deploy --framework kubernetes dockerfile --compact --quiet --skip-download >"$WORK/checkov.txt" 2>"$WORK/checkov.err" || {
    cat "$WORK/checkov.txt"
    exit 1
}
grep -E "scan results|Passed checks" "$WORK/checkov.txt"
if grep -q "Failed checks: [1-9]" "$WORK/checkov.txt"; then cat "$WORK/checkov.txt"; exit 1; fi
