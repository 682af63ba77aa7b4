#!/usr/bin/env bash
# Build the nsegaug image and run generate + preview on the example data, checking the outputs.
#
#   BASE_IMAGE=python:3.12-slim scripts/docker-smoke.sh
#   BASE_IMAGE=$(../shared/tools/local-base-image.sh) scripts/docker-smoke.sh   # no registry reachable
#
# Needs a Docker daemon. Not part of .ci/run. Exits non-zero on the first failed check.
set -euo pipefail
cd "$(dirname "$0")/.."

base=${BASE_IMAGE:-python:3.12-slim}
tag=${TAG:-nsegaug:smoke}
user="$(id -u):$(id -g)"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
chmod 777 "$out"  # the container may run as another user than the one who made the folder
fail() { echo "FAIL: $*" >&2; exit 1; }

# A base made by `docker import` of a debootstrap folder (local-base-image.sh) has / at mode 0700,
# which locks every non-root user out of the image; re-import its files so that / is 0755.
if ! docker run --rm --network none --user 65534 --entrypoint python3 "$base" -c "" >/dev/null 2>&1; then
  echo "note: $base does not let non-root users in (/ is 0700); using a re-imported copy, $base-755"
  changes=()
  while IFS= read -r variable; do
    [ -n "$variable" ] && changes+=(-c "ENV $variable")
  done < <(docker image inspect "$base" --format '{{range .Config.Env}}{{println .}}{{end}}')
  container=$(docker create "$base")
  docker export "$container" | docker import "${changes[@]}" -c 'CMD ["python3"]' - "$base-755" >/dev/null
  docker rm "$container" >/dev/null
  base="$base-755"
fi

echo "== build $tag from $base"
docker build --network host --build-arg BASE_IMAGE="$base" -t "$tag" . >"$out/build.log" 2>&1 ||
  { tail -30 "$out/build.log"; fail "docker build"; }
echo "image size: $(docker image inspect "$tag" --format '{{.Size}}' | awk '{printf "%.0f MB", $1 / 1e6}')"

run() { docker run --rm --network none --user "$user" -v "$PWD/examples/data/train:/data:ro" -v "$out:/out" "$tag" "$@"; }

echo "== nsegaug --version, as the image's own non-root user"
docker run --rm --network none "$tag" --version
[ "$(docker run --rm --network none --entrypoint id "$tag" -u)" = 1000 ] || fail "the image does not run as uid 1000"

echo "== generate"
run generate --labels /data/labels --images /data/images --copies 2 --out /out/train --quiet
copies=$(find "$out/train" -name '*_nsp*.png' | wc -l)
rows=$(wc -l <"$out/train/manifest.jsonl")
[ "$copies" -eq 120 ] || fail "expected 120 copies, found $copies"
[ "$rows" -eq 180 ] || fail "expected 180 manifest rows (60 originals + 120 copies), found $rows"
owner=$(stat -c '%u:%g' "$out/train/scene_0000_nsp1.png")
[ "$owner" = "$user" ] || fail "outputs belong to $owner, not to the calling user $user"
python3 - "$out/train" <<'PY' || fail "outputs do not match their manifest"
import hashlib, json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for line in (out / "manifest.jsonl").read_text().splitlines():
    row = json.loads(line)
    if row["output"]:
        data = (out / row["output"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256_output"], row["output"]
        assert data[:8] == b"\x89PNG\r\n\x1a\n", row["output"]
meta = json.loads((out / "manifest.meta.json").read_text())
assert meta["status"] == "complete" and meta["counts"]["copies_written"] == 120, meta["counts"]
print(f"manifest checked: {meta['counts']}")
PY

echo "== generate as another user: files belong to the --user given"
docker run --rm --network none --user 4321:4321 -v "$PWD/examples/data/train:/data:ro" -v "$out:/out" "$tag" \
  generate --labels /data/labels --copies 1 --out /out/other --pattern 'scene_000[0-4].png' --quiet
owners=$(find "$out/other" -type f -printf '%U:%G\n' | sort -u)
[ "$owners" = "4321:4321" ] || fail "files of a --user 4321:4321 run belong to $owners"
echo "all files of the --user 4321:4321 run belong to 4321:4321"

echo "== preview"
run preview --manifest /out/train/manifest.jsonl --n 3 --out /out/preview.png
python3 -c "import sys; d = open(sys.argv[1], 'rb').read(); assert d[:8] == b'\x89PNG\r\n\x1a\n'; print(f'preview.png: {len(d)} bytes')" \
  "$out/preview.png" || fail "preview.png is not a PNG"

if command -v nsegaug >/dev/null 2>&1; then
  echo "== the same run on this machine"
  nsegaug generate --labels examples/data/train/labels --images examples/data/train/images --copies 2 --out "$out/local" --quiet
  if cmp -s "$out/train/manifest.jsonl" "$out/local/manifest.jsonl"; then
    echo "container and local outputs are byte-identical"
  else
    echo "note: container and local outputs differ (different numpy/opencv/pillow versions in the image)"
  fi
fi
echo "docker smoke test: OK"
