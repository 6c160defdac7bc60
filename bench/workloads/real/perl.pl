# perl.pl SCALE: a Perl program run unmodified: hashes of strings, arrays,
# string concatenation and regular expressions; checks its result.
use strict; use warnings;
my $n = (defined $ARGV[0] ? $ARGV[0] : 200) * 1000;
my $total = 0;
for my $rnd (0 .. 3) {
    my %h;
    $h{"k$_-$rnd"} = [$_, ("x" x (1 + $_ % 7))] for 0 .. $n - 1;
    my @k = sort { $h{$a}[0] <=> $h{$b}[0] } keys %h;
    my $s = join ",", map { $h{$_}[1] } @k[0 .. $n / 10 - 1];
    my $c = () = $s =~ /x,/g;
    $total += $h{$k[-1]}[0] + $c;
}
my $expect = 4 * (($n - 1) + $n / 10 - 1);
if ($total != $expect) { print STDERR "FAIL perl: $total != $expect\n"; exit 1; }
printf "OK perl scale=%d checksum=%x\n", $n / 1000, $total;
