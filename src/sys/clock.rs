//! The clock: the one way the gateway learns the time, so tests can fix it.

use chrono::{DateTime, Utc};

/// Environment variable that fixes the clock (RFC 3339), for tests and reproducible runs.
pub const FIXED_NOW_ENV: &str = "CPIS_GATEWAY_NOW";

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock stopped at one instant.
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

/// The system clock, unless [`FIXED_NOW_ENV`] holds a time.
pub fn from_env() -> anyhow::Result<Box<dyn Clock>> {
    match std::env::var(FIXED_NOW_ENV) {
        Ok(text) => {
            let at = DateTime::parse_from_rfc3339(&text).map_err(|e| {
                anyhow::anyhow!("{FIXED_NOW_ENV}={text:?} is not an RFC 3339 time: {e}")
            })?;
            Ok(Box::new(FixedClock(at.with_timezone(&Utc))))
        }
        Err(_) => Ok(Box::new(SystemClock)),
    }
}
