//! The Lua scripts streamtier runs in Redis (all in `hot/lua/`) and the one way they are sent:
//! by hash, then by body when the server answers `NOSCRIPT` (which also caches it there).
//! Inside a write transaction a script is always sent by body, so that a flushed script cache
//! can never fail the script after the transaction's other commands ran.

use std::sync::LazyLock;

use super::resp::{Cursor, Failure, Item, Request};
use super::RawPool;

/// One script: its text and the SHA-1 that `EVALSHA` names it by.
pub(crate) struct Lua {
    body: &'static str,
    sha: String,
}

impl Lua {
    fn new(body: &'static str) -> Self {
        Self {
            body,
            sha: redis::Script::new(body).get_hash().to_string(),
        }
    }
}

/// The read transaction's bookkeeping (stream info and fence).
pub(crate) static READ: LazyLock<Lua> = LazyLock::new(|| Lua::new(include_str!("../lua/read.lua")));
/// The trim.
pub(crate) static TRIM: LazyLock<Lua> = LazyLock::new(|| Lua::new(include_str!("../lua/trim.lua")));
/// A replay batch's check (after `WATCH`).
pub(crate) static REPLAY_CHECK: LazyLock<Lua> =
    LazyLock::new(|| Lua::new(include_str!("../lua/replay_check.lua")));
/// A replay batch's commit (inside its `MULTI`).
pub(crate) static REPLAY_COMMIT: LazyLock<Lua> =
    LazyLock::new(|| Lua::new(include_str!("../lua/replay_commit.lua")));

/// Taking or renewing a lease.
pub(crate) static LEASE_ACQUIRE: LazyLock<Lua> =
    LazyLock::new(|| Lua::new(include_str!("../lua/lease_acquire.lua")));
/// Giving a lease up.
pub(crate) static LEASE_RELEASE: LazyLock<Lua> =
    LazyLock::new(|| Lua::new(include_str!("../lua/lease_release.lua")));

/// The live archiver daemons.
pub(crate) static MEMBERS: LazyLock<Lua> = LazyLock::new(|| Lua::new(include_str!("../lua/members.lua")));

/// A stream's consumer groups and counters, for a snapshot.
pub(crate) static GROUPS: LazyLock<Lua> = LazyLock::new(|| Lua::new(include_str!("../lua/groups.lua")));

/// A restore's consumer groups and counters.
pub(crate) static RESTORE_GROUPS: LazyLock<Lua> =
    LazyLock::new(|| Lua::new(include_str!("../lua/restore_groups.lua")));

/// A replay target's backlog and Redis' memory.
pub(crate) static PRESSURE: LazyLock<Lua> = LazyLock::new(|| Lua::new(include_str!("../lua/pressure.lua")));

/// How a script is named in a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum By {
    Hash,
    Body,
}

impl Request {
    /// Appends `EVALSHA` (or `EVAL`) of `lua` with `keys` and `args`.
    pub(super) fn eval(&mut self, lua: &Lua, by: By, keys: &[&[u8]], args: &[&[u8]]) -> &mut Self {
        let (cmd, script): (&[u8], &[u8]) = match by {
            By::Hash => (b"EVALSHA", lua.sha.as_bytes()),
            By::Body => (b"EVAL", lua.body.as_bytes()),
        };
        self.command(3 + keys.len() + args.len())
            .arg(cmd)
            .arg(script)
            .arg(itoa::Buffer::new().format(keys.len()).as_bytes());
        for a in keys.iter().chain(args) {
            self.arg(a);
        }
        self
    }

    /// Appends `ASKING` when `asking` (after an `ASK` redirect; see `route.rs`).
    pub(super) fn asking(&mut self, asking: bool) -> &mut Self {
        if asking {
            self.push(&[b"ASKING"]);
        }
        self
    }
}

/// Whether a failure is the server saying it does not have the script.
pub(super) fn is_noscript(f: &Failure) -> bool {
    matches!(f, Failure::Server(m) if m.starts_with("NOSCRIPT"))
}

impl RawPool {
    /// Runs `lua` on its own and returns its reply.
    pub(crate) async fn script(
        &self,
        asking: bool,
        lua: &Lua,
        keys: &[&[u8]],
        args: &[&[u8]],
    ) -> Result<Item, Failure> {
        let mut by = By::Hash;
        loop {
            let mut request = Request::default();
            request.asking(asking).eval(lua, by, keys, args);
            let (con, reply) = self.exchange(&request).await?;
            // Whole replies were read: the connection is clean whatever they say.
            self.give_back(con);
            let mut c = Cursor::new(&reply);
            if asking {
                c.simple()?;
            }
            match c.item(0) {
                Err(f) if by == By::Hash && is_noscript(&f) => by = By::Body,
                other => return other,
            }
        }
    }
}
