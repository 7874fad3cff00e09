#!/usr/bin/env bash
# Build the kubectl-mesh release archives and fill the krew manifest with their URIs and sha256.
#
#   scripts/release.sh VERSION                       # build what this machine can, then fill
#   scripts/release.sh VERSION --skip-build          # archives already in dist/ (CI runners)
#   DIST=dir MANIFEST=file scripts/release.sh ...    # other locations (the tests use this)
#
# Each platform's archive is dist/kubectl-mesh-<os>-<arch>.tar.gz holding the kubectl-mesh
# binary. A platform this machine cannot build (no rustup target or linker) must be built on
# its own runner and its archive put in dist/; the script stops if any archive is missing, so a
# manifest is never written with a stale checksum.
set -euo pipefail
version=${1:?usage: scripts/release.sh VERSION [--skip-build]}
version=${version#v}
skip_build=${2:-}
cd "$(dirname "$0")/.."
dist=${DIST:-dist}
manifest=${MANIFEST:-krew/mesh.yaml}
repo=https://github.com/kubectl-mesh/kubectl-mesh
mkdir -p "$dist"

declare -A targets=(
  [linux-amd64]=x86_64-unknown-linux-gnu
  [linux-arm64]=aarch64-unknown-linux-gnu
  [darwin-amd64]=x86_64-apple-darwin
  [darwin-arm64]=aarch64-apple-darwin
)
for platform in linux-amd64 linux-arm64 darwin-amd64 darwin-arm64; do
  archive="$dist/kubectl-mesh-$platform.tar.gz"
  if [ "$skip_build" != "--skip-build" ]; then
    target=${targets[$platform]}
    if rustup target list --installed 2>/dev/null | grep -qx "$target" &&
       cargo build --release --locked -p kubectl-mesh --target "$target"; then
      tar -czf "$archive" -C "target/$target/release" kubectl-mesh
    else
      echo "warning: cannot build $target here; build it on a $platform runner and put $archive in $dist/" >&2
    fi
  fi
  [ -f "$archive" ] || { echo "error: $archive is missing" >&2; exit 1; }
done

python3 - "$manifest" "$version" "$repo" "$dist" <<'PY'
import hashlib, re, sys
manifest, version, repo, dist = sys.argv[1:]
text = open(manifest).read()
text = re.sub(r"(?m)^(  version: ).*$", rf"\g<1>v{version}", text)
def platform(m):
    name = m.group(2)
    digest = hashlib.sha256(open(f"{dist}/kubectl-mesh-{name}.tar.gz", "rb").read()).hexdigest()
    return (f"{m.group(1)}{repo}/releases/download/v{version}/kubectl-mesh-{name}.tar.gz\n"
            f'    sha256: "{digest}"')
text = re.sub(r'(    uri: ).*kubectl-mesh-([a-z]+-[a-z0-9]+)\.tar\.gz\n    sha256: ".*"', platform, text)
open(manifest, "w").write(text)
PY
echo "krew manifest $manifest filled for v$version"
