# lib.sh — helpers for the CLI tests (sourced by tests/cli/*.sh).
#
#   t_case NAME FUNCTION   runs FUNCTION in a subshell, in a fresh temporary
#                          directory with its own TRELLIS_HOME, and prints
#                          "ok NAME", "FAIL NAME: …" or "skip NAME: …"
#   t_run CMD...           runs CMD; sets OUT (stdout), ERR (stderr), RC
#   trellis ARGS...        the binary under test ($TRELLIS_BIN)
#   assert_rc N            RC of the last t_run is N (prints OUT/ERR if not)
#   assert_eq ACTUAL WANT [WHAT], assert_ne, assert_contains TEXT PART [WHAT],
#   assert_match TEXT ERE [WHAT], assert_not_contains TEXT PART [WHAT]
#   t_skip WHY             skips the rest of the case
#   need CMD               skips the case unless CMD is installed
#   t_done                 prints "N passed, N failed, N skipped" and exits
#
# Every failure prints both values. A case stops at its first failure.

set -u
here_lib=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top_lib=$(cd "$here_lib/../.." && pwd)
TRELLIS_BIN=${TRELLIS_BIN:-$top_lib/build/san/trellis}
case $TRELLIS_BIN in /*) ;; *) TRELLIS_BIN=$top_lib/$TRELLIS_BIN ;; esac
export TRELLIS_BIN
export NO_COLOR=1
unset XDG_CONFIG_HOME XDG_DATA_HOME XDG_STATE_HOME

T_PASSED=0 T_FAILED=0 T_SKIPPED=0
T_ROOT=$(mktemp -d "${TMPDIR:-/tmp}/trellis-cli.XXXXXX")
trap 'rm -rf "$T_ROOT"' EXIT

trellis() { "$TRELLIS_BIN" "$@"; }

t_run() {
    "$@" >"$T_DIR/.out" 2>"$T_DIR/.err"
    RC=$?
    OUT=$(cat "$T_DIR/.out")
    ERR=$(cat "$T_DIR/.err")
}

t_fail() {
    echo "FAIL $T_CASE: $*"
    exit 99
}

t_skip() {
    echo "skip $T_CASE: $*"
    exit 77
}

need() {
    command -v "$1" >/dev/null 2>&1 || t_skip "$1 is not installed"
}

assert_rc() {
    [ "$RC" -eq "$1" ] && return 0
    t_fail "exit code: want $1, got $RC
  stdout: ${OUT:0:2000}
  stderr: ${ERR:0:2000}"
}

assert_eq() {
    [ "$1" = "$2" ] && return 0
    t_fail "${3:-value}: want '$2', got '$1'"
}

assert_ne() {
    [ "$1" != "$2" ] && return 0
    t_fail "${3:-value}: should differ from '$2'"
}

assert_contains() {
    case $1 in *"$2"*) return 0 ;; esac
    t_fail "${3:-text} should contain '$2'; it is: '${1:0:2000}'"
}

assert_not_contains() {
    case $1 in *"$2"*) t_fail "${3:-text} should not contain '$2'; it is: '${1:0:2000}'" ;; esac
    return 0
}

assert_match() {
    [[ $1 =~ $2 ]] && return 0
    t_fail "${3:-text} should match /$2/; it is: '${1:0:2000}'"
}

t_case() {
    T_CASE=$1
    shift
    T_DIR=$(mktemp -d "$T_ROOT/case.XXXXXX")
    (
        export TRELLIS_HOME=$T_DIR/home
        cd "$T_DIR" || exit 1
        "$@"
    )
    local rc=$?
    case $rc in
    0) echo "ok $T_CASE"; T_PASSED=$((T_PASSED + 1)) ;;
    77) T_SKIPPED=$((T_SKIPPED + 1)) ;;
    99) T_FAILED=$((T_FAILED + 1)) ;;
    *) echo "FAIL $T_CASE: the case ended with status $rc"; T_FAILED=$((T_FAILED + 1)) ;;
    esac
}

t_done() {
    echo "$T_PASSED passed, $T_FAILED failed, $T_SKIPPED skipped"
    [ "$T_FAILED" -eq 0 ]
    exit $?
}

if [ ! -x "$TRELLIS_BIN" ]; then
    echo "FAIL setup: no trellis binary at $TRELLIS_BIN (run 'make san')"
    echo "0 passed, 1 failed, 0 skipped"
    exit 1
fi

# Run directly (tests/run.sh runs every tests/cli/*.sh), lib.sh checks its
# own helpers: a passing assertion passes, a failing one fails the case.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    lib_pass() {
        t_run printf 'a\nb'
        assert_rc 0
        assert_eq "$OUT" $'a\nb'
        assert_contains "$OUT" "b"
        assert_not_contains "$OUT" "c"
        assert_match "$OUT" '^a'
        assert_ne x y
        [ "$TRELLIS_HOME" = "$T_DIR/home" ] || t_fail "TRELLIS_HOME is not per case"
        [ "$PWD" = "$T_DIR" ] || t_fail "the case does not run in its directory"
    }
    lib_each_helper_fails() {
        local f
        for f in "assert_eq a b" "assert_ne a a" "assert_contains abc x" \
            "assert_not_contains abc b" "assert_match abc ^b" "t_run false; assert_rc 0"; do
            # shellcheck disable=SC2086
            (eval "$f") >/dev/null && t_fail "'$f' did not fail"
            (eval "$f") | grep -q "^FAIL $T_CASE: " || t_fail "'$f' printed no FAIL line"
        done
        return 0
    }
    t_case lib_pass lib_pass
    t_case lib_each_helper_fails lib_each_helper_fails
    t_done
fi
