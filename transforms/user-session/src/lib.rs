//! Session features of seed 002: clicks in the session and its duration,
//! over session windows (15 minutes of inactivity close a session).

use sluice_sdk::{Error, Features, Window};

fn user_session(window: &Window<'_>) -> Result<Features, Error> {
    // Events come in event-time order, so the first and last rows bound
    // the session's activity.
    let rows = window.rows();
    let (Some(&first), Some(&last)) = (rows.first(), rows.last()) else {
        return Err(Error::from("empty session"));
    };
    let duration_ms = window.timestamp(last) - window.timestamp(first);
    let mut features = Features::new();
    features.int("clicks_in_session", rows.len() as i64).int("session_duration_s", duration_ms / 1000);
    Ok(features)
}

sluice_sdk::window_transform!(
    user_session,
    features {
        /// Clicks in the session.
        clicks_in_session: i64,
        /// From the session's first click to its last, whole seconds.
        session_duration_s: i64,
    }
);
