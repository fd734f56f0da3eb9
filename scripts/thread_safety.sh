#!/usr/bin/env bash
# Clang's thread-safety analysis over every source file whose code or own header
# carries abseil's lock annotations (ABSL_GUARDED_BY and friends): each is compiled
# syntax-only with clang and -Wthread-safety, with the flags of build/'s
# compile_commands.json (run scripts/build.sh first). Fails on any finding. GCC, which
# builds Headway, ignores the annotations; this makes them checked.
#   scripts/thread_safety.sh            (half a minute here for the 14 files)
#   HEADWAY_THREAD_SAFETY_FILES="server/worker_pool.cc" scripts/thread_safety.sh
#                                       (those files only)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${HEADWAY_BUILD_DIR:-build}
clang=$(command -v clang++-14 || command -v clang++ || true)
if [ -z "$clang" ]; then
  echo "thread_safety: needs clang (apt-get install clang-14)" >&2
  exit 1
fi
annotated='ABSL_GUARDED_BY|ABSL_PT_GUARDED_BY|ABSL_EXCLUSIVE_LOCKS_REQUIRED|ABSL_LOCKS_EXCLUDED|ABSL_SHARED_LOCKS_REQUIRED'
files=()
for source in ${HEADWAY_THREAD_SAFETY_FILES:-model_store/*.cc model_store/store/*.cc server/*.cc client/*.cc bench/*.cc}; do
  header=${source%.cc}.h
  if grep -qE "$annotated" "$source" || { [ -f "$header" ] && grep -qE "$annotated" "$header"; }; then
    files+=("$source")
  fi
done
/usr/bin/python3 - "$clang" "$build_dir/compile_commands.json" "${files[@]}" <<'PY'
import json, os, shlex, subprocess, sys
clang, database, files = sys.argv[1], sys.argv[2], sys.argv[3:]
commands = {os.path.realpath(e["file"]): e for e in json.load(open(database))}
failed = 0
for source in files:
    entry = commands.get(os.path.realpath(source))
    if entry is None:
        print(f"{source}: not in {database}")
        failed = 1
        continue
    args = shlex.split(entry["command"])[1:]
    kept, skip = [], False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        # Outputs, and GCC's precompiled header (clang reads its own kind only).
        if arg in ("-o", "-MF", "-MT", "-MQ") or (
                arg == "-include" and i + 1 < len(args) and "cmake_pch" in args[i + 1]):
            skip = True
            continue
        if arg == "-Winvalid-pch":
            continue
        if arg in ("-c", "-MD", "-MMD", "-Werror") or arg.startswith("-fno-semantic-interposition"):
            continue
        kept.append(arg)
    run = subprocess.run([clang, *kept, "-fsyntax-only", "-Wno-everything",
                          "-Wthread-safety", "-Werror=thread-safety"],
                         cwd=entry["directory"], capture_output=True, text=True)
    findings = run.stderr.strip()
    print(f"{source}: {'clean' if run.returncode == 0 else 'FINDINGS'}")
    if run.returncode != 0:
        print(findings)
        failed = 1
sys.exit(failed)
PY
