#!/usr/bin/env bash
# redis-server under the shim, on 127.0.0.1 only, at a free port chosen at
# run time (no other address is ever contacted):
#   1. start the server (no persistence, no unix socket) and wait for PING;
#   2. load 3000 known keys through `redis-cli --pipe` (values under 256
#      bytes, up to 16K, and 64K..1M, so that every size route is taken),
#      then GET a sample back and check each value byte for byte against
#      the generated one;
#   3. redis-benchmark -n 20000 (two client threads): every test must
#      complete without error; the final counters, list length and the
#      DEBUG DIGEST of the whole dataset are printed;
#   4. BGSAVE (the server forks; the child writes the dump under the
#      shim), then a second server loads that dump: same digest;
#   5. with the shim: the server's memory map shows every pool of the
#      configuration holding data (committed pages past its header);
#   6. SHUTDOWN NOSAVE: the server exits with status 0.
# The clients (redis-cli, redis-benchmark) run under the shim too. See
# lib.sh for the comparison of the two runs.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
prog_init "$@"
need /usr/bin/redis-server /usr/bin/redis-cli /usr/bin/redis-benchmark \
  /usr/bin/python3 awk

# The known keys, generated once (no shim): a RESP stream for --pipe, the
# value of every 10th key and of every big key in its own file to check.
mkdir "$IN/values"
awk -v seed="$SEED" -v dir="$IN/values" '
BEGIN {
  srand(seed)
  for (i = 0; i < 3000; i++) {
    r = rand()
    n = (i % 250 == 0) ? 65536 + int(rand() * 1000000) : (r < 0.7 ? 1 + int(rand() * 200) : 256 + int(rand() * 16000))
    c = sprintf("%c", 97 + i % 26)
    v = sprintf("v%d-", i)
    while (length(v) < n) v = v c v
    v = substr(v, 1, n)
    key = "known:" i
    printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(key), key, length(v), v
    if (i % 10 == 0 || n > 65536) {
      printf "%s", v > (dir "/" key)
      close(dir "/" key)
    }
  }
}' >"$IN/load.resp"

workload() {
  local port rc=0 key
  pid='' pid2=''  # global: the EXIT trap reads them
  free_port() {
    /usr/bin/python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
  }
  cli() { redis-cli -h 127.0.0.1 -p "$port" "$@"; }
  start() {  # start DIR: a server in DIR on a fresh free port; sets pid
    for _ in 1 2 3; do
      port=$(free_port)
      redis-server --port "$port" --bind 127.0.0.1 --protected-mode yes \
        --unixsocket "" --save "" --appendonly no --daemonize no \
        --dir "$1" --logfile "$1/redis.log" --enable-debug-command local \
        2>"$1/server.err" &
      pid=$!
      for _ in $(seq 1 100); do
        [[ $(cli ping 2>/dev/null) == PONG ]] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    done
    echo "redis-server did not answer PING (see $1/redis.log)" >&2
    cat "$1/server.err" >&2
    return 1
  }
  stop() {  # SHUTDOWN NOSAVE, then the server's exit status and its stderr
    cli shutdown nosave >/dev/null 2>&1 || true
    local st=0
    wait "$pid" || st=$?
    echo "server exit status $st"
    cat "$1/server.err" >&2
  }
  # Leave no server behind, whatever happens.
  trap 'kill ${pid:-} ${pid2:-} 2>/dev/null || true' EXIT

  mkdir s1 s2
  start "$PWD/s1"

  # 2. Known keys in, values back.
  cli --pipe <"$IN/load.resp" | tail -n 1
  cli dbsize
  for f in "$IN"/values/*; do
    key=${f##*/}
    # --raw: the value as is, then a newline.
    cli --raw get "$key" | head -c -1 | cmp -s - "$f" ||
      { echo "GET $key: wrong value" >&2; rc=1; }
  done
  echo "checked $(find "$IN/values" -type f | wc -l) values"

  # 3. The benchmark: every test completes, no error line.
  redis-benchmark -h 127.0.0.1 -p "$port" -n 20000 -c 20 --threads 2 -q \
    --csv -t set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,lrange_100,mset \
    >bench.csv 2>bench.err || { echo "redis-benchmark failed" >&2; rc=1; }
  cut -d, -f1 bench.csv
  if grep -i -E 'error|refused' bench.csv bench.err >&2; then rc=1; fi
  cli get counter:__rand_int__
  cli llen mylist
  cli hlen myhash
  cli dbsize
  local digest
  digest=$(cli debug digest)
  echo "digest $digest"

  # 4. BGSAVE in a forked child, then a second server loads the dump.
  cli bgsave >/dev/null
  for _ in $(seq 1 200); do
    cli info persistence | grep -q '^rdb_bgsave_in_progress:0' && break
    sleep 0.1
  done
  cli info persistence | grep -E '^rdb_last_bgsave_status' | tr -d '\r'
  mv s1/dump.rdb s2/

  # 5. Under the shim: every pool of the configuration holds data.
  if [[ $MODE == shim ]]; then
    pools_hold_data "$pid" s1/server.err || rc=1
  fi

  # 6. Stop; the second server, from the dump.
  stop "$PWD/s1"
  start "$PWD/s2"
  pid2=$pid
  [[ $(cli debug digest) == "$digest" ]] ||
    { echo "the dump reloaded has another digest" >&2; rc=1; }
  cli dbsize
  stop "$PWD/s2"
  pid='' pid2=''
  return "$rc"
}

# pools_hold_data PID ERRFILE: checks in /proc/PID/smaps that every pool of
# PROGRAMS_POOLS has resident pages past its first mapping (the first one
# holds the pool's header and descriptors; data comes after). The pools'
# ranges come from the "pool 'NAME' open at BASE, capacity N" lines.
pools_hold_data() {
  local pid=$1 err=$2 pool line base cap ok=0
  for pool in $POOLS; do
    line=$(grep -m 1 -E "^mmpool: pool '$pool' open at " "$err") || {
      echo "pool '$pool': no open line from the server" >&2
      ok=1
      continue
    }
    base=$(sed -E 's/.* open at (0x[0-9a-f]+), capacity ([0-9]+).*/\1/' <<<"$line")
    cap=$(sed -E 's/.* open at (0x[0-9a-f]+), capacity ([0-9]+).*/\2/' <<<"$line")
    local kb
    kb=$(awk -v lo=$((base)) -v hi=$((base + cap)) '
      /^[0-9a-f]+-[0-9a-f]+ / {
        split($1, r, "-")
        start = strtonum_hex(r[1])
        inside = (start >= lo && start < hi)
        first = inside && !seen++
        next
      }
      /^Rss:/ && inside && !first { kb += $2 }
      END { print kb + 0 }
      function strtonum_hex(s,    n, k, c) {
        n = 0
        for (k = 1; k <= length(s); k++) {
          c = index("0123456789abcdef", substr(s, k, 1)) - 1
          n = n * 16 + c
        }
        return n
      }' "/proc/$pid/smaps")
    if ((kb == 0)); then
      echo "pool '$pool' holds no data in redis-server (no resident page past its header)" >&2
      ok=1
    fi
  done
  return $ok
}

compare_runs workload
