# losses.sh — sourced by the runtime script tests (tests/rt_*.sh).
# same_losses A B [FIRST] [COUNT]: the JSON-lines logs A and B of `sbpc run
# --log` agree on every step >= FIRST (default 1) within 1e-5 relative, every
# step of B is in A, and B has COUNT such steps (default: at least one).
same_losses() {
  awk -v first="${3:-1}" -v want="${4:-0}" '
    FNR == 1 { f++ }
    { match($0, /"step": *[0-9]+/); s = substr($0, RSTART + 7, RLENGTH - 7) + 0
      match($0, /"loss": *[-0-9.eE+]+/); l = substr($0, RSTART + 7, RLENGTH - 7) + 0
      if (s < first) next
      if (f == 1) a[s] = l; else { b[s] = l; n++ } }
    END { if (n == 0) { print "no steps compared"; exit 1 }
          if (want && n != want) { print n " steps compared, expected " want; exit 1 }
          for (s in b) { if (!(s in a)) { print "step " s " missing"; exit 1 }
            d = a[s] - b[s]; if (d < 0) d = -d; r = a[s] < 0 ? -a[s] : a[s]
            if (d > 1e-5 * r) { printf "step %d: %.9g vs %.9g\n", s, a[s], b[s]; exit 1 } } }' "$1" "$2"
}
