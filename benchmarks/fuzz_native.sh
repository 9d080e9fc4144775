#!/usr/bin/env bash
# Fuzz the C runtime's manifest reader and the example's PGM/PPM reader with libFuzzer
# (clang -fsanitize=fuzzer,address,undefined), SECONDS each (default 60), from the seed
# corpus in edgefusion/native/fuzz/corpus. Exits non-zero on the first crash, leak or
# sanitizer report (libFuzzer writes the input as crash-* in the work folder).
#   benchmarks/fuzz_native.sh [SECONDS] [WORKDIR]
set -euo pipefail
seconds=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
native=$root/edgefusion/native
work=${2:-$(mktemp -d /tmp/edgefusion-fuzz.XXXXXX)}
mkdir -p "$work"
command -v clang >/dev/null || { echo "fuzz_native.sh: clang not found (apt-get install clang)" >&2; exit 2; }
flags="-g -O1 -std=c99 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"
clang $flags -I"$native/runtime" "$native/fuzz/fuzz_manifest.c" "$native/runtime/ef_manifest.c" "$native/runtime/ef_json.c" "$native/runtime/ef_sha256.c" -lm -o "$work/fuzz_manifest"
clang $flags -I"$native/examples" "$native/fuzz/fuzz_pnm.c" "$native/examples/pnm.c" -o "$work/fuzz_pnm"
for harness in manifest pnm; do
  corpus=$work/corpus-$harness
  mkdir -p "$corpus"
  cp "$native/fuzz/corpus/$harness"/* "$corpus/"
  echo "== fuzz_$harness: ${seconds}s"
  (cd "$work" && ./fuzz_$harness -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=1024 -print_final_stats=1 "$corpus" 2>&1 | tail -n 12)
done
echo "no crash; work folder $work"
