-- tollgate admit v4
-- Checks and takes, for every scope of a request at once, all or nothing: one request from
-- the requests-per-minute bucket, the estimated tokens from the tokens-per-minute bucket, a
-- concurrency slot, and a budget reservation. Money is integer nano-USD.
--
-- ARGV: request_id, reservation_ttl_ms, n_scopes, then per scope:
--   rpm, tpm, tokens, max_concurrent, reserve, n_budgets, then per budget: limit
-- KEYS per scope: rate buckets hash (r, rts: requests; t, tts: tokens), concurrency zset,
--   then per budget: budget hash (spent, reserved), reservations zset (member
--   "request_id:amount", score = expiry in ms)
-- Buckets hold 1/60000-token units: a limit of L per minute refills L units per ms, so all
-- arithmetic stays in integers.
--
-- Returns {"ok", rpm_left, tpm_left, ...} | {"refused", scope, kind, a, b, c} |
--   {"init", scope, budget, ...}

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local request_id = ARGV[1]
local ttl_ms = tonumber(ARGV[2])
local n_scopes = tonumber(ARGV[3])

-- The bucket's level now, from its stored level and time (a missing bucket is full).
local function refill(level, ts, limit)
  local capacity = limit * 60000
  level = tonumber(level)
  ts = tonumber(ts)
  if level == nil or ts == nil then return capacity end
  local refilled = level + (now - ts) * limit
  if refilled > capacity then return capacity end
  return refilled
end

-- Releases reservations whose instance never settled them (it died): their expiry passed.
local function purge_reservations(b_key, rz_key)
  local expired = redis.call('ZRANGEBYSCORE', rz_key, '-inf', now)
  if #expired == 0 then return end
  local total = 0
  for _, member in ipairs(expired) do
    total = total + (tonumber(string.match(member, ':(%-?%d+)$')) or 0)
  end
  redis.call('ZREMRANGEBYSCORE', rz_key, '-inf', now)
  redis.call('HINCRBY', b_key, 'reserved', -total)
end

-- Phase 1: check everything, take nothing.
local scopes = {}
local needs_init = {}
local a, k = 4, 1
for s = 1, n_scopes do
  local scope = {
    rpm = tonumber(ARGV[a]), tpm = tonumber(ARGV[a + 1]), tokens = tonumber(ARGV[a + 2]),
    conc = tonumber(ARGV[a + 3]), reserve = tonumber(ARGV[a + 4]), n_budgets = tonumber(ARGV[a + 5]),
    rate_key = KEYS[k], conc_key = KEYS[k + 1], budgets = {}
  }
  a = a + 6
  k = k + 2
  for b = 1, scope.n_budgets do
    scope.budgets[b] = { limit = tonumber(ARGV[a]), b_key = KEYS[k], rz_key = KEYS[k + 1] }
    a = a + 1
    k = k + 2
  end
  scopes[s] = scope

  for b, budget in ipairs(scope.budgets) do
    purge_reservations(budget.b_key, budget.rz_key)
    local counters = redis.call('HMGET', budget.b_key, 'spent', 'reserved')
    if not counters[1] then
      table.insert(needs_init, s)
      table.insert(needs_init, b)
    else
      local committed = tonumber(counters[1]) + (tonumber(counters[2]) or 0)
      if committed + scope.reserve > budget.limit then
        return {'refused', s, 'budget', b, committed, budget.limit}
      end
    end
  end
  if scope.rpm > 0 or scope.tpm > 0 then
    local state = redis.call('HMGET', scope.rate_key, 'r', 'rts', 't', 'tts')
    if scope.rpm > 0 then
      scope.rpm_level = refill(state[1], state[2], scope.rpm)
      if scope.rpm_level < 60000 then
        local wait = math.ceil((60000 - scope.rpm_level) / scope.rpm)
        return {'refused', s, 'rpm', scope.rpm, 0, wait}
      end
    end
    if scope.tpm > 0 then
      scope.tpm_need = math.min(scope.tokens, scope.tpm) * 60000
      scope.tpm_level = refill(state[3], state[4], scope.tpm)
      if scope.tpm_level < scope.tpm_need then
        local wait = math.ceil((scope.tpm_need - scope.tpm_level) / scope.tpm)
        return {'refused', s, 'tpm', scope.tpm, math.floor(scope.tpm_level / 60000), wait}
      end
    end
  end
  if scope.conc > 0 then
    redis.call('ZREMRANGEBYSCORE', scope.conc_key, '-inf', now)
    local in_flight = redis.call('ZCARD', scope.conc_key)
    if in_flight >= scope.conc then
      return {'refused', s, 'concurrency', scope.conc, in_flight, 1000}
    end
  end
end
if #needs_init > 0 then
  local reply = {'init'}
  for _, v in ipairs(needs_init) do table.insert(reply, v) end
  return reply
end

-- Phase 2: take everything.
local expires = now + ttl_ms
local reply = {'ok'}
for _, scope in ipairs(scopes) do
  local rpm_left, tpm_left = -1, -1
  if scope.rpm > 0 and scope.tpm > 0 then
    redis.call('HSET', scope.rate_key, 'r', scope.rpm_level - 60000, 'rts', now,
      't', scope.tpm_level - scope.tpm_need, 'tts', now)
  elseif scope.rpm > 0 then
    redis.call('HSET', scope.rate_key, 'r', scope.rpm_level - 60000, 'rts', now)
  elseif scope.tpm > 0 then
    redis.call('HSET', scope.rate_key, 't', scope.tpm_level - scope.tpm_need, 'tts', now)
  end
  if scope.rpm > 0 or scope.tpm > 0 then
    -- A bucket idle for a minute is full again, which is what a missing one means.
    redis.call('PEXPIRE', scope.rate_key, 120000)
  end
  if scope.rpm > 0 then rpm_left = math.floor((scope.rpm_level - 60000) / 60000) end
  if scope.tpm > 0 then tpm_left = math.floor((scope.tpm_level - scope.tpm_need) / 60000) end
  table.insert(reply, rpm_left)
  table.insert(reply, tpm_left)
  if scope.conc > 0 then
    redis.call('ZADD', scope.conc_key, expires, request_id)
    redis.call('PEXPIRE', scope.conc_key, ttl_ms + 60000)
  end
  local member = request_id .. ':' .. scope.reserve
  for _, budget in ipairs(scope.budgets) do
    -- The budget hash got its expiry when it was rebuilt. The reservation set empties
    -- itself as requests settle (and expired entries are purged above), so it needs none.
    redis.call('HINCRBY', budget.b_key, 'reserved', scope.reserve)
    redis.call('ZADD', budget.rz_key, expires, member)
  end
end
return reply
