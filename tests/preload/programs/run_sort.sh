#!/usr/bin/env bash
# bash and coreutils sort under the shim, on generated data. bash runs a
# script that lists its open descriptors (the shim must add none), then
# works associative and indexed arrays, string building and slicing, read
# loops, mapfile, recursion and pipelines; sort orders 400k lines by several
# keys, with a small buffer that forces temporary files and a merge (two
# threads), unique and stable sorts, merging, checking and a seeded shuffle.
# Compared: stdout and every output file. See lib.sh for the comparison.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
prog_init "$@"
need /bin/bash /usr/bin/sort /usr/bin/join /usr/bin/uniq awk

# The data, generated once (no shim): "word,number,float,date,text" lines,
# some with long (up to 1K) text fields.
awk -v seed="$SEED" '
BEGIN {
  srand(seed)
  for (i = 0; i < 400000; i++) {
    w = ""
    for (k = 3 + int(rand() * 6); k > 0; k--) w = w sprintf("%c", 97 + int(rand() * 26))
    t = (rand() < 0.01) ? sprintf("%*s", 64 + int(rand() * 960), "x") : "t" int(rand() * 50)
    printf "%s,%d,%.6g,2024-%02d-%02d,%s\n", w, int(rand() * 1e6) - 5e5, rand() * 1e4 - 5e3, 1 + int(rand() * 12), 1 + int(rand() * 28), t
  }
}' >"$IN/data.csv"
head -c 4096 "$IN/data.csv" >"$IN/random-source"

cat >"$IN/script.bash" <<'EOF'
# Runs under the shim: every word of it allocates.
set -euo pipefail
# The descriptors this shell has open (0, 1, 2 and its script's): the shim
# must not add its own, or the program's next open() gets another number.
# (MMPOOL_STATS=1 keeps a duplicate of stderr for its report, by design,
# at 300 or above: 1008 under the usual limit of 1024. Those are not
# listed.)
fds=()
for f in /proc/$$/fd/*; do
  (( ${f##*/} < 300 )) && fds+=("$f")
done
echo "descriptors: ${fds[*]##*/}"
declare -A count first
declare -a lens=()
n=0
while IFS=, read -r word num fl day text; do
  ((++n))
  key=${word:0:2}
  count[$key]=$(( ${count[$key]:-0} + 1 ))
  [[ -n ${first[$key]:-} ]] || first[$key]=$word
  lens+=("${#text}")
  ((n < 40000)) || break
done <"$1"
echo "read $n lines, ${#count[@]} prefixes"
for key in $(printf '%s\n' "${!count[@]}" | sort); do
  printf '%s %d %s\n' "$key" "${count[$key]}" "${first[$key]}"
done >prefixes.txt
total=0
for l in "${lens[@]}"; do total=$((total + l)); done
echo "text bytes $total"

# String building: a 170K string by appending, then slicing and replacing.
s=
for ((i = 0; i < 20000; i++)); do s+="<$i:${i: -1}>"; done
echo "built ${#s}"
t=${s//:/;}
u=${t^^}
echo "replaced ${#t} ${u:1000:40}"
printf -v big '%s|' "${lens[@]:0:5000}"
echo "printf -v ${#big}"

# mapfile, command substitution, recursion, a here-document.
mapfile -t lines < <(cut -d, -f1 "$1" | head -n 50000)
echo "mapfile ${#lines[@]} ${lines[49999]}"
fib() { if (($1 < 2)); then echo "$1"; else echo $(( $(fib $(($1 - 1))) + $(fib $(($1 - 2))) )); fi; }
echo "fib $(fib 15)"
cat <<DOC | wc -c
$(printf '%s\n' "${lines[@]:0:1000}")
DOC
EOF

workload() {
  local d=$IN/data.csv
  bash "$IN/script.bash" "$d"
  mv prefixes.txt "$OUT/"
  sort "$d" >"$OUT/plain.txt"
  sort -t, -k2,2n -k1,1 "$d" >"$OUT/bynum.txt"
  sort -t, -k3,3g -r "$d" >"$OUT/byfloat.txt"
  sort -t, -s -k4,4 "$d" >"$OUT/stable.txt"
  sort -t, -u -k1,1 "$d" >"$OUT/unique.txt"
  # A 1M buffer: temporary files under work/ and a merge, two threads.
  sort -S 1M --parallel=2 -T . -t, -k5,5 -k1,1r "$d" >"$OUT/external.txt"
  sort -c "$OUT/plain.txt"
  split -n l/4 "$d" part.
  for p in part.*; do sort "$p" -o "$p"; done
  sort -m part.* | cmp - "$OUT/plain.txt"
  sort -R --random-source="$IN/random-source" "$d" | sha256sum
  cut -d, -f1 "$d" | sort | uniq -c | sort -k1,1nr -k2 | sed -n 1,20p
  cut -d, -f4,1 "$d" | sort -t, -k1,1 | uniq >dates.txt
  sort -t, -k1,1 "$OUT/unique.txt" | join -t, - dates.txt | sha256sum
  wc -l "$OUT"/*.txt | sed "s|$OUT/||"
}

compare_runs workload
