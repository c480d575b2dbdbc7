//! Where a public model name goes: its deployments (and their key pools) in order of
//! priority, a weighted random order among the healthy ones of each priority, and the
//! cooling-down ones last.

use std::collections::HashMap;
use std::sync::Arc;

use rand::Rng;

use super::operation::Operation;
use super::upstream::Upstream;
use crate::config::Deployment;

/// One deployment able to serve a public model.
pub struct Candidate {
    pub upstream: Arc<Upstream>,
    pub upstream_model: String,
    /// The pricing entry that prices this candidate's answers.
    pub price_name: String,
    /// True when the body's `model` must be rewritten for the upstream.
    pub renames_model: bool,
}

pub struct ModelRoutes {
    /// Sorted by priority (stable: configuration order within a priority).
    pub candidates: Vec<Candidate>,
}

/// One try: a candidate and one of its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    pub candidate: usize,
    pub key: usize,
}

pub struct Routes {
    by_model: HashMap<String, ModelRoutes>,
    /// Every deployment, in configuration order.
    upstreams: Vec<Arc<Upstream>>,
}

impl Routes {
    pub fn build(deployments: &[Deployment]) -> Result<Routes, reqwest::Error> {
        let mut by_model: HashMap<String, ModelRoutes> = HashMap::new();
        let mut upstreams = Vec::with_capacity(deployments.len());
        for d in deployments {
            let upstream = Arc::new(Upstream::build(d)?);
            upstreams.push(upstream.clone());
            for (public, route) in &d.models {
                by_model
                    .entry(public.clone())
                    .or_insert_with(|| ModelRoutes {
                        candidates: Vec::new(),
                    })
                    .candidates
                    .push(Candidate {
                        upstream: upstream.clone(),
                        upstream_model: route.upstream.clone(),
                        price_name: route.price.clone(),
                        renames_model: &route.upstream != public,
                    });
            }
        }
        for routes in by_model.values_mut() {
            routes.candidates.sort_by_key(|c| c.upstream.priority);
        }
        Ok(Routes {
            by_model,
            upstreams,
        })
    }

    /// The deployments that serve `op` for at least one model `allowed`, in configuration
    /// order, each once.
    pub fn deployments_serving(
        &self,
        op: Operation,
        allowed: impl Fn(&str) -> bool,
    ) -> Vec<Arc<Upstream>> {
        self.upstreams
            .iter()
            .filter(|u| op.upstream_path(u.kind).is_some())
            .filter(|u| {
                self.by_model.iter().any(|(model, routes)| {
                    allowed(model)
                        && routes
                            .candidates
                            .iter()
                            .any(|c| Arc::ptr_eq(&c.upstream, u))
                })
            })
            .cloned()
            .collect()
    }

    pub fn get(&self, model: &str) -> Option<&ModelRoutes> {
        self.by_model.get(model)
    }

    pub fn public_models(&self) -> impl Iterator<Item = &str> {
        self.by_model.keys().map(String::as_str)
    }
}

impl ModelRoutes {
    /// Candidates able to serve `op`.
    pub fn serving(&self, op: Operation) -> impl Iterator<Item = &Candidate> {
        self.candidates
            .iter()
            .filter(move |c| op.upstream_path(c.upstream.kind).is_some())
    }

    /// The order to try (candidate, key) pairs in: priority by priority, healthy pairs in
    /// a weighted random order (weight = deployment weight × key weight); then the pairs
    /// cooling down, soonest available first.
    pub fn plan(&self, op: Operation) -> Vec<Attempt> {
        // The common case, one deployment with one key, needs no weighing.
        if let [only] = self.candidates.as_slice()
            && only.upstream.keys.len() == 1
        {
            return match op.upstream_path(only.upstream.kind) {
                Some(_) => vec![Attempt {
                    candidate: 0,
                    key: 0,
                }],
                None => Vec::new(),
            };
        }
        let mut rng = rand::rng();
        let mut healthy: Vec<(u32, Vec<(u64, Attempt)>)> = Vec::new();
        let mut cooling: Vec<(u64, Attempt)> = Vec::new();
        for (i, c) in self.candidates.iter().enumerate() {
            if op.upstream_path(c.upstream.kind).is_none() {
                continue;
            }
            for (k, key) in c.upstream.keys.iter().enumerate() {
                let attempt = Attempt {
                    candidate: i,
                    key: k,
                };
                if !c.upstream.is_healthy(k) {
                    cooling.push((c.upstream.cool_until(k), attempt));
                    continue;
                }
                let weight = u64::from(c.upstream.weight) * u64::from(key.weight);
                match healthy.last_mut() {
                    Some((priority, group)) if *priority == c.upstream.priority => {
                        group.push((weight, attempt))
                    }
                    _ => healthy.push((c.upstream.priority, vec![(weight, attempt)])),
                }
            }
        }
        let mut plan = Vec::new();
        for (_, mut group) in healthy {
            while !group.is_empty() {
                let total: u64 = group.iter().map(|(w, _)| *w).sum();
                let mut pick = rng.random_range(0..total.max(1));
                let index = group
                    .iter()
                    .position(|(w, _)| {
                        if pick < *w {
                            return true;
                        }
                        pick -= w;
                        false
                    })
                    .unwrap_or(0);
                plan.push(group.swap_remove(index).1);
            }
        }
        cooling.sort_by_key(|(until, _)| *until);
        plan.extend(cooling.into_iter().map(|(_, a)| a));
        plan
    }
}
