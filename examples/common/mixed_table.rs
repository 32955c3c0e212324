#![allow(dead_code)] // each bench uses part of it
//! The seeded mixed table shared by the benches: 18 numeric + 12 categorical
//! columns, 5 % missing, correlated through two latent factors, with a binary
//! target `c0`. Numeric column k is age-like (k % 3 = 0, about 50 ± 15),
//! a skewed positive lab (k % 3 = 1) or integer-valued with many ties
//! (k % 3 = 2); categorical column k > 0 has 2 + k % 7 levels `L0`, `L1`, ...

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use resynth::table::{Column, Table};

pub const NUMERIC: usize = 18;
pub const CATEGORICAL: usize = 12;

fn normal(rng: &mut StdRng) -> f64 {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// `coupling` scales how strongly columns follow the latent factors
/// (1 = the population; a weaker value mimics a generator that loses
/// dependence); `shift` moves n3 by that many s.d.
pub fn mixed(n: usize, seed: u64, coupling: f64, shift: f64) -> Table {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut num: Vec<Vec<f64>> = (0..NUMERIC).map(|_| Vec::with_capacity(n)).collect();
    let mut cat: Vec<Vec<Option<String>>> =
        (0..CATEGORICAL).map(|_| Vec::with_capacity(n)).collect();
    for _ in 0..n {
        let (z1, z2) = (normal(&mut rng), normal(&mut rng));
        for (k, col) in num.iter_mut().enumerate() {
            let (a, b) = ((k % 5) as f64 * 0.5, ((k + 2) % 4) as f64 * 0.4);
            let x = coupling * (a * z1 + b * z2) + normal(&mut rng);
            let x = match k % 3 {
                0 => 50.0 + 15.0 * x,    // age-like
                1 => (0.4 * x).exp(),    // skewed lab
                _ => (10.0 * x).round(), // integer-valued, many ties
            } + if k == 3 { shift * 15.0 } else { 0.0 };
            col.push(if rng.random_bool(0.05) { f64::NAN } else { x });
        }
        for (k, col) in cat.iter_mut().enumerate() {
            let levels = 2 + k % 7;
            let label = if k == 0 {
                // The target: logistic in the latent factors.
                let logit = -0.8 + 1.2 * coupling * z1 - 0.8 * coupling * z2;
                let y = rng.random_bool(1.0 / (1.0 + (-logit).exp()));
                Some(if y { "yes" } else { "no" }.to_string())
            } else {
                let signal = 1.5 * coupling * if k % 2 == 0 { z1 } else { z2 } + normal(&mut rng);
                let level = ((signal + 3.5) / 7.0 * levels as f64).clamp(0.0, levels as f64 - 1.0);
                Some(format!("L{}", level as usize))
            };
            col.push(if k > 0 && rng.random_bool(0.05) {
                None
            } else {
                label
            });
        }
    }
    let mut columns: Vec<Column> = num
        .into_iter()
        .enumerate()
        .map(|(k, v)| Column::numeric(format!("n{k}"), v))
        .collect();
    columns.extend(
        cat.into_iter()
            .enumerate()
            .map(|(k, v)| Column::categorical(format!("c{k}"), &v)),
    );
    Table::new(columns)
}
