#!/usr/bin/env bash
# tclsh under the shim: a script of dicts, arrays, lists and lsort, regexp
# and regsub, string map, format and binary, 64K+ strings, recursion,
# namespaces and an interpreter per round (created and deleted), printing
# checksums and writing a file. See lib.sh for the comparison.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
prog_init "$@"
need /usr/bin/tclsh

cat >"$IN/work.tcl" <<'EOF'
lassign $argv seed out
expr {srand($seed)}
proc checksum {s} {
  set h 0
  binary scan $s c* bytes
  set i 0
  foreach b $bytes {
    if {[incr i] % 7 == 0} { set h [expr {($h * 31 + ($b & 255)) % 4294967291}] }
  }
  return [format "%d:%08x" [string length $s] $h]
}
proc word {n} {
  set w ""
  for {set k 0} {$k < $n} {incr k} { append w [format %c [expr {97 + int(rand() * 26)}]] }
  return $w
}

# Words in a dict and an array, sorted several ways.
set words {}
set counts [dict create]
for {set i 0} {$i < 60000} {incr i} {
  set w [word [expr {3 + int(rand() * 9)}]]
  lappend words $w
  dict incr counts $w
  lappend byfirst([string index $w 0]) $w
}
puts "distinct [dict size $counts] [checksum [join [lsort [dict keys $counts]] ,]]"
puts "by length [checksum [join [lsort -command {apply {{a b} {
  set d [expr {[string length $a] - [string length $b]}]
  if {$d != 0} { return $d }
  string compare $a $b
}}} [lrange $words 0 19999]] " "]]"
puts "unique [llength [lsort -unique $words]] decreasing [lindex [lsort -decreasing $words] 0]"
foreach k [lsort [array names byfirst]] { append firsts "$k[llength $byfirst($k)]" }
puts "letters [checksum $firsts]"

# Regular expressions and substitutions.
set text [join $words " "]
puts "matches [regexp -all {\m([a-z])[a-z]*\1\M} $text]"
set n [regsub -all {([aeiou])([^aeiou ])} $text {\2\1} swapped]
puts "regsub $n [checksum $swapped]"
set mapped [string map {a 4 e 3 i 1 o 0 the THE} $text]
puts "map [checksum $mapped] [checksum [string toupper $text]]"

# Big strings and binary.
set big [string repeat "0123456789abcdef" 10000]
set rev [string reverse $big]
set bin [binary format i* [lrange [lsort -integer [lmap w [lrange $words 0 9999] {string length $w}]] 0 end]]
binary scan $bin i* back
puts "big [checksum $big] [checksum $rev] [string length $bin] [tcl::mathop::+ {*}$back]"

# Recursion, namespaces, child interpreters.
namespace eval calc {
  proc ack {m n} {
    if {$m == 0} { return [expr {$n + 1}] }
    if {$n == 0} { return [ack [expr {$m - 1}] 1] }
    return [ack [expr {$m - 1}] [ack $m [expr {$n - 1}]]]
  }
}
puts "ack [calc::ack 2 300]"
for {set r 0} {$r < 20} {incr r} {
  set child [interp create]
  $child eval {set l {}; for {set i 0} {$i < 2000} {incr i} { lappend l [string repeat x $i] }}
  lappend lens [$child eval {string length [join $l ""]}]
  interp delete $child
}
puts "interps [lsort -unique $lens]"

set f [open $out w]
foreach k [lrange [lsort [dict keys $counts]] 0 end-1000] { puts $f "$k [dict get $counts $k]" }
close $f
puts done
EOF

workload() {
  tclsh "$IN/work.tcl" "$SEED" "$OUT/words.txt"
}

compare_runs workload
