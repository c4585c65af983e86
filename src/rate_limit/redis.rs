//! The Redis store: one Lua script per round trip, run atomically by the
//! server, on the server's clock (`TIME`), so processes whose clocks differ
//! still share one timeline.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::gcra::{Grant, Rate};
use super::store::{Acquire, Store, StoreError, StoreFuture};

/// GCRA as in `gcra.rs`, line for line, plus the pause key. Keys: the
/// key's TAT, its pause. Arguments: emission (us), burst, turns wanted,
/// longest wait (us). Returns {turns, wait_us, paused}.
const ACQUIRE: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local pause = redis.call('PTTL', KEYS[2])
if pause > 0 then return {0, pause * 1000, 1} end
local t = tonumber(ARGV[1])
local span = t * tonumber(ARGV[2])
local turns = tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local room = math.floor((now + span - tat) / t)
local granted = 0
local wait = 0
if room >= 1 then
  granted = math.min(room, turns)
else
  wait = tat + t - span - now
  if wait > max_wait then return {0, wait, 0} end
  granted = 1
end
tat = tat + granted * t
redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.floor((tat - now) / 1000) + 1000)
return {granted, wait, 0}
";

/// Sets the pause key unless it already lasts longer.
const PAUSE: &str = r"
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ms then
  redis.call('SET', KEYS[1], '1', 'PX', ms)
end
return 1
";

/// A [`Store`] on a Redis server (feature `redis`): one connection per
/// store, made when first used and made again by itself after a failure.
pub struct RedisStore {
    client: redis::Client,
    timeout: Duration,
    connection: OnceLock<Result<ConnectionManager, String>>,
    acquire: Arc<redis::Script>,
    pause: Arc<redis::Script>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: never shown.
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store on the server at `url`, whose connections and answers take
    /// at most `timeout`. Connects on first use.
    pub fn new(url: &str, timeout: Duration) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError(format!("not a Redis URL: {}", e.category())))?;
        Ok(RedisStore {
            client,
            timeout,
            connection: OnceLock::new(),
            acquire: Arc::new(redis::Script::new(ACQUIRE)),
            pause: Arc::new(redis::Script::new(PAUSE)),
        })
    }

    /// The connection, made (lazily: it connects on its first command) the
    /// first time a store inside a Tokio runtime needs it.
    fn connection(&self) -> Result<ConnectionManager, StoreError> {
        let made = self.connection.get_or_init(|| {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(self.timeout))
                .set_response_timeout(Some(self.timeout))
                .set_number_of_retries(1)
                .set_min_delay(Duration::from_millis(10))
                .set_max_delay(Duration::from_millis(500));
            ConnectionManager::new_lazy_with_config(self.client.clone(), config)
                .map_err(|e| e.to_string())
        });
        made.clone().map_err(StoreError)
    }
}

fn store_error(error: redis::RedisError) -> StoreError {
    StoreError(format!("redis: {error}"))
}

impl Store for RedisStore {
    fn acquire(&self, key: &str, request: Acquire) -> StoreFuture<Grant> {
        let connection = self.connection();
        let script = Arc::clone(&self.acquire);
        let (tat_key, pause_key) = (format!("{key}:tat"), format!("{key}:pause"));
        let Rate { emission_us, burst } = request.rate;
        Box::pin(async move {
            let mut connection = connection?;
            let (turns, wait_us, paused): (i64, i64, i64) = script
                .key(tat_key)
                .key(pause_key)
                .arg(emission_us)
                .arg(burst)
                .arg(request.turns)
                .arg(request.max_wait_us.min(i64::MAX as u64))
                .invoke_async(&mut connection)
                .await
                .map_err(store_error)?;
            let wait_us = wait_us.max(0) as u64;
            let turns = u32::try_from(turns.max(0)).unwrap_or(0).min(request.turns);
            Ok(match (paused == 1, turns) {
                (true, _) => Grant::paused(wait_us),
                (false, 0) => Grant::refused(wait_us),
                (false, turns) => Grant::granted(turns, wait_us),
            })
        })
    }

    fn pause(&self, key: &str, pause: Duration) -> StoreFuture<()> {
        let connection = self.connection();
        let script = Arc::clone(&self.pause);
        let pause_key = format!("{key}:pause");
        let ms = pause.as_millis().clamp(1, 86_400_000) as u64;
        Box::pin(async move {
            let mut connection = connection?;
            let _: i64 = script
                .key(pause_key)
                .arg(ms)
                .invoke_async(&mut connection)
                .await
                .map_err(store_error)?;
            Ok(())
        })
    }
}
