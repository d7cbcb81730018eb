#!/usr/bin/env bash
# Provides .cache/bin/minio for the integration tests (npm run setup:minio, CI).
# MinIO community edition ships as source only, so we build the pinned module
# version (plus a small fix, see below) once per machine and keep the binary
# in the user cache; every checkout then only copies it.
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

# What we build is the pinned module plus our listen-flush fix (below): a stamp
# file beside each binary names exactly that, so a stale or unpatched binary
# is never mistaken for it.
BUILD_ID="$VERSION+listen-flush.1"
binary_version() {
  local bin="$1"
  [ -x "$bin" ] && [ -f "$bin.build" ] && tr -d '[:space:]' < "$bin.build" || true
}

# Copy via a temp file + rename so a test that is starting the old binary
# never sees a half-written one.
install_binary() {
  mkdir -p "$(dirname "$TARGET")"
  cp "$1" "$TARGET.tmp.$$"
  chmod +x "$TARGET.tmp.$$"
  mv -f "$TARGET.tmp.$$" "$TARGET"
  echo "$BUILD_ID" > "$TARGET.build"
}

if [ "$(binary_version "$TARGET")" = "$BUILD_ID" ]; then
  say "$TARGET is already $BUILD_ID; nothing to do."
  exit 0
fi

# Two setups at once (two terminals, a test run and a bench) share the build
# folder: the second waits for the first, then finds its build in the cache.
mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/.lock"
if ! flock -n 9; then
  say "another setup is building MinIO; waiting for it..."
  flock 9
fi

if [ "$(binary_version "$CACHED")" = "$BUILD_ID" ]; then
  install_binary "$CACHED"
  say "copied cached build $CACHED -> $TARGET (MinIO $VERSION)."
  exit 0
fi

[ -n "$GO" ] || die "Go is not installed (looked on PATH and /usr/local/go/bin). Install Go, then rerun: npm run setup:minio"

say "building $MODULE@$VERSION (+ listen-flush fix) with $("$GO" version) into $CACHE_DIR (takes a few minutes the first time)..."
mkdir -p "$CACHE_DIR"
LOG="$CACHE_DIR/build.log"
start=$(date +%s)
fail() { echo "setup-minio: ERROR: $1; its output:" >&2; grep -v '^go: downloading ' "$LOG" >&2 || true; exit 1; }

# The module source, from the Go module proxy (read-only in the module cache).
SRC_DIR="$(cd "$CACHE_DIR" && GOFLAGS=-mod=mod "$GO" mod download -json "$MODULE@$VERSION" 2>"$LOG" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')" || true
[ -n "$SRC_DIR" ] && [ -d "$SRC_DIR" ] || fail "go mod download $MODULE@$VERSION failed"
WORK="$CACHE_DIR/src"
rm -rf "$WORK"
cp -r "$SRC_DIR" "$WORK"
chmod -R u+w "$WORK"

# The fix. This MinIO wraps every S3 response in trackingResponseWriter, which
# has no Flush(): the listen API's records then sit in a 4 KB server buffer,
# so a quiet bucket's events (a single upload, a removal) never arrive. The
# method below forwards Flush to the wrapped writer; it is our code, added
# only when the type exists and has no Flush yet.
TARGET_GO="$WORK/cmd/api-response.go"
if grep -q '^type trackingResponseWriter struct' "$TARGET_GO" && ! grep -q 'func (w \*trackingResponseWriter) Flush()' "$TARGET_GO"; then
  cat >> "$TARGET_GO" <<'GO'

// Flush forwards to the wrapped writer so streaming handlers (listen) reach the client.
// Added by mediaflow's scripts/setup-minio.sh.
func (w *trackingResponseWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
GO
  say "applied the listen-flush fix to cmd/api-response.go"
else
  say "listen-flush fix not needed (trackingResponseWriter absent or already flushes)"
fi

# CGO off: a static binary that does not depend on the host's C toolchain.
if ! (cd "$WORK" && CGO_ENABLED=0 "$GO" build -trimpath -o "$CACHED" . >>"$LOG" 2>&1); then
  fail "go build of $MODULE@$VERSION failed"
fi
echo "$BUILD_ID" > "$CACHED.build"
rm -rf "$WORK"
install_binary "$CACHED"
say "built in $(( $(date +%s) - start ))s; installed $TARGET ($BUILD_ID)."
