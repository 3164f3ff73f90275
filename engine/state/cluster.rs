//! The cluster store: rate counters, quotas and idempotency records in Redis, shared by
//! every gateway instance.
//!
//! Every check is one server-side Lua script (EVALSHA, falling back to EVAL when the
//! server answers NOSCRIPT, e.g. after a restart): the partner's GCRA, the route's GCRA
//! and the quotas are read, decided and written in one atomic step on the server's clock,
//! so instances never race each other and a refused call consumes nothing. Keys carry the
//! partner id in a hash tag (`{acme}`), so one call's keys share a Redis Cluster slot.
//!
//! Every call is bounded by `timeout`. After a failure Redis is left alone for `recheck`
//! and calls fail at once, so an outage costs partners no latency, only the tier's
//! declared fallback.

use super::{StateSettings, StoreError};
use crate::body::masking::SealedToken;
use crate::limits::calendar::Period;
use crate::limits::idempotency::{Found, StoredResponse, Ticket};
use crate::limits::{LimitRequest, Mode, Now, RawCheck, Verdict};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, FromRedisValue, RedisError, Script, ServerErrorKind, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// GCRA for the partner and the route, and the day and month quotas, in one step.
/// KEYS: partner rate, route rate, day quota, month quota.
/// ARGV: apply, cost, partner interval µs (0: none), partner burst, route interval µs,
/// route burst, route cost, day limit (0: none), month limit, day expiry, month expiry
/// (unix seconds).
/// Returns: allowed, then per rate (allowed, remaining, reset µs, retry µs), then per
/// quota (allowed, used).
const LIMIT_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local apply = ARGV[1] == '1'
local cost = tonumber(ARGV[2])
local function gcra(key, interval, burst, c)
  if interval <= 0 then return {1, 0, 0, 0, 0} end
  local tat = tonumber(redis.call('GET', key) or '0')
  local base = math.max(tat, now)
  local new_tat = base + c * interval
  local limit = burst * interval
  local ahead = new_tat - now
  if ahead <= limit then
    return {1, math.floor((limit - ahead) / interval), ahead, 0, new_tat}
  end
  local used = base - now
  return {0, math.floor(math.max(limit - used, 0) / interval), used, ahead - limit, tat}
end
local function quota(key, limit)
  if limit <= 0 then return {1, 0} end
  local used = tonumber(redis.call('GET', key) or '0')
  if used + cost <= limit then return {1, used} end
  return {0, used}
end
local p = gcra(KEYS[1], tonumber(ARGV[3]), tonumber(ARGV[4]), cost)
local r = gcra(KEYS[2], tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]))
local d = quota(KEYS[3], tonumber(ARGV[8]))
local m = quota(KEYS[4], tonumber(ARGV[9]))
local ok = p[1] == 1 and r[1] == 1 and d[1] == 1 and m[1] == 1
if ok and apply then
  if tonumber(ARGV[3]) > 0 then
    redis.call('SET', KEYS[1], string.format('%d', p[5]), 'PX', math.ceil((p[5] - now) / 1000) + 1)
  end
  if tonumber(ARGV[5]) > 0 then
    redis.call('SET', KEYS[2], string.format('%d', r[5]), 'PX', math.ceil((r[5] - now) / 1000) + 1)
  end
  if tonumber(ARGV[8]) > 0 then
    d[2] = redis.call('INCRBY', KEYS[3], cost)
    redis.call('EXPIREAT', KEYS[3], ARGV[10])
  end
  if tonumber(ARGV[9]) > 0 then
    m[2] = redis.call('INCRBY', KEYS[4], cost)
    redis.call('EXPIREAT', KEYS[4], ARGV[11])
  end
elseif not ok then
  -- Report what is really left: a limit that passed consumed nothing.
  if p[1] == 1 and tonumber(ARGV[3]) > 0 then p = gcra(KEYS[1], tonumber(ARGV[3]), tonumber(ARGV[4]), 0) end
  if r[1] == 1 and tonumber(ARGV[5]) > 0 then r = gcra(KEYS[2], tonumber(ARGV[5]), tonumber(ARGV[6]), 0) end
end
return {ok and 1 or 0, p[1], p[2], p[3], p[4], r[1], r[2], r[3], r[4], d[1], d[2], m[1], m[2]}
"#;

/// Completes an idempotent call if this owner still holds the in-flight record.
const COMPLETE_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"#;

/// Releases an in-flight record if this owner still holds it.
const RELEASE_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"#;

/// The Redis-backed store.
pub struct RedisStore {
    client: redis::Client,
    manager: OnceLock<Result<ConnectionManager, String>>,
    prefix: String,
    timeout: Duration,
    recheck: Duration,
    epoch: Instant,
    /// Milliseconds since `epoch` until which Redis is not tried (0: try).
    down_until_ms: AtomicU64,
    limit_script: Lua,
    complete_script: Lua,
    release_script: Lua,
}

/// A script with its SHA-1, for EVALSHA.
struct Lua {
    text: &'static str,
    hash: String,
}

impl Lua {
    fn new(text: &'static str) -> Lua {
        Lua {
            text,
            hash: Script::new(text).get_hash().to_string(),
        }
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Prepares the store; nothing connects until the first call (or `connect`).
    pub fn new(settings: &StateSettings) -> Result<RedisStore, StoreError> {
        let url = settings.url.as_deref().unwrap_or(super::DEFAULT_REDIS_URL);
        let mut info =
            redis::IntoConnectionInfo::into_connection_info(url).map_err(|e| StoreError::Redis(e.to_string()))?;
        // The password never sits in gateway.toml (which is in git).
        if let Ok(password) = std::env::var(super::REDIS_PASSWORD_ENV) {
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        let client = redis::Client::open(info).map_err(|e| StoreError::Redis(e.to_string()))?;
        Ok(RedisStore {
            client,
            manager: OnceLock::new(),
            prefix: settings.key_prefix.clone(),
            timeout: settings.timeout,
            recheck: settings.recheck,
            epoch: Instant::now(),
            down_until_ms: AtomicU64::new(0),
            limit_script: Lua::new(LIMIT_SCRIPT),
            complete_script: Lua::new(COMPLETE_SCRIPT),
            release_script: Lua::new(RELEASE_SCRIPT),
        })
    }

    /// Connects and checks the server answers (used at startup to report early).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.connection()?;
        self.bounded(async move { redis::cmd("PING").query_async::<String>(&mut conn).await })
            .await
            .map(|_| ())
    }

    /// Whether the store is being left alone after a failure.
    pub fn is_down(&self) -> bool {
        self.elapsed_ms() < self.down_until_ms.load(Ordering::Relaxed)
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn connection(&self) -> Result<ConnectionManager, StoreError> {
        if self.is_down() {
            return Err(StoreError::Recheck);
        }
        let manager = self.manager.get_or_init(|| {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(self.timeout.max(Duration::from_millis(250))))
                .set_response_timeout(Some(self.timeout))
                .set_number_of_retries(1)
                .set_max_delay(self.recheck);
            ConnectionManager::new_lazy_with_config(self.client.clone(), config).map_err(|e| e.to_string())
        });
        manager.clone().map_err(StoreError::Redis)
    }

    /// Runs one Redis call within the timeout; a failure keeps Redis alone for `recheck`.
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StoreError> {
        let result = match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => StoreError::Redis(error.to_string()),
            Err(_) => StoreError::Timeout,
        };
        let until = self
            .elapsed_ms()
            .saturating_add(u64::try_from(self.recheck.as_millis()).unwrap_or(u64::MAX));
        self.down_until_ms.store(until, Ordering::Relaxed);
        Err(result)
    }

    /// EVALSHA, and EVAL when the server does not know the script.
    async fn eval<T: FromRedisValue>(&self, script: &Lua, keys: &[&str], args: &[Vec<u8>]) -> Result<T, StoreError> {
        let mut conn = self.connection()?;
        let run = async move {
            let mut evalsha = redis::cmd("EVALSHA");
            evalsha.arg(&script.hash).arg(keys.len()).arg(keys).arg(args);
            match evalsha.query_async::<T>(&mut conn).await {
                Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    let mut eval = redis::cmd("EVAL");
                    eval.arg(script.text).arg(keys.len()).arg(keys).arg(args);
                    eval.query_async::<T>(&mut conn).await
                }
                other => other,
            }
        };
        self.bounded(run).await
    }

    fn key(&self, kind: &str, partner: &str, rest: &str) -> String {
        format!("{}rl:{{{partner}}}:{kind}{rest}", self.prefix)
    }

    /// Checks (and with `Mode::Apply` consumes) a call's limits.
    pub async fn check_limits(&self, req: &LimitRequest<'_>, now: Now, mode: Mode) -> Result<Verdict, StoreError> {
        let unix = now.unix_secs;
        let day = Period::Day.id(unix);
        let month = Period::Month.id(unix);
        let keys = [
            self.key("rate", req.partner, ""),
            self.key("route:", req.partner, req.route),
            self.key("day:", req.partner, &day.to_string()),
            self.key("month:", req.partner, &month.to_string()),
        ];
        let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let micros =
            |g: Option<crate::limits::Gcra>| g.map_or((0, 0), |g| ((g.interval_ns / 1_000).max(1), u64::from(g.burst)));
        let (p_interval, p_burst) = micros(req.rate);
        let (r_interval, r_burst) = micros(req.route_rate);
        let apply = mode == Mode::Apply;
        // Quota keys outlive their period by a day, so a late check still finds them.
        let args: Vec<Vec<u8>> = [
            u64::from(apply),
            if apply { req.cost } else { 0 },
            p_interval,
            p_burst,
            r_interval,
            r_burst,
            u64::from(apply),
            req.quota.day.unwrap_or(0),
            req.quota.month.unwrap_or(0),
            Period::Day.end(unix) + 86_400,
            Period::Month.end(unix) + 86_400,
        ]
        .iter()
        .map(|n| n.to_string().into_bytes())
        .collect();
        let out: Vec<i64> = self.eval(&self.limit_script, &key_refs, &args).await?;
        let n = |i: usize| -> Result<u64, StoreError> {
            out.get(i)
                .map(|v| u64::try_from(*v).unwrap_or(0))
                .ok_or_else(|| StoreError::Redis("short answer from the limit script".into()))
        };
        let rate = |base: usize| -> Result<(bool, u64, u64, u64), StoreError> {
            Ok((n(base)? == 1, n(base + 1)?, n(base + 2)? * 1_000, n(base + 3)? * 1_000))
        };
        let raw = RawCheck {
            rate: req.rate.map(|_| rate(1)).transpose()?,
            route_rate: req.route_rate.map(|_| rate(5)).transpose()?,
            day: req
                .quota
                .day
                .map(|_| Ok::<_, StoreError>((n(9)? == 1, n(10)?)))
                .transpose()?,
            month: req
                .quota
                .month
                .map(|_| Ok::<_, StoreError>((n(11)? == 1, n(12)?)))
                .transpose()?,
        };
        Ok(Verdict::assemble(req, raw, unix))
    }

    fn tokens_key(&self, partner: &str) -> String {
        format!("{}tokens:{{{partner}}}", self.prefix)
    }

    /// Adds card tokens to the shared vault. A token already there keeps the number it
    /// was first stored with (`HSETNX`): a token's meaning never changes.
    pub async fn tokens_put(&self, tokens: &[SealedToken]) -> Result<(), StoreError> {
        if tokens.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for t in tokens {
            pipe.cmd("HSETNX")
                .arg(self.tokens_key(&t.partner))
                .arg(&t.token)
                .arg(&t.sealed)
                .ignore();
        }
        let mut conn = self.connection()?;
        self.bounded(async move { pipe.query_async::<()>(&mut conn).await })
            .await
    }

    /// The sealed numbers behind `tokens` for `partner`, in order (`None`: unknown).
    pub async fn tokens_get(&self, partner: &str, tokens: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(self.tokens_key(partner)).arg(tokens);
        let mut conn = self.connection()?;
        self.bounded(async move { cmd.query_async(&mut conn).await }).await
    }

    fn idem_key(&self, scope: &[u8; 32]) -> String {
        let mut key = format!("{}idem:", self.prefix);
        for b in scope {
            key.push_str(&format!("{b:02x}"));
        }
        key
    }

    /// The in-flight record's value: "I", owner, body hash.
    fn in_flight_value(owner: u64, body_hash: &[u8; 32]) -> Vec<u8> {
        let mut v = Vec::with_capacity(1 + 16 + 32);
        v.push(b'I');
        v.extend_from_slice(format!("{owner:016x}").as_bytes());
        v.extend_from_slice(body_hash);
        v
    }

    /// Takes the key (`SET NX PX`), or reports what holds it.
    pub async fn idempotency_begin(
        &self,
        scope: &[u8; 32],
        body_hash: &[u8; 32],
        owner: u64,
        lock: Duration,
    ) -> Result<Found, StoreError> {
        let key = self.idem_key(scope);
        let value = Self::in_flight_value(owner, body_hash);
        let lock_ms = u64::try_from(lock.as_millis()).unwrap_or(u64::MAX).max(1);
        // Twice at most: a record may expire between SET NX failing and GET.
        for _ in 0..2 {
            let mut conn = self.connection()?;
            let (key2, value2) = (key.clone(), value.clone());
            let taken: Value = self
                .bounded(async move {
                    redis::cmd("SET")
                        .arg(&key2)
                        .arg(value2)
                        .arg("NX")
                        .arg("PX")
                        .arg(lock_ms)
                        .query_async(&mut conn)
                        .await
                })
                .await?;
            if !matches!(taken, Value::Nil) {
                return Ok(Found::Taken);
            }
            let mut conn = self.connection()?;
            let key2 = key.clone();
            let held: Option<Vec<u8>> = self
                .bounded(async move { redis::cmd("GET").arg(&key2).query_async(&mut conn).await })
                .await?;
            let Some(held) = held else { continue };
            return match held.split_first() {
                Some((b'I', rest)) => Ok(if rest.get(16..) == Some(&body_hash[..]) {
                    Found::InFlight
                } else {
                    Found::OtherBody
                }),
                Some((b'D', rest)) => {
                    let (hash, stored) = (rest.get(..32), rest.get(32..));
                    if hash != Some(&body_hash[..]) {
                        return Ok(Found::OtherBody);
                    }
                    stored
                        .and_then(StoredResponse::decode)
                        .map(Found::Completed)
                        .ok_or_else(|| StoreError::Redis("an idempotency record is corrupt".into()))
                }
                _ => Err(StoreError::Redis("an idempotency record is corrupt".into())),
            };
        }
        Ok(Found::InFlight)
    }

    /// Stores the answer in place of this owner's in-flight record.
    pub async fn idempotency_complete(&self, ticket: &Ticket, stored: &StoredResponse) -> Result<(), StoreError> {
        let key = self.idem_key(&ticket.scope);
        let mut done = Vec::with_capacity(33 + stored.body.len() + 64);
        done.push(b'D');
        done.extend_from_slice(&ticket.body_hash);
        done.extend_from_slice(&stored.encode());
        let keep_ms = u64::try_from(ticket.plan.keep.as_millis()).unwrap_or(u64::MAX).max(1);
        let args = vec![
            Self::in_flight_value(ticket.owner, &ticket.body_hash),
            done,
            keep_ms.to_string().into_bytes(),
        ];
        let updated: i64 = self.eval(&self.complete_script, &[key.as_str()], &args).await?;
        if updated == 1 {
            Ok(())
        } else {
            Err(StoreError::Redis(
                "the in-flight record expired before the answer arrived".into(),
            ))
        }
    }

    /// Frees this owner's in-flight record so the partner may retry with the same key.
    pub async fn idempotency_release(&self, ticket: &Ticket) -> Result<(), StoreError> {
        let key = self.idem_key(&ticket.scope);
        let args = vec![Self::in_flight_value(ticket.owner, &ticket.body_hash)];
        let _: i64 = self.eval(&self.release_script, &[key.as_str()], &args).await?;
        Ok(())
    }
}
