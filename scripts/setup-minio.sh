#!/usr/bin/env bash
# Provides .cache/bin/minio for the integration tests (npm run setup:minio, CI).
# MinIO community edition ships as source only, so we build the pinned module
# version with `go install` once per machine and keep the binary in the user
# cache; every checkout then only copies it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The version lives in one file, also read by test/helpers/minio.ts.
VERSION="$(tr -d '[:space:]' < "$ROOT/scripts/minio-version")"
MODULE="github.com/minio/minio"
TARGET="$ROOT/.cache/bin/minio"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/mediaflow/minio-$VERSION"
CACHED="$CACHE_DIR/minio"

say() { echo "setup-minio: $*"; }
die() { echo "setup-minio: ERROR: $*" >&2; exit 1; }

find_go() {
  if command -v go >/dev/null 2>&1; then command -v go
  elif [ -x /usr/local/go/bin/go ]; then echo /usr/local/go/bin/go
  fi
}
GO="$(find_go || true)"

# `minio --version` of a `go install` build says "DEVELOPMENT.GOGET", so the
# module version is read from the Go build info embedded in the binary.
binary_version() {
  local bin="$1"
  [ -x "$bin" ] || return 0
  if [ -n "$GO" ]; then
    "$GO" version -m "$bin" 2>/dev/null | awk -v m="$MODULE" '$1 == "mod" && $2 == m { print $3; exit }'
  else
    # Without Go, the same build info is plain text inside the binary.
    LC_ALL=C grep -a -o -m1 "mod	$MODULE	[^	]*" "$bin" 2>/dev/null | head -n1 | cut -f3 || true
  fi
}

# Copy via a temp file + rename so a test that is starting the old binary
# never sees a half-written one.
install_binary() {
  mkdir -p "$(dirname "$TARGET")"
  cp "$1" "$TARGET.tmp.$$"
  chmod +x "$TARGET.tmp.$$"
  mv -f "$TARGET.tmp.$$" "$TARGET"
}

if [ "$(binary_version "$TARGET")" = "$VERSION" ]; then
  say "$TARGET is already MinIO $VERSION; nothing to do."
  exit 0
fi

if [ "$(binary_version "$CACHED")" = "$VERSION" ]; then
  install_binary "$CACHED"
  say "copied cached build $CACHED -> $TARGET (MinIO $VERSION)."
  exit 0
fi

[ -n "$GO" ] || die "Go is not installed (looked on PATH and /usr/local/go/bin). Install Go, then rerun: npm run setup:minio"

say "building $MODULE@$VERSION with $("$GO" version) into $CACHE_DIR (takes a few minutes the first time)..."
mkdir -p "$CACHE_DIR"
LOG="$CACHE_DIR/build.log"
start=$(date +%s)
# CGO off: a static binary that does not depend on the host's C toolchain.
if ! GOBIN="$CACHE_DIR" CGO_ENABLED=0 \
     "$GO" install "$MODULE@$VERSION" >"$LOG" 2>&1; then
  echo "setup-minio: ERROR: go install $MODULE@$VERSION failed; its output:" >&2
  grep -v '^go: downloading ' "$LOG" >&2 || true
  exit 1
fi
[ "$(binary_version "$CACHED")" = "$VERSION" ] || die "go install succeeded but $CACHED does not report $VERSION (see $LOG)"
install_binary "$CACHED"
say "built in $(( $(date +%s) - start ))s; installed $TARGET (MinIO $VERSION)."
