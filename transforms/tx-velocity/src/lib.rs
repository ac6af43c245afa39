//! Transaction velocity of seed 000 (count, sum, distinct merchants), as
//! an aggregate over seed 002's 5-minute tumbling window.

use std::collections::BTreeSet;

use sluice_sdk::{Aggregate, Error, Event, Features, Reader, WindowInfo};

#[derive(Default)]
struct Velocity {
    count: u64,
    sum: f64,
    merchants: BTreeSet<String>,
}

struct TxVelocity;

impl Aggregate for TxVelocity {
    type Acc = Velocity;

    fn add(acc: &mut Velocity, event: &Event<'_>) -> Result<(), Error> {
        acc.count += 1;
        acc.sum += event.f64("amount").ok_or("amount is null")?;
        if let Some(m) = event.str("merchant_id")
            && !acc.merchants.contains(m)
        {
            acc.merchants.insert(m.to_string());
        }
        Ok(())
    }

    fn merge(into: &mut Velocity, other: Velocity) {
        into.count += other.count;
        into.sum += other.sum;
        into.merchants.extend(other.merchants);
    }

    fn finish(acc: &Velocity, _window: &WindowInfo<'_>) -> Result<Features, Error> {
        let mut features = Features::new();
        features
            .int("tx_count", acc.count as i64)
            .float("tx_sum", acc.sum)
            .int("distinct_merchants", acc.merchants.len() as i64);
        Ok(features)
    }

    fn encode(acc: &Velocity, out: &mut Vec<u8>) {
        sluice_sdk::put_u64(out, acc.count);
        sluice_sdk::put_f64(out, acc.sum);
        sluice_sdk::put_u32(out, acc.merchants.len() as u32);
        for m in &acc.merchants {
            sluice_sdk::put_str(out, m);
        }
    }

    fn decode(bytes: &[u8]) -> Result<Velocity, Error> {
        let mut r = Reader::new(bytes);
        let count = r.u64()?;
        let sum = r.f64()?;
        let n = r.u32()?;
        let merchants = (0..n).map(|_| r.str().map(str::to_string)).collect::<Result<_, _>>()?;
        Ok(Velocity { count, sum, merchants })
    }
}

sluice_sdk::aggregate_transform!(
    TxVelocity,
    features {
        /// Transactions in the window.
        tx_count: i64,
        /// Their total amount.
        tx_sum: f64,
        /// Distinct merchants paid.
        distinct_merchants: i64,
    }
);
