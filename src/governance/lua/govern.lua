-- tollgate govern v9
-- One call carries a batch from one gateway instance: first the settlements, then the lease
-- renewals, then the admissions, each in the order the instance queued them. Every key is read at most once and
-- written at most once per call, so a batch costs little more than a single request.
--
-- Admission checks and takes, for every scope of a request at once, all or nothing: one
-- request from the requests-per-minute bucket, the estimated tokens from the tokens-per-minute
-- bucket, a concurrency slot, and a budget reservation. Settlement replaces a request's
-- reservations by what it used: the reservation becomes the actual cost, the token estimate
-- the actual tokens, and the concurrency slot is freed. Money is integer nano-USD.
--
-- KEYS: every key the batch touches, once; requests name keys by their index in KEYS.
-- ARGV: reservation_ttl_ms, reservation_bucket_ms, n_settlements, n_admissions, n_leases,
--   then the settlements, then the leases, then the admissions:
--   settlement: request_id, n_scopes, then per scope: rate, conc, tpm, token_delta
--     (actual - estimate), holds_slot (1 when admission took a concurrency slot), reserved
--     (what admission reserved on each of the scope's budgets), n_budgets, then per budget:
--     budget, reservation field (as admission answered it), actual cost
--   admission: request_id, n_scopes, then per scope: rate, conc, rpm, tpm, tokens,
--     max_concurrent, reserve, n_budgets, then per budget: budget, limit
--   lease (one gate of one instance): lease_id, lease_ttl_ms, share, min_units, rate, rpm, tpm,
--     requests_back, requests_want, tokens_back, tokens_want, tokens_unit, n_budgets, then per
--     budget: budget, limit, spent_total, spent_acked, base, want, unit
-- A lease is a slice of a gate's headroom one instance admits against in process. Its
-- budget part is a reservation like any other: in the budget hash, "l:<lease id>" holds the
-- amount, "e:<lease id>" when the lease expires (ms), pushed back by every renewal, and
-- "c:<lease id>" how much of its spend is counted in `spent`. A renewal's budget fields are
-- absolute: spent_total is everything spent under the lease (what `c` lacks is counted),
-- base what the lease holds before this grant. So a renewal that ran unanswered is put right
-- by the next. Its rate part is tokens taken from the buckets (given back with `*_back`).
-- Nothing is granted unless at least min_units requests' worth (`unit` each) is free, never
-- more than 1/share of what is free, and nothing while the budget is under pressure: field
-- "p" is set when an admission is refused that would have fitted without the leases.
-- Keys per scope: rate buckets hash (r, rts: requests; t, tts: tokens; x: when its expiry was
--   last pushed back), concurrency zset (member request_id, score = expiry in ms); per budget
--   and period: budget hash with `spent` and the reservations, grouped by when they expire:
--   field "r:<expiry ms>" holds the sum reserved by requests admitted in one bucket of time
--   (reservation_bucket_ms), which all expire together, reservation_ttl_ms after the bucket
--   ends. A reservation is thus held at least the ttl and at most the ttl plus one bucket.
-- Buckets hold 1/60000-token units: a limit of L per minute refills L units per ms, so all
-- arithmetic stays in integers.
--
-- Returns one reply per admission, in order: {"ok", reservation field, rpm_left, tpm_left,
--   ... per scope, then the tightest budget: scope, budget, what is left of it} |
--   {"refused", scope, kind, a, b, c} | {"init", scope, budget, ...}; then one per lease:
--   {requests granted, requests left, tokens granted, tokens left, then per budget: granted
--   (-1 when the counter is missing, -2 when the lease had expired), what the lease now
--   holds, what is left free, 1 under pressure (else 0)}
-- What is left of a budget is its limit less its spend and every reservation held on it,
-- this request's included: the least the next request can count on.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl_ms = tonumber(ARGV[1])
local bucket_ms = tonumber(ARGV[2])
-- Numbers go to Redis as integer text: Redis would print a Lua number with "%.17g", which is
-- slow for numbers this large.
local function int(n) return string.format('%d', n) end
-- Lua numbers are doubles, and '%d' of one at or beyond 2^63 wraps to a huge negative number,
-- which would turn a spent counter into an unlimited budget. Spent counters and token-bucket
-- deficits therefore saturate at 2^62 (limits.rs MAX_SPENT_NANOS): far above any budget
-- (at most 10^18 nano-USD), and with room for the reservations added to it in a reply.
local SATURATED = 4611686018427387904
local now_text = int(now)
local expires = int(now + ttl_ms)
-- The budget field this batch's reservations go to.
local reservation_field = 'r:' .. int((math.floor(now / bucket_ms) + 1) * bucket_ms + ttl_ms)
local cursor = 5

local function next_arg()
  cursor = cursor + 1
  return ARGV[cursor]
end
local function next_num() return tonumber(next_arg()) end
-- A key index of 0 stands for a key the request does not use (nil).
local function next_key() return KEYS[tonumber(next_arg())] end

-- Rate buckets, read once per key. A bucket's level is refilled to now when first used; a
-- missing bucket is full.
local rates = {}
local function rate_state(key)
  local state = rates[key]
  if state == nil then
    state = { raw = redis.call('HMGET', key, 'r', 'rts', 't', 'tts', 'x') }
    rates[key] = state
  end
  return state
end
local function bucket_level(state, field, limit)
  local capacity = limit * 60000
  local level = state[field]
  if level == nil then
    local at = field == 'r' and 1 or 3
    local stored, ts = tonumber(state.raw[at]), tonumber(state.raw[at + 1])
    if stored == nil or ts == nil then
      level = capacity
    else
      level = stored + (now - ts) * limit
    end
  end
  if level > capacity then level = capacity end
  state[field] = level
  return level
end

-- Concurrency slots, counted once per key after dropping slots whose instance died.
local concs = {}
local function conc_state(key)
  local state = concs[key]
  if state == nil then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now_text)
    state = { count = redis.call('ZCARD', key), adds = {} }
    concs[key] = state
  end
  return state
end

-- Budgets, read once per key. Reservation fields whose expiry passed belong to requests
-- whose instance never settled them (it died): they are dropped.
local budgets = {}
local function budget_state(key)
  local state = budgets[key]
  if state == nil then
    state = { spent = nil, reserved = 0, fields = {}, changed = {}, expired = {},
      leases = {}, lease_expiry = {}, lease_spent = {}, leases_changed = {}, pressure = 0 }
    local all = redis.call('HGETALL', key)
    local held, expiry, counted = {}, {}, {}
    for i = 1, #all, 2 do
      local field, value = all[i], all[i + 1]
      local kind, id = string.sub(field, 1, 2), string.sub(field, 3)
      if field == 'spent' then
        state.spent = tonumber(value)
        if state.spent ~= nil and state.spent > SATURATED then state.spent = SATURATED end
      elseif field == 'p' then
        state.pressure = tonumber(value) or 0
      elseif kind == 'r:' then
        if (tonumber(id) or 0) <= now then
          table.insert(state.expired, field)
        else
          state.fields[field] = tonumber(value) or 0
          state.reserved = state.reserved + state.fields[field]
        end
      elseif kind == 'l:' then
        held[id] = tonumber(value) or 0
      elseif kind == 'e:' then
        expiry[id] = tonumber(value) or 0
      elseif kind == 'c:' then
        counted[id] = tonumber(value) or 0
      end
    end
    -- A lease whose instance stopped renewing it (it died) is dropped like a reservation.
    local function lease_fields(id)
      if (expiry[id] or 0) <= now then
        if held[id] ~= nil then table.insert(state.expired, 'l:' .. id) end
        if expiry[id] ~= nil then table.insert(state.expired, 'e:' .. id) end
        if counted[id] ~= nil then table.insert(state.expired, 'c:' .. id) end
        held[id], expiry[id], counted[id] = nil, nil, nil
      elseif state.leases[id] == nil then
        state.leases[id] = held[id] or 0
        state.lease_expiry[id] = expiry[id]
        state.lease_spent[id] = counted[id]
        state.reserved = state.reserved + state.leases[id]
      end
    end
    for id in pairs(held) do lease_fields(id) end
    for id in pairs(expiry) do lease_fields(id) end
    for id in pairs(counted) do lease_fields(id) end
    budgets[key] = state
  end
  return state
end

-- Settlements. Slots and reservations are released before any admission of the batch looks.
local n_settle = tonumber(ARGV[3])
local n_admit = tonumber(ARGV[4])
local n_lease = tonumber(ARGV[5])
local slots_freed = {}     -- conc key -> request ids
for _ = 1, n_settle do
  local request_id = next_arg()
  local n_scopes = next_num()
  for _ = 1, n_scopes do
    local rate_key, conc_key = next_key(), next_key()
    local tpm, delta = next_num(), next_num()
    local holds_slot = next_arg() == '1'
    local reserved = next_num()
    local n_budgets = next_num()
    if tpm > 0 and delta ~= 0 then
      local state = rate_state(rate_key)
      state.t = math.max(bucket_level(state, 't', tpm) - delta * 60000, -SATURATED)
      if state.t > tpm * 60000 then state.t = tpm * 60000 end
      state.t_dirty = true
    end
    if holds_slot then
      local freed = slots_freed[conc_key]
      if freed == nil then
        freed = {}
        slots_freed[conc_key] = freed
      end
      table.insert(freed, request_id)
    end
    for _ = 1, n_budgets do
      local state = budget_state(next_key())
      local field, actual = next_arg(), next_num()
      -- A counter Redis lost (or that outlived its period) is not created here: a lost one
      -- is rebuilt from the ledger, which has this request.
      if state.spent ~= nil then
        state.spent = math.min(state.spent + actual, SATURATED)
        state.spent_changed = true
        -- A reservation that already expired (and was dropped) is not released twice.
        if state.fields[field] ~= nil then
          state.fields[field] = state.fields[field] - reserved
          state.reserved = state.reserved - reserved
          state.changed[field] = true
        end
      end
    end
  end
end
for conc_key, freed in pairs(slots_freed) do
  redis.call('ZREM', conc_key, unpack(freed))
end

-- Lease renewals, after the settlements (which free what they held) and before the batch's
-- admissions. A grant is at most 1/share of what is free, and nothing unless min_units
-- requests' worth is free.
local function grant_of(want, free, share, min_free)
  if want <= 0 or free < min_free or free <= 0 then return 0 end
  return math.max(math.min(want, math.floor(free / share)), 0)
end
local function lease_rate(reply, state, field, limit, back, want, share, min_free)
  if state == nil or limit <= 0 then
    table.insert(reply, 0); table.insert(reply, 0)
    return
  end
  local capacity = limit * 60000
  local level = bucket_level(state, field, limit)
  if back ~= 0 then
    level = math.min(math.max(level + back * 60000, -SATURATED), capacity)
  end
  local free = math.floor(level / 60000)
  local grant = grant_of(want, free, share, min_free)
  state[field] = level - grant * 60000
  state[field .. '_dirty'] = true
  table.insert(reply, grant)
  table.insert(reply, free - grant)
end
local lease_replies = {}
for i = 1, n_lease do
  local lease_id, lease_ttl = next_arg(), next_num()
  local share, min_units = math.max(next_num(), 1), next_num()
  local rate_key, rpm, tpm = next_key(), next_num(), next_num()
  local req_back, req_want = next_num(), next_num()
  local tok_back, tok_want, tok_unit = next_num(), next_num(), next_num()
  local reply = {}
  local rate = nil
  if rate_key ~= nil then rate = rate_state(rate_key) end
  lease_rate(reply, rate, 'r', rpm, req_back, req_want, share, min_units)
  lease_rate(reply, rate, 't', tpm, tok_back, tok_want, share, min_units * tok_unit)
  for _ = 1, next_num() do
    local state = budget_state(next_key())
    local limit, spent_total, spent_acked = next_num(), next_num(), next_num()
    local base, want, unit = next_num(), next_num(), next_num()
    if state.spent == nil then
      -- Rebuilt from the ledger by the next admission; the ledger has this lease's spend.
      table.insert(reply, -1); table.insert(reply, 0); table.insert(reply, 0)
      table.insert(reply, 0)
    else
      local counted = state.lease_spent[lease_id]
      -- Its fields are gone while the instance holds or has spent something: it expired.
      local expired = counted == nil and (spent_acked > 0 or base > 0)
      local already = counted or spent_acked
      if spent_total > already then
        state.spent = math.min(state.spent + (spent_total - already), SATURATED)
        state.spent_changed = true
      end
      local old = state.leases[lease_id] or 0
      local free = limit - state.spent - (state.reserved - old + base)
      local pressured = state.pressure > now - 2000
      local grant = 0
      if not expired and not pressured then
        grant = grant_of(want, free, share, min_units * unit)
      end
      local now_held = base + grant
      state.reserved = state.reserved - old + now_held
      state.leases[lease_id] = now_held
      state.lease_expiry[lease_id] = now + lease_ttl
      state.lease_spent[lease_id] = math.max(already, spent_total)
      state.leases_changed[lease_id] = true
      table.insert(reply, expired and -2 or grant)
      table.insert(reply, now_held)
      table.insert(reply, free - grant)
      table.insert(reply, pressured and 1 or 0)
    end
  end
  lease_replies[i] = reply
end

-- Admissions, each all or nothing: phase 1 checks every scope and takes nothing; phase 2
-- takes from the in-memory state, which is written back once at the end.
local function admit(request_id, scopes)
  local needs_init = {}
  for s, scope in ipairs(scopes) do
    for b, budget in ipairs(scope.budgets) do
      local state = budget_state(budget.key)
      budget.state = state
      if state.spent == nil then
        table.insert(needs_init, s)
        table.insert(needs_init, b)
      elseif state.spent + state.reserved + scope.reserve > budget.limit then
        local leased = 0
        for _, amount in pairs(state.leases) do leased = leased + amount end
        -- Leases hold what this request needs: they give back what they do not use.
        local for_leases = leased > 0
          and state.spent + state.reserved - leased + scope.reserve <= budget.limit
        if for_leases then
          state.pressure = now
          state.pressure_changed = true
        end
        return {'refused', s, 'budget', b, state.spent + state.reserved, budget.limit,
          for_leases and 1 or 0}
      end
    end
    if scope.rpm > 0 or scope.tpm > 0 then
      local state = rate_state(scope.rate_key)
      scope.rate = state
      if scope.rpm > 0 then
        local level = bucket_level(state, 'r', scope.rpm)
        if level < 60000 then
          local wait = math.ceil((60000 - level) / scope.rpm)
          return {'refused', s, 'rpm', scope.rpm, 0, wait}
        end
      end
      if scope.tpm > 0 then
        scope.tpm_need = math.min(scope.tokens, scope.tpm) * 60000
        local level = bucket_level(state, 't', scope.tpm)
        if level < scope.tpm_need then
          local wait = math.ceil((scope.tpm_need - level) / scope.tpm)
          return {'refused', s, 'tpm', scope.tpm, math.floor(level / 60000), wait}
        end
      end
    end
    if scope.conc > 0 then
      local state = conc_state(scope.conc_key)
      if state.count >= scope.conc then
        return {'refused', s, 'concurrency', scope.conc, state.count, 1000}
      end
    end
  end
  if #needs_init > 0 then
    local reply = {'init'}
    for _, v in ipairs(needs_init) do table.insert(reply, v) end
    return reply
  end

  local reply = {'ok', reservation_field}
  for _, scope in ipairs(scopes) do
    local rpm_left, tpm_left = -1, -1
    if scope.rpm > 0 then
      scope.rate.r = scope.rate.r - 60000
      scope.rate.r_dirty = true
      rpm_left = math.floor(scope.rate.r / 60000)
    end
    if scope.tpm > 0 then
      scope.rate.t = scope.rate.t - scope.tpm_need
      scope.rate.t_dirty = true
      tpm_left = math.floor(scope.rate.t / 60000)
    end
    table.insert(reply, rpm_left)
    table.insert(reply, tpm_left)
    if scope.conc > 0 then
      local state = concs[scope.conc_key]
      state.count = state.count + 1
      table.insert(state.adds, expires)
      table.insert(state.adds, request_id)
    end
    for _, budget in ipairs(scope.budgets) do
      local state = budget.state
      state.fields[reservation_field] = (state.fields[reservation_field] or 0) + scope.reserve
      state.reserved = state.reserved + scope.reserve
      state.changed[reservation_field] = true
    end
  end
  -- Read after every scope has reserved: one budget hash can belong to two scopes' lists.
  local tight_s, tight_b, tight_left = 0, 0, 0
  for s, scope in ipairs(scopes) do
    for b, budget in ipairs(scope.budgets) do
      local left = budget.limit - budget.state.spent - budget.state.reserved
      if tight_s == 0 or left < tight_left then
        tight_s, tight_b, tight_left = s, b, left
      end
    end
  end
  if tight_s > 0 then
    table.insert(reply, tight_s)
    table.insert(reply, tight_b)
    table.insert(reply, math.max(tight_left, 0))
  end
  return reply
end

local replies = {}
for i = 1, n_admit do
  local request_id = next_arg()
  local n_scopes = next_num()
  local scopes = {}
  for s = 1, n_scopes do
    local scope = {
      rate_key = next_key(), conc_key = next_key(), rpm = next_num(), tpm = next_num(),
      tokens = next_num(), conc = next_num(), reserve = next_num(), budgets = {}
    }
    for b = 1, next_num() do
      scope.budgets[b] = { key = next_key(), limit = next_num() }
    end
    scopes[s] = scope
  end
  replies[i] = admit(request_id, scopes)
end
for i = 1, n_lease do replies[n_admit + i] = lease_replies[i] end

-- Write back what changed, once per key.
for key, state in pairs(rates) do
  local fields = {}
  if state.r_dirty then
    table.insert(fields, 'r'); table.insert(fields, int(state.r))
    table.insert(fields, 'rts'); table.insert(fields, now_text)
  end
  if state.t_dirty then
    table.insert(fields, 't'); table.insert(fields, int(state.t))
    table.insert(fields, 'tts'); table.insert(fields, now_text)
  end
  if #fields > 0 then
    -- A bucket idle for a minute is full again, which is what a missing one means; the
    -- expiry is pushed back every half minute rather than on every write.
    local push_expiry = now - (tonumber(state.raw[5]) or 0) > 30000
    if push_expiry then
      table.insert(fields, 'x'); table.insert(fields, now_text)
    end
    redis.call('HSET', key, unpack(fields))
    if push_expiry then redis.call('PEXPIRE', key, '120000') end
  end
end
for key, state in pairs(concs) do
  if #state.adds > 0 then
    redis.call('ZADD', key, unpack(state.adds))
    redis.call('PEXPIRE', key, int(ttl_ms + 60000))
  end
end
for key, state in pairs(budgets) do
  -- The budget hash got its expiry when it was rebuilt.
  local set, drop = {}, state.expired
  if state.spent_changed then
    table.insert(set, 'spent'); table.insert(set, int(state.spent))
  end
  for field in pairs(state.changed) do
    if state.fields[field] == 0 then
      table.insert(drop, field)
    else
      table.insert(set, field); table.insert(set, int(state.fields[field]))
    end
  end
  for id in pairs(state.leases_changed) do
    -- `e` and `c` stay until the lease expires, so a renewal that ran unanswered is not
    -- counted twice by the next.
    if state.leases[id] == 0 then
      table.insert(drop, 'l:' .. id)
    else
      table.insert(set, 'l:' .. id); table.insert(set, int(state.leases[id]))
    end
    table.insert(set, 'e:' .. id); table.insert(set, int(state.lease_expiry[id]))
    table.insert(set, 'c:' .. id); table.insert(set, int(state.lease_spent[id]))
  end
  if state.pressure_changed then
    table.insert(set, 'p'); table.insert(set, now_text)
  end
  if #set > 0 then redis.call('HSET', key, unpack(set)) end
  if #drop > 0 then redis.call('HDEL', key, unpack(drop)) end
end
return replies
