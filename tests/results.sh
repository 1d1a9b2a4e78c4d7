# SPDX-License-Identifier: ISC
# tests/results.sh - the assertions the test suites print, one line each:
# "ok - DESC" or "not ok - DESC", counted in $pass and $fail, so that a
# suite ends with: echo "$pass passed, $fail failed".
#
#     . tests/results.sh

pass=0
fail=0

ok() { echo "ok - $*"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $*"; fail=$((fail + 1)); }
# check DESC CMD...: ok when CMD succeeds.
check() {
	local desc=$1
	shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}
# is DESC GOT WANT: GOT equals WANT (both shown when they differ).
is() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1: got \"$2\", want \"$3\""; fi
}
