#!/usr/bin/env bash
# perl under the shim: a generated script working hashes, sorting, regexes
# and string building (small, medium and 64K+ strings, so that each size
# route of the three-pool configuration is taken), printing digests of its
# results; it also writes a report file. See lib.sh for the comparison.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
prog_init "$@"
need /usr/bin/perl

# The script, with the generated parameters baked in. PERL_HASH_SEED is not
# fixed: the script prints no hash in its own order, so the output must not
# depend on it.
cat >"$IN/work.pl" <<EOF
use strict;
use warnings;
use Digest::MD5 qw(md5_hex);
srand($SEED);
my @words = map {
  join '', map { chr(97 + int(rand(26))) } 1 .. (3 + int(rand(12)))
} 1 .. 150000;

# Hashes: counts, nested structures, deletion.
my (%count, %byfirst);
\$count{\$_}++ for @words;
push @{ \$byfirst{substr(\$_, 0, 1)} }, \$_ for @words;
delete \$count{\$_} for grep { length(\$_) == 5 } keys %count;
printf "distinct %d, letters %d\n", scalar(keys %count), scalar(keys %byfirst);

# Sorting: by string, by number, by several keys, Schwartzian transform.
my @sorted = sort @words;
my @bylen = map { \$_->[1] }
  sort { \$a->[0] <=> \$b->[0] or \$a->[1] cmp \$b->[1] }
  map { [length(\$_), \$_] } @words;
my @nums = sort { \$a <=> \$b } map { int(rand(1e9)) } 1 .. 50000;
print "sorted ", md5_hex(join ',', @sorted), "\n";
print "bylen ", md5_hex(join ',', @bylen), "\n";
print "nums \$nums[0] \$nums[-1] ", md5_hex(join ',', @nums), "\n";

# Regexes: captures, substitutions, global matches, split.
my \$text = join ' ', @words;
my \$vowels = () = \$text =~ /[aeiou]/g;
(my \$swapped = \$text) =~ s/(\w)(\w*)(\w)/\$3\$2\$1/g;
my @pairs = \$text =~ /\b(\w)\w*\1\b/g;
my %re_count;
\$re_count{\$1}++ while \$text =~ /\b(\w{2})\w*\b/g;
print "vowels \$vowels pairs ", scalar(@pairs), " ", md5_hex(\$swapped), "\n";
print "prefixes ", md5_hex(join ',', map { "\$_=\$re_count{\$_}" } sort keys %re_count), "\n";
print "split ", scalar(split /[aeiou]+/, \$text), "\n";

# String building: small appends, joins, repetition, big buffers (64K+).
my \$buf = '';
for my \$i (0 .. \$#words) {
  \$buf .= sprintf("%05d:%s;", \$i, \$words[\$i]);
  if (\$i % 10000 == 9999) {
    my \$big = \$buf x 3;
    print "chunk \$i ", length(\$big), " ", md5_hex(\$big), "\n";
  }
}
my @parts = map { "<\$_>" x (1 + \$_ % 7) } 1 .. 20000;
print "parts ", length(join('', @parts)), " ", md5_hex(join '|', reverse @parts), "\n";

# A file written by the script.
open(my \$fh, '>', "\$ENV{OUT}/report.txt") or die "report: \$!";
for my \$k (sort keys %byfirst) {
  my @l = sort @{ \$byfirst{\$k} };
  printf \$fh "%s %d %s %s\n", \$k, scalar(@l), \$l[0], \$l[-1];
}
close(\$fh) or die "report: \$!";
print "done\n";
EOF

workload() {
  /usr/bin/perl "$IN/work.pl"
}

compare_runs workload
