//! Arithmetic of tumbling and sliding windows over slices.
//!
//! Windows are `[s, s + size)` with `s` a multiple of `slide`; slices are
//! `[a, a + g)` with `g = gcd(size, slide)`, so every window is a whole
//! number of slices and an event lands in exactly one slice.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    pub size: i64,
    pub slide: i64,
    /// Slice length.
    pub slice: i64,
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl Grid {
    /// `size` and `slide` are positive and at most
    /// [`crate::time::MAX_DURATION_MS`], and times are within the supported
    /// event-time range (the manifest and the decoder check): then no sum
    /// here overflows.
    pub fn new(size: i64, slide: i64) -> Self {
        Grid { size, slide, slice: gcd(size, slide) }
    }

    pub fn slice_start(&self, t: i64) -> i64 {
        t.div_euclid(self.slice) * self.slice
    }

    /// End of the earliest-ending window holding `t`.
    pub fn first_end(&self, t: i64) -> i64 {
        (t - self.size).div_euclid(self.slide) * self.slide + self.slide + self.size
    }

    /// End of the latest-ending window holding `t`.
    pub fn last_end(&self, t: i64) -> i64 {
        t.div_euclid(self.slide) * self.slide + self.size
    }

    /// End of the earliest window holding `t` that ends after `watermark`
    /// (which may be anything, the final `i64::MAX` included).
    pub fn first_open_end(&self, t: i64, watermark: i64) -> Option<i64> {
        let (first, last) = (self.first_end(t), self.last_end(t));
        if first > last || watermark >= last {
            return None;
        }
        if first > watermark {
            return Some(first);
        }
        // Here `watermark - first` is under `size`: no overflow.
        let e = first + ((watermark - first).div_euclid(self.slide) + 1) * self.slide;
        (e <= last).then_some(e)
    }

    /// Ends of the windows holding `t`, ascending.
    pub fn ends(&self, t: i64) -> impl Iterator<Item = i64> + use<> {
        let slide = self.slide;
        let first = self.first_end(t);
        let last = self.last_end(t);
        (0..).map(move |i| first + i * slide).take_while(move |&e| e <= last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_ends(g: &Grid, t: i64) -> Vec<i64> {
        // Every window start that is a multiple of slide near t.
        let lo = (t - g.size - g.slide).div_euclid(g.slide);
        let hi = (t + g.slide).div_euclid(g.slide);
        (lo..=hi).map(|k| k * g.slide).filter(|&s| s <= t && t < s + g.size).map(|s| s + g.size).collect()
    }

    #[test]
    fn ends_match_brute_force_including_negative_times_and_odd_ratios() {
        for (size, slide) in [(30, 1), (10, 10), (10, 4), (6, 4), (5, 7)] {
            let g = Grid::new(size, slide);
            for t in -50..50 {
                let ends: Vec<i64> = g.ends(t).collect();
                assert_eq!(ends, brute_ends(&g, t), "size {size} slide {slide} t {t}");
                for w in [-100, t - 20, t, t + 3, t + 40] {
                    let open = brute_ends(&g, t).into_iter().find(|&e| e > w);
                    assert_eq!(g.first_open_end(t, w), open, "size {size} slide {slide} t {t} w {w}");
                }
                // The watermark's extremes, with times far from zero.
                for far in [t, t + crate::time::MIN_EVENT_TIME, t + crate::time::MAX_EVENT_TIME - 100] {
                    assert_eq!(g.first_open_end(far, i64::MAX), None);
                    assert_eq!(g.first_open_end(far, i64::MIN), g.ends(far).next());
                }
                // A slice lies inside a window or outside it, never across.
                let a = g.slice_start(t);
                assert_eq!(brute_ends(&g, a), brute_ends(&g, t));
            }
        }
    }
}
