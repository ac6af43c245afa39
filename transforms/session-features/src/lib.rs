//! Session features of seed 000: what a user clicked in the last 30
//! minutes, over a 30-minute window sliding every minute.
//!
//! `items_clicked_30m` holds the most recent [`MAX_ITEMS`] clicks of the
//! window (all of them for an ordinary user); the counts cover every
//! click. A bot or a scraper clicks thousands of times in half an hour,
//! and a list that long is no model input.

use sluice_sdk::{Error, Features, Window};

/// Most items in `items_clicked_30m`: the most recent ones.
const MAX_ITEMS: usize = 100;

fn session_features(window: &Window<'_>) -> Result<Features, Error> {
    let items = window.strs("item_id")?;
    let categories = window.strs("category")?;
    let rows = window.rows();
    let category = categories.stats(rows);
    let mut features = Features::new();
    features
        .str_list_last_of("items_clicked_30m", &items, rows, MAX_ITEMS)
        .int("item_count_30m", rows.len() as i64)
        .int("distinct_items_30m", items.distinct(rows) as i64)
        .int("distinct_categories_30m", category.distinct as i64)
        .opt_str("top_category_30m", category.mode);
    Ok(features)
}

sluice_sdk::window_transform!(session_features, features {
    /// The items clicked in the window, oldest first: the most recent 100
    /// when there were more.
    items_clicked_30m: Vec<String>,
    /// Clicks in the window.
    item_count_30m: i64,
    /// Distinct items clicked.
    distinct_items_30m: i64,
    /// Distinct categories clicked.
    distinct_categories_30m: i64,
    /// The category clicked most (the smallest name on a tie); null when no
    /// click had one.
    top_category_30m: Option<String>,
});
