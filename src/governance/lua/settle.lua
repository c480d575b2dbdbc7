-- tollgate settle v4
-- Replaces a request's reservations by what it actually used, on every scope at once:
-- the budget reservation becomes the actual cost, the token estimate becomes the actual
-- tokens, and the concurrency slot is freed. A reservation that already expired (and was
-- released by admit's purge) is not released twice.
--
-- ARGV: request_id, n_scopes, then per scope: tpm, token_delta (actual - estimate),
--   holds_slot (1 when admission took a concurrency slot), reserved (what admission
--   reserved on this scope's budgets), n_budgets, then per budget: actual cost (nano-USD)
-- KEYS per scope: rate buckets hash, concurrency zset, then per budget: budget hash,
--   reservations zset

local request_id = ARGV[1]
local n_scopes = tonumber(ARGV[2])
local now = nil
local a, k = 3, 1
for s = 1, n_scopes do
  local tpm = tonumber(ARGV[a])
  local delta = tonumber(ARGV[a + 1])
  local holds_slot = ARGV[a + 2] == '1'
  local reserved = tonumber(ARGV[a + 3])
  local n_budgets = tonumber(ARGV[a + 4])
  local rate_key, conc_key = KEYS[k], KEYS[k + 1]
  a = a + 5
  k = k + 2
  if tpm > 0 and delta ~= 0 then
    if now == nil then
      local t = redis.call('TIME')
      now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    end
    local state = redis.call('HMGET', rate_key, 't', 'tts')
    local capacity = tpm * 60000
    local level = tonumber(state[1]) or capacity
    local ts = tonumber(state[2]) or now
    level = math.min(capacity, level + (now - ts) * tpm) - delta * 60000
    if level > capacity then level = capacity end
    redis.call('HSET', rate_key, 't', level, 'tts', now)
    redis.call('PEXPIRE', rate_key, 120000)
  end
  if holds_slot then
    redis.call('ZREM', conc_key, request_id)
  end
  local member = request_id .. ':' .. reserved
  for _ = 1, n_budgets do
    local actual = tonumber(ARGV[a])
    local b_key, rz_key = KEYS[k], KEYS[k + 1]
    a = a + 1
    k = k + 2
    if redis.call('ZREM', rz_key, member) == 1 then
      redis.call('HINCRBY', b_key, 'reserved', -reserved)
      redis.call('HINCRBY', b_key, 'spent', actual)
    elseif redis.call('HEXISTS', b_key, 'spent') == 1 then
      -- The reservation expired first; the spend still counts. A counter that Redis lost is
      -- rebuilt from the ledger, which has this request, so it is not created here.
      redis.call('HINCRBY', b_key, 'spent', actual)
    end
  end
end
return 1
