#ifndef TOKENBROKER_SERVICE_SHARED_SHARED_SCRIPTS_H_
#define TOKENBROKER_SERVICE_SHARED_SHARED_SCRIPTS_H_

// The Lua scripts of the shared token state (RedisClient::Eval runs them
// with EVALSHA). Each is atomic in Redis; that is what makes the lease, the
// fence compare and the revocation check race-free between replicas. In a
// header of their own so that tests can drive them directly (e.g. a write
// with a stale fence).
//
// Common arguments: the revocation generation of a request is
// HGET revgen <app>, plus HGET revgen <app "\x1f" user> for a user's token
// (both only grow, so the sum changes whenever either does).

namespace tokenbroker::internal {

// KEYS: token, revgen. ARGV: app field, user field ("" for none).
// Returns {record or nil, revgen}.
inline constexpr char kReadTokenScript[] = R"lua(
local g = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if ARGV[2] ~= '' then
  g = g + tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
end
return {redis.call('GET', KEYS[1]), g}
)lua";

// KEYS: lease, fence, token. ARGV: owner id, ttl_ms, the fence of the
// record the caller read (0 for none).
// Returns {2, fence} if the stored record changed since that read (read it
// again: it may be adoptable), {0, pttl} if someone holds the lease, else
// {1, fence}: a new fencing number, and the lease is ours as
// "<owner>:<fence>". Checking the record here closes the window between a
// follower's read and a holder's write-and-release, in which the follower
// would otherwise take the released lease and fetch a second time.
inline constexpr char kAcquireLeaseScript[] = R"lua(
local cur = redis.call('GET', KEYS[3])
local seen = 0
if cur then seen = tonumber(string.match(cur, '^(%d+):')) or 0 end
if seen ~= tonumber(ARGV[3]) then return {2, seen} end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('PTTL', KEYS[1])}
end
local f = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. f, 'NX', 'PX', ARGV[2])
return {1, f}
)lua";

// KEYS: lease. ARGV: "<owner>:<fence>", ttl_ms. 1 if renewed, 0 if the
// lease is no longer ours.
inline constexpr char kRenewLeaseScript[] = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
)lua";

// KEYS: lease. ARGV: "<owner>:<fence>". 1 if deleted, 0 if not ours.
inline constexpr char kReleaseLeaseScript[] = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
)lua";

// KEYS: token, revgen, events channel (not a key; passed as KEYS so that the
// script names everything it touches). ARGV: fence, revgen the fetch started
// under, app field, user field, record value, px, "token" message, and the
// stored value the writer found unreadable ("" for none).
// Returns -1 if the app (or user) was revoked since the fetch started, 0 if
// the stored record's fence is >= ours (a newer holder wrote: we are fenced
// out), 1 if written (and the message published). A stored value that is
// still exactly the one the writer could not open (sealed with a key it
// lacks, copied from another key, altered) is replaced whatever fence its
// unauthenticated header claims: a planted value with a huge fence must not
// block every write.
inline constexpr char kWriteTokenScript[] = R"lua(
local g = tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or '0')
if ARGV[4] ~= '' then
  g = g + tonumber(redis.call('HGET', KEYS[2], ARGV[4]) or '0')
end
if g > tonumber(ARGV[2]) then return -1 end
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[8] then
  local f = tonumber(string.match(cur, '^(%d+):'))
  if f and f >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[5], 'PX', ARGV[6])
redis.call('PUBLISH', KEYS[3], ARGV[7])
return 1
)lua";

// The revgen hash also holds the epoch of Redis's data, under a field no
// app can have ("\x1fepoch"): set by whichever script runs first on an empty
// Redis, so a change of epoch tells a replica that Redis lost its data and
// its generations count afresh.

// KEYS: revgen, events channel. ARGV: field, message prefix, message suffix,
// epoch (used if none is set). HINCRBY the field and publish
// prefix .. gen .. suffix. Returns the new generation.
inline constexpr char kBumpRevgenScript[] = R"lua(
redis.call('HSETNX', KEYS[1], '\31epoch', ARGV[4])
local g = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('PUBLISH', KEYS[2], ARGV[2] .. g .. ARGV[3])
return g
)lua";

// KEYS: config_generation, events channel, revgen. ARGV: epoch (used if none
// is set). INCR and publish "reload <gen>". Returns the new generation.
inline constexpr char kBumpConfigScript[] = R"lua(
redis.call('HSETNX', KEYS[3], '\31epoch', ARGV[1])
local g = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', KEYS[2], 'reload ' .. g)
return g
)lua";

// KEYS: revgen, config_generation. ARGV: epoch (set if none is).
// Returns {HGETALL revgen, config generation or nil, epoch}.
inline constexpr char kSyncScript[] = R"lua(
redis.call('HSETNX', KEYS[1], '\31epoch', ARGV[1])
return {redis.call('HGETALL', KEYS[1]), redis.call('GET', KEYS[2]),
        redis.call('HGET', KEYS[1], '\31epoch')}
)lua";

}  // namespace tokenbroker::internal

#endif  // TOKENBROKER_SERVICE_SHARED_SHARED_SCRIPTS_H_
