#!/usr/bin/env bash
# lua5.4 under the shim: a generated script of tables (array and hash
# parts), strings (small, and 64K+ built by rep/concat/gsub), closures,
# coroutines, metatables, sorting, string.pack and full garbage collections,
# printing checksums and writing a file. Hash-part order depends on
# addresses and a per-run seed, so the script only prints sorted views. See
# lib.sh for the comparison.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
prog_init "$@"
need /usr/bin/lua5.4

cat >"$IN/work.lua" <<'EOF'
local seed, out = tonumber(arg[1]), arg[2]
math.randomseed(seed)
local function checksum(s)
  local h = 0
  for i = 1, #s, 7 do h = (h * 31 + s:byte(i)) % 4294967291 end
  return string.format("%d:%08x", #s, h)
end

-- Words, counted in a hash table, sorted several ways.
local words, count = {}, {}
for i = 1, 120000 do
  local t = {}
  for k = 1, math.random(3, 12) do t[k] = string.char(96 + math.random(26)) end
  local w = table.concat(t)
  words[i] = w
  count[w] = (count[w] or 0) + 1
end
local keys = {}
for k in pairs(count) do keys[#keys + 1] = k end
table.sort(keys)
print("distinct", #keys, checksum(table.concat(keys, ",")))
table.sort(words, function(a, b) if #a ~= #b then return #a < #b end return a < b end)
print("by length", checksum(table.concat(words, " ")))

-- Closures and metatables: a memoised function, a vector type.
local function memo(f)
  local cache = {}
  return function(n) local v = cache[n]; if not v then v = f(n); cache[n] = v end; return v end
end
local fib; fib = memo(function(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end)
print("fib", fib(80))
local V = {}
V.__index = V
V.__add = function(a, b) return setmetatable({a[1] + b[1], a[2] + b[2]}, V) end
V.__tostring = function(v) return string.format("(%g,%g)", v[1], v[2]) end
local acc = setmetatable({0, 0}, V)
for i = 1, 100000 do acc = acc + setmetatable({i % 7, i % 11}, V) end
print("vector", tostring(acc))

-- Coroutines: a producer/consumer pipeline.
local prod = coroutine.wrap(function()
  for i = 1, 50000 do coroutine.yield(string.rep(string.char(65 + i % 26), i % 50)) end
  coroutine.yield(nil)
end)
local total, parts = 0, {}
while true do
  local s = prod()
  if not s then break end
  total = total + #s
  if #s == 49 then parts[#parts + 1] = s end
end
print("coroutine", total, #parts)

-- Big strings: rep, gsub, format, pack.
local big = string.rep("abcdefghij", 20000)
local swapped = big:gsub("(c)(d)", "%2%1")
local upper = swapped:upper():sub(1, 100000)
print("big", checksum(big), checksum(swapped), checksum(upper))
local packed = {}
for i = 1, 20000 do packed[i] = string.pack("<i4d", i, i / 3) end
local blob = table.concat(packed)
local sum = 0
for i = 1, #blob, 12 do local n, d = string.unpack("<i4d", blob, i); sum = sum + n + d end
print("pack", #blob, string.format("%.3f", sum))

-- Garbage: many short-lived tables, then full collections.
for round = 1, 5 do
  local junk = {}
  for i = 1, 40000 do junk[i] = {i, tostring(i), {i}} end
  junk = nil
  collectgarbage("collect")
end
print("gc", collectgarbage("count") < 100000)

local f = assert(io.open(out, "w"))
for i = 1, #keys, 97 do f:write(keys[i], " ", count[keys[i]], "\n") end
f:close()
print("done")
EOF

workload() {
  lua5.4 "$IN/work.lua" "$SEED" "$OUT/sample.txt"
}

compare_runs workload
