#!/usr/bin/env bash
# Packaging: `make deb` builds the .deb, which installs into a throwaway root
# with the expected files; `make install DESTDIR=…` installs the same set and
# `make uninstall` removes it; the installed library links through
# pkg-config; the systemd user units pass `systemd-analyze verify`; the man
# pages cover every command and option of the --help texts; bash completion
# completes commands, subcommands and options; `trellisd --check-config`
# reports bad files with file and key.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/agentlib.sh"

TOP=$top_lib
JOBS=$(nproc 2>/dev/null || echo 2)
MULTIARCH=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch 2>/dev/null)

# The files (and symlinks) under a root, one path per line, sorted; man
# pages without their .gz, Debian's own doc files left out.
file_list() { # ROOT
    (cd "$1" && find . \( -type f -o -type l \) | sed 's|^\.||' | sed 's|\.gz$||' |
        grep -vE '^/usr/share/doc/trellis/(copyright|changelog)$' | sort)
}

# What both must hold, from the source tree.
expected_list() {
    local h d
    {
        printf '%s\n' /usr/bin/trellis /usr/bin/trellisd /usr/bin/trellis-notify \
            "/usr/lib/$MULTIARCH/libtrellis.a" "/usr/lib/$MULTIARCH/libtrellis.so" \
            "/usr/lib/$MULTIARCH/libtrellis.so.0" "/usr/lib/$MULTIARCH/libtrellis.so.0.1.0" \
            "/usr/lib/$MULTIARCH/pkgconfig/trellis.pc" \
            /usr/share/man/man1/trellis.1 /usr/share/man/man8/trellisd.8 \
            /usr/lib/systemd/user/trellisd.service /usr/lib/systemd/user/trellis-notify.service \
            /usr/share/bash-completion/completions/trellis /usr/share/bash-completion/completions/trellisd \
            /usr/share/doc/trellis/README.md
        for h in "$TOP"/core/tr_*.h; do echo "/usr/include/trellis/core/${h##*/}"; done
        for h in "$TOP"/store/tr_*.h; do echo "/usr/include/trellis/store/${h##*/}"; done
        for d in "$TOP"/docs/*.md; do echo "/usr/share/doc/trellis/${d##*/}"; done
    } | sort
}

deb_builds_and_installs() {
    command -v dpkg-buildpackage >/dev/null || t_skip "dpkg-buildpackage is not installed (dpkg-dev; make deps)"
    command -v dh >/dev/null || t_skip "dh is not installed (debhelper; make deps)"
    t_run make -C "$TOP" --no-print-directory deb DEB_JOBS="$JOBS"
    assert_rc 0
    local deb
    deb=$(find "$TOP/build/deb" -maxdepth 1 -name "trellis_0.1.0_*.deb" | head -n 1)
    [ -f "$deb" ] || t_fail "no .deb in build/deb: $OUT"
    # its metadata
    t_run dpkg-deb -f "$deb" Package Version Architecture Depends Recommends
    assert_contains "$OUT" "Package: trellis" "control"
    assert_contains "$OUT" "Version: 0.1.0" "control"
    assert_match "$OUT" "Depends: .*libzmq5.*jq" "Depends"
    assert_contains "$OUT" "Recommends: avahi-daemon, libnotify-bin" "Recommends"
    # its files
    dpkg-deb -x "$deb" "$T_DIR/x" || t_fail "dpkg-deb -x"
    assert_eq "$(file_list "$T_DIR/x")" "$(expected_list)" "the .deb's files"
    assert_eq "$(readlink "$T_DIR/x/usr/lib/$MULTIARCH/libtrellis.so")" libtrellis.so.0 "libtrellis.so link"
    assert_eq "$(readlink "$T_DIR/x/usr/lib/$MULTIARCH/libtrellis.so.0")" libtrellis.so.0.1.0 "libtrellis.so.0 link"
    if command -v readelf >/dev/null; then
        assert_contains "$(readelf -d "$T_DIR/x/usr/lib/$MULTIARCH/libtrellis.so.0.1.0")" "[libtrellis.so.0]" "SONAME"
    fi
    t_run "$T_DIR/x/usr/bin/trellis" --version
    assert_eq "$OUT" "trellis 0.1.0" "packaged trellis"
    t_run "$T_DIR/x/usr/bin/trellisd" --version
    assert_eq "$OUT" "trellisd 0.1.0" "packaged trellisd"
    assert_contains "$(cat "$T_DIR/x/usr/lib/systemd/user/trellisd.service")" "ExecStart=/usr/bin/trellisd" "unit"
    assert_contains "$(zcat "$T_DIR/x/usr/share/man/man1/trellis.1.gz")" ".TH TRELLIS 1" "man page"
    # dpkg installs and removes it in a throwaway root (its dependencies are
    # not there, so they are not checked here but below, on this system)
    local root=$T_DIR/root
    mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
    : >"$root/var/lib/dpkg/status"
    t_run dpkg --root="$root" --force-depends --force-not-root --force-script-chrootless -i "$deb"
    assert_rc 0
    assert_eq "$(dpkg --root="$root" -s trellis 2>/dev/null | sed -n 's/^Status: //p')" "install ok installed" "status"
    [ -x "$root/usr/bin/trellisd" ] || t_fail "dpkg -i did not install trellisd"
    t_run dpkg --root="$root" --force-depends --force-not-root --force-script-chrootless -r trellis
    assert_rc 0
    [ ! -e "$root/usr/bin/trellisd" ] || t_fail "dpkg -r left trellisd"
    # every dependency is installable here (installed, after make deps)
    local dep
    for dep in $(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed -E 's/\(.*\)//; s/ //g'); do
        dpkg -s "$dep" >/dev/null 2>&1 || t_fail "dependency $dep is not installed on this system"
    done
    cp "$deb" "$T_ROOT/trellis.deb"
}

make_install_same_set() {
    local d=$T_DIR/dest
    t_run make -C "$TOP" --no-print-directory -j"$JOBS" install DESTDIR="$d" PREFIX=/usr LIBDIR="/usr/lib/$MULTIARCH"
    assert_rc 0
    assert_eq "$(file_list "$d")" "$(expected_list)" "files of make install"
    assert_eq "$(readlink "$d/usr/lib/$MULTIARCH/libtrellis.so")" libtrellis.so.0 "libtrellis.so link"
    if [ -f "$T_ROOT/trellis.deb" ]; then # the same content as the package, file by file
        dpkg-deb -x "$T_ROOT/trellis.deb" "$T_DIR/x"
        local f
        for f in usr/lib/systemd/user/trellisd.service usr/share/bash-completion/completions/trellis \
            "usr/lib/$MULTIARCH/pkgconfig/trellis.pc" usr/bin/trellis-notify usr/include/trellis/store/tr_store.h; do
            cmp -s "$d/$f" "$T_DIR/x/$f" || t_fail "/$f differs between make install and the .deb"
        done
    fi
    # the library links through its pkg-config file
    cat >"$T_DIR/use.c" <<'EOF'
#include <core/tr_error.h>
#include <store/tr_repo.h>
#include <stdio.h>
int main(void) { puts(tr_strerror(TR_ENOTREPO)); return 0; }
EOF
    local flags
    flags=$(PKG_CONFIG_PATH="$d/usr/lib/$MULTIARCH/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$d" pkg-config --cflags --libs trellis) ||
        t_fail "pkg-config trellis"
    # shellcheck disable=SC2086
    cc -std=c11 -o "$T_DIR/use" "$T_DIR/use.c" $flags >"$T_DIR/cc.log" 2>&1 || t_fail "cc with pkg-config: $(cat "$T_DIR/cc.log")"
    t_run env LD_LIBRARY_PATH="$d/usr/lib/$MULTIARCH" "$T_DIR/use"
    assert_rc 0
    assert_eq "$OUT" "not a trellis repository" "a call into libtrellis.so"
    # another prefix: the units run the programs from there
    local p=$T_DIR/prefix
    t_run make -C "$TOP" --no-print-directory install PREFIX="$p"
    assert_rc 0
    assert_contains "$(cat "$p/lib/systemd/user/trellisd.service")" "ExecStart=$p/bin/trellisd" "unit under PREFIX"
    assert_contains "$(cat "$p/lib/pkgconfig/trellis.pc")" "libdir=$p/lib" "pc under PREFIX"
    # uninstall removes every file it installed
    t_run make -C "$TOP" --no-print-directory uninstall DESTDIR="$d" PREFIX=/usr LIBDIR="/usr/lib/$MULTIARCH"
    assert_rc 0
    assert_eq "$(file_list "$d")" "" "files left by make uninstall"
    t_run make -C "$TOP" --no-print-directory uninstall PREFIX="$p"
    assert_eq "$(file_list "$p")" "" "files left under PREFIX"
}

units_verify() {
    command -v systemd-analyze >/dev/null || t_skip "systemd-analyze is not installed (package systemd)"
    local p=$T_DIR/prefix
    t_run make -C "$TOP" --no-print-directory -j"$JOBS" install PREFIX="$p"
    assert_rc 0
    mkdir -m 0700 "$T_DIR/run"
    local man=--man=yes
    command -v man >/dev/null || man=--man=no
    t_run env XDG_RUNTIME_DIR="$T_DIR/run" MANPATH="$p/share/man" systemd-analyze verify --user "$man" \
        "$p/lib/systemd/user/trellisd.service" "$p/lib/systemd/user/trellis-notify.service"
    assert_rc 0
    assert_eq "$ERR$OUT" "" "systemd-analyze verify output"
    # the sandbox the issue asks for
    local u
    u=$(cat "$p/lib/systemd/user/trellisd.service")
    for k in Type=simple Restart=on-failure NoNewPrivileges=yes ProtectSystem=strict PrivateTmp=yes \
        ProtectHome=read-only "ReadWritePaths=%h/.config/trellis %h/.local/share/trellis %h/.local/state/trellis %t/trellis"; do
        assert_contains "$u" "$k" "trellisd.service"
    done
}

man_pages_match_help() {
    local m1=$TOP/packaging/man/trellis.1 m8=$TOP/packaging/man/trellisd.8 cmd o
    if command -v groff >/dev/null; then
        t_run groff -man -Tutf8 -ww -z "$m1" "$m8"
        assert_eq "$ERR" "" "groff warnings"
    fi
    # every command of `trellis help`, with every long option of its --help
    while read -r cmd; do
        grep -qF ".SS \"trellis ${cmd//-/\\-}" "$m1" || t_fail "trellis.1 has no section for '$cmd'"
        # shellcheck disable=SC2086
        for o in $(trellis $cmd --help | grep -oE '(^|[ ,\[])--[a-z][a-z-]*' | sed -E 's/^[ ,\[]//' | sort -u); do
            grep -qF -- "${o//-/\\-}" "$m1" || t_fail "trellis.1 does not mention $o of 'trellis $cmd'"
        done
    done < <(trellis help | sed -n '/^Commands:/,/^$/{/^  [a-z]/p}' | cut -c3-16 | sed 's/ *$//' | grep -vx help)
    for o in $(trellis --help | grep -oE '(^|[ ,\[])--[a-z][a-z-]*' | sed -E 's/^[ ,\[]//' | sort -u); do
        grep -qF -- "${o//-/\\-}" "$m1" || t_fail "trellis.1 does not mention the global option $o"
    done
    [ -x "$TRELLISD" ] || return 0
    for o in $("$TRELLISD" --help | grep -oE '(^|[ ,\[|])--?[a-z][a-z-]*' | sed -E 's/^[ ,\[|]//' | sort -u); do
        grep -qF -- "${o//-/\\-}" "$m8" || t_fail "trellisd.8 does not mention $o"
    done
}

completion() {
    # shellcheck disable=SC1090
    . "$TOP/packaging/completion/trellis"
    complete_words() {
        COMP_WORDS=("$TRELLIS_BIN" "$@")
        COMP_CWORD=$#
        _trellis
        echo "${COMPREPLY[*]}"
    }
    assert_eq "$(complete_words ev)" events "command"
    assert_eq "$(complete_words sync "")" "now reconcile status --help" "subcommands"
    assert_eq "$(complete_words -C /tmp ver)" verify "after -C"
    assert_eq "$(complete_words events --t)" "--type" "option"
    assert_contains "$(complete_words events --type pe)" "peer.untrusted" "event types"
    assert_eq "$(complete_words triple list --obj)" "--object" "a subcommand's option"
    assert_eq "$(complete_words help ini)" init "help COMMAND"
    COMP_WORDS=("$TRELLISD" --check)
    COMP_CWORD=1
    _trellisd
    assert_eq "${COMPREPLY[*]}" "--check-config" "trellisd option"
}

check_config() {
    need_trellisd
    local cfg=$TRELLIS_HOME/config
    mkdir -p "$cfg"
    trellis init r1 >/dev/null || t_fail init
    trellis init r2 >/dev/null || t_fail init
    # all good: the default configuration, then two served repositories
    t_run "$TRELLISD" --check-config
    assert_rc 0
    assert_contains "$OUT" "configuration ok" "stdout"
    echo "{\"name\":\"ana\",\"repos\":[\"$T_DIR/r1\",\"$T_DIR/r2\"]}" >"$cfg/agent.json"
    t_run "$TRELLISD" -n
    assert_rc 0
    assert_contains "$OUT" "2 repositories checked" "stdout"
    # a bad agent.json: file and key
    echo "{\"repos\":[\"$T_DIR/r1\"],\"peers\":[{\"id\":\"nope\",\"trusted\":true}]}" >"$cfg/agent.json"
    t_run "$TRELLISD" --check-config
    assert_rc 1
    assert_contains "$ERR" "trellisd: $cfg/agent.json: peers[0].id: " "agent.json error"
    assert_contains "$ERR" "1 error in the configuration" "summary"
    # a bad config.json of a served repository, at the same time
    echo '{"version":1,"branchPolicies":{"main":{"linear":"yes"}}}' >r2/.trellis/config.json
    echo "{\"repos\":[\"$T_DIR/r1\",\"$T_DIR/r2\"],\"peers\":[{\"id\":\"nope\"}],\"listen\":7437}" >"$cfg/agent.json"
    t_run "$TRELLISD" --check-config
    assert_rc 1
    assert_contains "$ERR" "trellisd: $cfg/agent.json: listen: " "agent.json error"
    assert_contains "$ERR" "trellisd: $T_DIR/r2/.trellis/config.json: branchPolicies.main.linear: " "config.json error"
    assert_contains "$ERR" "2 errors in the configuration" "summary"
    # JSON syntax: file and line; a repository that is not one
    printf '{"name": "x",\n  "repos": [}\n' >"$cfg/agent.json"
    t_run "$TRELLISD" --check-config
    assert_rc 1
    assert_match "$ERR" "trellisd: $cfg/agent.json:2: " "syntax error"
    echo "{\"repos\":[\"$T_DIR\"]}" >"$cfg/agent.json"
    t_run "$TRELLISD" --check-config
    assert_rc 1
    assert_contains "$ERR" "$cfg/agent.json: repos[0]: $T_DIR is not a trellis repository" "not a repository"
    # unknown keys are warnings only
    echo '{"version":1,"branchPolicy":{}}' >r2/.trellis/config.json
    echo "{\"repos\":[\"$T_DIR/r2\"],\"peer\":[]}" >"$cfg/agent.json"
    t_run "$TRELLISD" --check-config
    assert_rc 0
    assert_contains "$ERR" "warning: $cfg/agent.json: peer: unknown key" "agent.json warning"
    assert_contains "$ERR" "warning: $T_DIR/r2/.trellis/config.json: branchPolicy: unknown key" "config.json warning"
    # an identity key that others can read
    trellis id >/dev/null || t_fail "trellis id"
    chmod 0644 "$cfg/identity.key"
    t_run "$TRELLISD" --check-config
    assert_rc 1
    assert_contains "$ERR" "identity.key" "unsafe key"
    # nothing was started or written: no state, no run directory
    [ ! -e "$TRELLIS_HOME/state" ] && [ ! -e "$TRELLIS_HOME/run" ] || t_fail "--check-config created directories"
}

notifier_help() {
    t_run "$TOP/packaging/trellis-notify" --help
    assert_rc 0
    assert_contains "$OUT" "Usage: trellis-notify" "help"
    command -v shellcheck >/dev/null || return 0
    t_run shellcheck "$TOP/packaging/trellis-notify"
    assert_eq "$OUT" "" "shellcheck of trellis-notify"
    t_run shellcheck -s bash "$TOP/packaging/completion/trellis"
    assert_eq "$OUT" "" "shellcheck of the completion"
}

t_case deb_builds_and_installs deb_builds_and_installs
t_case make_install_same_set make_install_same_set
t_case units_verify units_verify
t_case man_pages_match_help man_pages_match_help
t_case completion completion
t_case check_config check_config
t_case notifier_help notifier_help
t_done
