//! `--shape simulate`: the lease protocol of many archiver daemons over many partitions, in
//! simulated time, with the daemon's own share rule ([`Balance`]) and the same steps as its
//! partition loop (`archiver/src/run.rs`): a daemon at its share leaves free partitions alone
//! until the share grows; under it, it takes free leases and asks again about taken ones when
//! they run out or after a third of the lease time; over it, it gives one lease up after each
//! pass. Quiet partitions are looked at in full every third of the lease time and through one
//! pipelined `XRANGE` per partition per poll in between; a heartbeat every sixth of the lease
//! time keeps a daemon in the set for half of it. Redis commands are counted with what each
//! step sends (measured by `--shape idle`): a lease script 3, a full look (read transaction)
//! 7, a watch 1 per partition, a heartbeat 5.
//!
//! Default: 10,000 partitions (`--partitions`), 10 daemons (`--archivers`) starting within 5 s;
//! at 120 s one is killed (SIGKILL: its leases and heartbeat run out), at 200 s a new one joins.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use streamtier_archiver::balance::Balance;

use crate::Args;

const TTL: u64 = 30_000;
const POLL: u64 = 1_000;
const END: u64 = 300_000;
const KILL_AT: u64 = 120_000;
const JOIN_AT: u64 = 200_000;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Task(usize, usize),
    Heartbeat(usize),
    Watch(usize),
    Sample,
    Kill(usize),
    Join,
}

struct Daemon {
    alive: bool,
    balance: Balance,
    /// Per partition: whether this daemon's task holds the lease, and when it last renewed.
    held: Vec<Option<u64>>,
    /// Tasks waiting for the share to grow.
    waiting: Vec<usize>,
    /// When each partition's task runs next (one loop per partition, as in the daemon).
    next: Vec<u64>,
}

struct Sim {
    now: u64,
    queue: BinaryHeap<Reverse<(u64, Event)>>,
    leases: Vec<Option<(usize, u64)>>,
    members: HashMap<usize, u64>,
    daemons: Vec<Daemon>,
    rng: StdRng,
    /// Redis commands per simulated second.
    commands: Vec<u64>,
}

impl Sim {
    fn at(&mut self, t: u64, e: Event) {
        self.queue.push(Reverse((t, e)));
    }

    fn wake(&mut self, d: usize, p: usize, t: u64) {
        self.daemons[d].next[p] = t;
        self.at(t, Event::Task(d, p));
    }

    fn count(&mut self, n: u64) {
        let s = (self.now / 1000) as usize;
        if self.commands.len() <= s {
            self.commands.resize(s + 1, 0);
        }
        self.commands[s] += n;
    }

    fn jitter(&mut self, lo: u64, hi: u64) -> u64 {
        self.rng.random_range(lo..=hi)
    }

    fn add_daemon(&mut self, partitions: usize, start: u64) -> usize {
        let d = self.daemons.len();
        let balance = Balance::default();
        balance.set_partitions(partitions);
        self.daemons.push(Daemon {
            alive: true,
            balance,
            held: vec![None; partitions],
            waiting: Vec::new(),
            next: vec![0; partitions],
        });
        self.at(start, Event::Heartbeat(d));
        self.at(start + POLL, Event::Watch(d));
        for p in 0..partitions {
            let t = start + self.jitter(0, 50);
            self.wake(d, p, t);
        }
        d
    }

    fn heartbeat(&mut self, d: usize) {
        let now = self.now;
        self.members.retain(|_, exp| *exp > now);
        self.members.insert(d, now + TTL / 2);
        self.count(5);
        let n = self.members.len();
        let before = self.daemons[d].balance.share();
        self.daemons[d].balance.set_members(n);
        if self.daemons[d].balance.share() > before {
            for p in std::mem::take(&mut self.daemons[d].waiting) {
                self.wake(d, p, now);
            }
        }
        self.at(now + TTL / 6, Event::Heartbeat(d));
    }

    fn task(&mut self, d: usize, p: usize) {
        let now = self.now;
        let held = self.daemons[d].held[p];
        let b = &self.daemons[d].balance;
        if held.is_none() && !b.may_take() {
            if !self.daemons[d].waiting.contains(&p) {
                self.daemons[d].waiting.push(p);
            }
            // Also looks again once per lease time.
            self.wake(d, p, now + TTL);
            return;
        }
        // renew_or_wait: no round trip while the last renewal is fresh.
        let mine = match held {
            Some(at) if now - at < TTL / 3 => true,
            _ => {
                self.count(3);
                match self.leases[p] {
                    Some((owner, exp)) if owner != d && exp > now => {
                        if held.is_some() {
                            self.daemons[d].held[p] = None;
                            self.daemons[d].balance.dropped();
                        }
                        let wait = (exp - now).min(TTL / 3) + self.jitter(250, 500);
                        self.wake(d, p, now + wait);
                        return;
                    }
                    _ => {
                        self.leases[p] = Some((d, now + TTL));
                        if held.is_none() {
                            self.daemons[d].balance.took();
                        }
                        self.daemons[d].held[p] = Some(now);
                        true
                    }
                }
            }
        };
        debug_assert!(mine);
        // A pass: the full look at a quiet partition.
        self.count(7);
        if self.daemons[d].balance.give_one_up() {
            self.count(3);
            self.leases[p] = None;
            self.daemons[d].held[p] = None;
            self.wake(d, p, now + TTL / 2);
        } else {
            self.wake(d, p, now + TTL / 3);
        }
    }

    /// Leases held per live daemon, and partitions nobody holds.
    fn shares(&self) -> (Vec<usize>, usize) {
        let live: Vec<usize> = (0..self.daemons.len())
            .filter(|d| self.daemons[*d].alive)
            .collect();
        let mut per = vec![0; self.daemons.len()];
        let mut free = 0;
        for l in &self.leases {
            match l {
                Some((owner, exp)) if *exp > self.now && self.daemons[*owner].alive => per[*owner] += 1,
                _ => free += 1,
            }
        }
        (live.iter().map(|d| per[*d]).collect(), free)
    }
}

pub fn run(a: &Args) {
    let partitions = a.partitions as usize;
    let daemons = a.archivers;
    let mut sim = Sim {
        now: 0,
        queue: BinaryHeap::new(),
        leases: vec![None; partitions],
        members: HashMap::new(),
        daemons: Vec::new(),
        rng: StdRng::seed_from_u64(7),
        commands: Vec::new(),
    };
    for _ in 0..daemons {
        let start = sim.jitter(0, 5_000);
        sim.add_daemon(partitions, start);
    }
    sim.at(KILL_AT, Event::Kill(0));
    sim.at(JOIN_AT, Event::Join);
    sim.at(1_000, Event::Sample);
    let mut samples: Vec<(u64, Vec<usize>, usize)> = Vec::new();
    while let Some(Reverse((t, e))) = sim.queue.pop() {
        if t > END {
            break;
        }
        sim.now = t;
        match e {
            Event::Task(d, p) if sim.daemons[d].alive && sim.daemons[d].next[p] == t => sim.task(d, p),
            Event::Heartbeat(d) if sim.daemons[d].alive => sim.heartbeat(d),
            Event::Watch(d) if sim.daemons[d].alive => {
                let quiet = sim.daemons[d].balance.held() as u64;
                sim.count(quiet);
                sim.at(t + POLL, Event::Watch(d));
            }
            Event::Sample => {
                let (shares, free) = sim.shares();
                samples.push((t, shares, free));
                sim.at(t + 1_000, Event::Sample);
            }
            Event::Kill(d) => sim.daemons[d].alive = false,
            Event::Join => {
                sim.add_daemon(partitions, t);
            }
            _ => {}
        }
    }
    // Balanced: every partition held, no daemon over its share `ceil(partitions / daemons)`.
    let balanced = |from: u64, to: u64| {
        samples
            .iter()
            .find(|(t, s, free)| {
                *t > from
                    && *t < to
                    && *free == 0
                    && *s.iter().max().unwrap_or(&0) <= partitions.div_ceil(s.len().max(1))
            })
            .map(|(t, s, _)| ((t - from) as f64 / 1000.0, s.clone()))
    };
    let covered = |from: u64| {
        samples
            .iter()
            .find(|(t, _, free)| *t > from && *free == 0)
            .map(|(t, _, _)| (t - from) as f64 / 1000.0)
    };
    let rest = |from: u64, to: u64| {
        let window = &sim.commands[(from / 1000) as usize..(to / 1000) as usize];
        window.iter().sum::<u64>() as f64 / window.len() as f64
    };
    let show = |s: &Option<(f64, Vec<usize>)>| match s {
        Some((secs, shares)) => format!(
            "after {secs:.0} s, {}..{} leases per daemon",
            shares.iter().min().unwrap_or(&0),
            shares.iter().max().unwrap_or(&0)
        ),
        None => "never".into(),
    };
    println!("\nsimulation: {partitions} partitions, {daemons} daemons (lease_ttl 30 s, poll_interval 1 s), {END} ms");
    println!(
        "- start (within 5 s): every partition held {}, balanced {}",
        covered(0).map_or("never".into(), |s| format!("after {s:.0} s")),
        show(&balanced(0, KILL_AT))
    );
    let steady = rest(60_000, KILL_AT);
    println!(
        "- at rest (60-120 s): {steady:.0} Redis commands/s = {:.2} per partition per second",
        steady / partitions as f64
    );
    println!(
        "- SIGKILL of one daemon at 120 s: every partition held again {}; balanced {}",
        covered(KILL_AT).map_or("never".into(), |s| format!("after {s:.0} s")),
        show(&balanced(KILL_AT, JOIN_AT))
    );
    println!(
        "- a daemon joins at 200 s: balanced {}",
        show(&balanced(JOIN_AT, END))
    );
    println!(
        "- at rest after the join (260-300 s): {:.0} Redis commands/s",
        rest(260_000, END)
    );
    // S3, from what the archiver sends per object (README: 1 PUT + 1 LIST of the partition's
    // prefix per object) and the object shapes: each partition's objects share one prefix.
    let per_second = partitions as f64 / 3600.0;
    println!(
        "- S3 with one object per partition-hour (every partition busy every hour): {per_second:.1} PUT/s \
         and {per_second:.1} LIST/s in all, 1 PUT and 1 LIST per hour per prefix; a partition archiving \
         a burst at 500,000 entries/s into 1,000,000-entry objects (the default cap) makes 0.5 PUT/s on \
         its prefix. S3's documented limits: 3,500 PUT and 5,500 GET (LIST included) per second per prefix."
    );
}
