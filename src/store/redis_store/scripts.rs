//! The three Lua scripts of the Redis store and the builders of their arguments.
//!
//! - [`Snapshot`]: several reads in one round trip, all from the same instant (and, for a
//!   create, the id it will use).
//! - [`Commit`]: a compare-and-set transaction: conditions on what was read, then the writes;
//!   all of it or nothing, in one script, which also takes the commit's number (the version of
//!   what it writes).
//! - [`FIND`]: the pets an index union names, in one round trip.

use std::sync::LazyLock;

use bytes::Bytes;
use fred::types::{Value, scripts::Script};

pub(super) static SNAPSHOT: LazyLock<Script> =
    LazyLock::new(|| Script::from_lua(include_str!("snapshot.lua")));
pub(super) static COMMIT: LazyLock<Script> =
    LazyLock::new(|| Script::from_lua(include_str!("commit.lua")));
pub(super) static FIND: LazyLock<Script> =
    LazyLock::new(|| Script::from_lua(include_str!("find.lua")));

/// The keys a script touches, each once, and the index (1-based, as Lua counts) of each.
#[derive(Debug, Default)]
struct Keys {
    names: Vec<String>,
}

impl Keys {
    fn index(&mut self, key: String) -> Value {
        let position = match self.names.iter().position(|name| *name == key) {
            Some(position) => position,
            None => {
                self.names.push(key);
                self.names.len() - 1
            }
        };
        Value::from(position as i64 + 1)
    }
}

/// Reads to run together with [`SNAPSHOT`]; the answer has one value per read, in order.
#[derive(Debug, Default)]
pub(super) struct Snapshot {
    keys: Keys,
    args: Vec<Value>,
}

impl Snapshot {
    pub(super) fn new() -> Self {
        Self::default()
    }

    fn read(&mut self, op: &'static str, key: String) {
        let index = self.keys.index(key);
        self.args.push(Value::from(op));
        self.args.push(index);
    }

    /// `HMGET`: an array with one value or nil per field.
    pub(super) fn hmget(&mut self, key: String, fields: &[&'static str]) -> &mut Self {
        self.read("hmget", key);
        self.args.push(Value::from(fields.len() as i64));
        self.args
            .extend(fields.iter().map(|field| Value::from(*field)));
        self
    }

    /// `EXISTS`: 1 or 0.
    pub(super) fn exists(&mut self, key: String) -> &mut Self {
        self.read("exists", key);
        self
    }

    /// `SISMEMBER`: 1 or 0.
    pub(super) fn member(&mut self, key: String, member: impl Into<Value>) -> &mut Self {
        self.read("member", key);
        self.args.push(member.into());
        self
    }

    /// `SCARD`.
    pub(super) fn card(&mut self, key: String) -> &mut Self {
        self.read("card", key);
        self
    }

    /// `ZCARD`.
    pub(super) fn zcard(&mut self, key: String) -> &mut Self {
        self.read("zcard", key);
        self
    }

    /// The next id from the sequence counter at `counter` (`INCR`) whose record key
    /// `id_prefix + id` does not exist: the id, drawn in the same round trip as the reads.
    pub(super) fn next_id(&mut self, counter: String, id_prefix: String) -> &mut Self {
        self.read("nextid", counter);
        self.args.push(Value::from(id_prefix));
        self
    }

    /// The script's keys and arguments.
    pub(super) fn into_parts(self) -> (Vec<String>, Vec<Value>) {
        (self.keys.names, self.args)
    }
}

/// A compare-and-set transaction for [`COMMIT`]: the state the caller decided on, then the writes
/// that follow from it.
///
/// Conditions compare whole values (a pet's JSON, an order's fields), not versions: two reads
/// that see the same bytes saw the same record, so a change and its undoing in between does not
/// make a decision wrong. (The commit that goes through still gets a number above every earlier
/// one, so the versions it writes stay in commit order.)
#[derive(Debug)]
pub(super) struct Commit {
    keys: Keys,
    counter: Value,
    conditions: Vec<Value>,
    condition_count: i64,
    writes: Vec<Value>,
}

impl Commit {
    /// A commit that takes its number from the counter at `counter` (one key for the whole
    /// store, under its prefix, so it shares the hash slot of every other key).
    pub(super) fn new(counter: String) -> Self {
        let mut keys = Keys::default();
        let counter = keys.index(counter);
        Self {
            keys,
            counter,
            conditions: Vec::new(),
            condition_count: 0,
            writes: Vec::new(),
        }
    }

    fn condition(&mut self, op: &'static str, key: String) -> &mut Vec<Value> {
        let index = self.keys.index(key);
        self.condition_count += 1;
        self.conditions.push(Value::from(op));
        self.conditions.push(index);
        &mut self.conditions
    }

    fn write(&mut self, op: &'static str, key: String) -> &mut Vec<Value> {
        let index = self.keys.index(key);
        self.writes.push(Value::from(op));
        self.writes.push(index);
        &mut self.writes
    }

    /// The key does not exist.
    pub(super) fn absent(&mut self, key: String) {
        self.condition("absent", key);
    }

    /// The string at `key` is `value`.
    pub(super) fn equals(&mut self, key: String, value: Bytes) {
        self.condition("eq", key).push(Value::from(value));
    }

    /// The string at `key` is `value`, or `None` for a missing key.
    pub(super) fn equals_or_absent(&mut self, key: String, value: Option<Bytes>) {
        match value {
            Some(value) => self.equals(key, value),
            None => self.absent(key),
        }
    }

    /// Field `field` of the hash at `key` is `value`.
    pub(super) fn field_equals(&mut self, key: String, field: &'static str, value: Bytes) {
        let args = self.condition("hfield", key);
        args.push(Value::from(field));
        args.push(Value::from(value));
    }

    /// Field `field` of the hash at `key` is `value`, or `None` for a missing key.
    pub(super) fn field_equals_or_absent(
        &mut self,
        key: String,
        field: &'static str,
        value: Option<Bytes>,
    ) {
        match value {
            Some(value) => self.field_equals(key, field, value),
            None => self.absent(key),
        }
    }

    /// `member` is (or is not) in the set at `key`.
    pub(super) fn membership(&mut self, key: String, member: i64, is_member: bool) {
        let args = self.condition("member", key);
        args.push(Value::from(member));
        args.push(Value::from(if is_member { "1" } else { "0" }));
    }

    /// The set at `key` has `count` members.
    pub(super) fn cardinality(&mut self, key: String, count: i64) {
        self.condition("card", key)
            .push(Value::from(count.to_string()));
    }

    /// `SET`.
    pub(super) fn set(&mut self, key: String, value: impl Into<Value>) {
        self.write("set", key).push(value.into());
    }

    /// `DEL`.
    pub(super) fn del(&mut self, key: String) {
        self.write("del", key);
    }

    /// `HSET` of one field.
    pub(super) fn hset(&mut self, key: String, field: &'static str, value: impl Into<Value>) {
        let args = self.write("hset", key);
        args.push(Value::from(field));
        args.push(value.into());
    }

    /// `HSET` of field `field` to the commit's number, known only when the script runs.
    pub(super) fn version(&mut self, key: String, field: &'static str) {
        self.write("version", key).push(Value::from(field));
    }

    /// `ZADD` with the id as both score and member.
    pub(super) fn zadd_id(&mut self, key: String, id: i64) {
        let args = self.write("zadd", key);
        args.push(Value::from(id));
        args.push(Value::from(id));
    }

    /// `ZREM`.
    pub(super) fn zrem(&mut self, key: String, id: i64) {
        self.write("zrem", key).push(Value::from(id));
    }

    /// `SADD`.
    pub(super) fn sadd(&mut self, key: String, member: impl Into<Value>) {
        self.write("sadd", key).push(member.into());
    }

    /// `SREM`.
    pub(super) fn srem(&mut self, key: String, member: impl Into<Value>) {
        self.write("srem", key).push(member.into());
    }

    /// Deletes the key `prefix + member` of every member of the set at `key`, then the set.
    pub(super) fn del_members(&mut self, key: String, prefix: String) {
        self.write("delmembers", key).push(Value::from(prefix));
    }

    /// `ZCARD` of `key` once the writes before it are done: the commit answers it after its
    /// number, in the order counts were added.
    pub(super) fn count(&mut self, key: String) {
        self.write("count", key);
    }

    /// The script's keys and arguments.
    pub(super) fn into_parts(self) -> (Vec<String>, Vec<Value>) {
        let mut args = Vec::with_capacity(2 + self.conditions.len() + self.writes.len());
        args.push(self.counter);
        args.push(Value::from(self.condition_count));
        args.extend(self.conditions);
        args.extend(self.writes);
        (self.keys.names, args)
    }
}
