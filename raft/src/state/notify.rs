//! Notification channels and rules in apply (create, update, delete), the delivery service's
//! reports (delivered entries leave the outbox, failures are counted), and the notification
//! queries of [`StateView`].
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `p/c/` | channel name | [`StoredChannel`] (with its secret: the API never shows it) |
//! | `p/h/` | channel name | [`StoredChannelState`]: deliveries, failures, the last error |
//! | `p/r/` | rule id | [`StoredRule`] |
//! | `p/i/` | selector tag + selector + `0x00` + rule id | empty: rules by what they select |
//!
//! | `p/m/rules` | | [`RuleSummary`]: what an event's matching reads first |
//!
//! Events, matching and pushing into the outbox are `alerts`'s, which reads the rules through
//! this module (calls go that way only). Input is checked here again with the
//! API's functions ([`check_channel`], [`check_rule`]), so every replica refuses the same way.

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::keys::{self, get_u64, put_u64};
use super::{At, StateView};
use crate::codec::{self, key_u64};
use crate::command::{Rejection, Response};
use crate::error::StoreError;
use crate::notify::{
    check_channel, check_rule, Channel, ChannelPatch, ChannelSpec, ChannelState, DeliveryReport, OutboxEntry, Rule,
    RuleSpec, Selector, CHANNELS_MAX, DELIVERY_ERROR_LEN_MAX, OUTBOX_MAX, REPORT_ITEMS_MAX, RULES_MAX,
};
use crate::txn::WriteSet;

/// How many rules of each selector kind exist, and the name-prefix lengths in use: what a hook
/// reads to decide which index scans an event needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSummary {
    pub rules: u64,
    pub default: u64,
    pub task: u64,
    pub group: u64,
    /// Prefix length (bytes) → rules with a prefix of that length.
    pub prefix_lens: BTreeMap<u32, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum StoredSummary {
    V1(RuleSummary),
}

/// On-disk envelope of an outbox entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StoredOutboxEntry {
    V1(OutboxEntry),
}

pub(super) fn summary(ws: &WriteSet<'_>) -> Result<RuleSummary, StoreError> {
    Ok(match ws.get(keys::NOTIFY_RULE_SUMMARY)? {
        Some(b) => match codec::decode(&b)? {
            StoredSummary::V1(s) => s,
        },
        None => RuleSummary::default(),
    })
}

pub(super) fn put_summary(ws: &mut WriteSet<'_>, s: &RuleSummary) -> Result<(), StoreError> {
    ws.insert(keys::NOTIFY_RULE_SUMMARY.to_vec(), codec::encode(&StoredSummary::V1(s.clone()))?);
    Ok(())
}

/// The index tag and bytes of a selector.
pub(super) fn selector_key(s: &Selector) -> (u8, Vec<u8>) {
    match s {
        Selector::Default => (b'd', Vec::new()),
        Selector::Task(id) => (b't', key_u64(*id).to_vec()),
        Selector::TaskPrefix(p) => (b'p', p.as_bytes().to_vec()),
        Selector::Group(g) => (b'g', g.as_bytes().to_vec()),
    }
}

pub(super) fn decode_entry(bytes: &[u8]) -> Result<OutboxEntry, StoreError> {
    let StoredOutboxEntry::V1(e) = codec::decode(bytes)?;
    Ok(e)
}

pub(super) fn put_entry(ws: &mut WriteSet<'_>, e: &OutboxEntry) -> Result<(), StoreError> {
    ws.insert(keys::outbox(e.seq), codec::encode(&StoredOutboxEntry::V1(e.clone()))?);
    Ok(())
}

/// On-disk envelope of a channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StoredChannel {
    V1(Channel),
}

/// On-disk envelope of a channel's delivery state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StoredChannelState {
    V1(ChannelState),
}

/// On-disk envelope of a rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StoredRule {
    V1(Rule),
}

fn get_channel(ws: &WriteSet<'_>, name: &str) -> Result<Option<Channel>, StoreError> {
    ws.get(&keys::channel(name))?
        .map(|b| codec::decode(&b).map(|StoredChannel::V1(c)| c))
        .transpose()
        .map_err(Into::into)
}

fn put_channel(ws: &mut WriteSet<'_>, c: &Channel) -> Result<(), StoreError> {
    ws.insert(keys::channel(&c.spec.name), codec::encode(&StoredChannel::V1(c.clone()))?);
    Ok(())
}

pub(super) fn get_rule(ws: &WriteSet<'_>, id: u64) -> Result<Option<Rule>, StoreError> {
    ws.get(&keys::rule(id))?.map(|b| codec::decode(&b).map(|StoredRule::V1(r)| r)).transpose().map_err(Into::into)
}

fn channel_state(ws: &WriteSet<'_>, name: &str) -> Result<ChannelState, StoreError> {
    Ok(match ws.get(&keys::channel_state(name))? {
        Some(b) => {
            let StoredChannelState::V1(s) = codec::decode(&b)?;
            s
        }
        None => ChannelState::default(),
    })
}

fn put_channel_state(ws: &mut WriteSet<'_>, name: &str, s: &ChannelState) -> Result<(), StoreError> {
    ws.insert(keys::channel_state(name), codec::encode(&StoredChannelState::V1(s.clone()))?);
    Ok(())
}

fn rejected(r: Rejection) -> Result<Response, StoreError> {
    Ok(Response::Rejected(r))
}

pub(super) fn create_channel(ws: &mut WriteSet<'_>, at: At, spec: &ChannelSpec) -> Result<Response, StoreError> {
    if let Err(e) = check_channel(spec) {
        return rejected(Rejection::InvalidNotification(e));
    }
    if get_channel(ws, &spec.name)?.is_some() {
        return rejected(Rejection::ChannelNameTaken { name: spec.name.clone() });
    }
    let count = get_u64(ws, keys::NOTIFY_CHANNELS)?;
    if count >= CHANNELS_MAX {
        return rejected(Rejection::TooManyChannels { max: CHANNELS_MAX });
    }
    let channel = Channel { spec: spec.clone(), created_ms: at.now_ms, updated_ms: at.now_ms };
    put_channel(ws, &channel)?;
    put_u64(ws, keys::NOTIFY_CHANNELS, count + 1);
    Ok(Response::Channel(channel))
}

pub(super) fn update_channel(
    ws: &mut WriteSet<'_>,
    at: At,
    name: &str,
    patch: &ChannelPatch,
) -> Result<Response, StoreError> {
    let Some(mut channel) = get_channel(ws, name)? else {
        return rejected(Rejection::ChannelNotFound { name: name.to_string() });
    };
    let merged = patch.merged_into(&channel.spec);
    if let Err(e) = check_channel(&merged) {
        return rejected(Rejection::InvalidNotification(e));
    }
    (channel.spec, channel.updated_ms) = (merged, at.now_ms);
    put_channel(ws, &channel)?;
    Ok(Response::Channel(channel))
}

/// Refused while a rule names the channel; its undelivered entries go with it.
pub(super) fn delete_channel(ws: &mut WriteSet<'_>, name: &str) -> Result<Response, StoreError> {
    let Some(channel) = get_channel(ws, name)? else {
        return rejected(Rejection::ChannelNotFound { name: name.to_string() });
    };
    for (_, v) in ws.scan_prefix(keys::RULE, RULES_MAX as usize)? {
        let StoredRule::V1(rule) = codec::decode(&v)?;
        if rule.spec.channels.iter().any(|c| c == name) {
            return rejected(Rejection::ChannelInUse { name: name.to_string(), rule: rule.id });
        }
    }
    let mut removed = 0;
    for (k, v) in ws.scan_prefix(keys::OUTBOX, OUTBOX_MAX as usize)? {
        if decode_entry(&v)?.channel == name {
            ws.remove(k);
            removed += 1;
        }
    }
    keys::bump(ws, keys::NOTIFY_DEPTH, -removed)?;
    ws.remove(keys::channel(name));
    ws.remove(keys::channel_state(name));
    keys::bump(ws, keys::NOTIFY_CHANNELS, -1)?;
    Ok(Response::Channel(channel))
}

/// Checks a rule's input and that its channels exist.
fn check_rule_state(ws: &WriteSet<'_>, spec: &RuleSpec) -> Result<Option<Rejection>, StoreError> {
    if let Err(e) = check_rule(spec) {
        return Ok(Some(Rejection::InvalidNotification(e)));
    }
    for name in &spec.channels {
        if get_channel(ws, name)?.is_none() {
            return Ok(Some(Rejection::UnknownChannel { name: name.clone() }));
        }
    }
    Ok(None)
}

/// Adds (`delta` 1) or removes (-1) a rule from the index and the summary.
fn index_rule(ws: &mut WriteSet<'_>, rule: &Rule, delta: i64) -> Result<(), StoreError> {
    let (tag, bytes) = selector_key(&rule.spec.selector);
    let key = keys::rule_index(tag, &bytes, rule.id);
    if delta > 0 {
        ws.insert(key, Vec::new());
    } else {
        ws.remove(key);
    }
    let mut s = summary(ws)?;
    let step = |n: &mut u64| *n = n.saturating_add_signed(delta);
    step(&mut s.rules);
    match &rule.spec.selector {
        Selector::Default => step(&mut s.default),
        Selector::Task(_) => step(&mut s.task),
        Selector::Group(_) => step(&mut s.group),
        Selector::TaskPrefix(p) => {
            let n = s.prefix_lens.entry(p.len() as u32).or_default();
            step(n);
            if *n == 0 {
                s.prefix_lens.remove(&(p.len() as u32));
            }
        }
    }
    put_summary(ws, &s)
}

fn put_rule(ws: &mut WriteSet<'_>, rule: &Rule) -> Result<(), StoreError> {
    ws.insert(keys::rule(rule.id), codec::encode(&StoredRule::V1(rule.clone()))?);
    Ok(())
}

pub(super) fn create_rule(ws: &mut WriteSet<'_>, at: At, spec: &RuleSpec) -> Result<Response, StoreError> {
    if let Some(r) = check_rule_state(ws, spec)? {
        return rejected(r);
    }
    if summary(ws)?.rules >= RULES_MAX {
        return rejected(Rejection::TooManyRules { max: RULES_MAX });
    }
    let id = get_u64(ws, keys::NOTIFY_NEXT_RULE)?.max(1);
    put_u64(ws, keys::NOTIFY_NEXT_RULE, id + 1);
    let rule = Rule { id, spec: spec.clone(), created_ms: at.now_ms, updated_ms: at.now_ms };
    put_rule(ws, &rule)?;
    index_rule(ws, &rule, 1)?;
    Ok(Response::Rule(rule))
}

pub(super) fn update_rule(ws: &mut WriteSet<'_>, at: At, id: u64, spec: &RuleSpec) -> Result<Response, StoreError> {
    let Some(old) = get_rule(ws, id)? else { return rejected(Rejection::RuleNotFound { id }) };
    if let Some(r) = check_rule_state(ws, spec)? {
        return rejected(r);
    }
    index_rule(ws, &old, -1)?;
    let rule = Rule { id, spec: spec.clone(), created_ms: old.created_ms, updated_ms: at.now_ms };
    put_rule(ws, &rule)?;
    index_rule(ws, &rule, 1)?;
    Ok(Response::Rule(rule))
}

pub(super) fn delete_rule(ws: &mut WriteSet<'_>, id: u64) -> Result<Response, StoreError> {
    let Some(rule) = get_rule(ws, id)? else { return rejected(Rejection::RuleNotFound { id }) };
    index_rule(ws, &rule, -1)?;
    ws.remove(keys::rule(id));
    Ok(Response::Rule(rule))
}

/// Delivered entries leave the outbox and count for their channel; failed ones keep their
/// attempt count and error. An entry already gone (acknowledged twice, dropped, its channel
/// deleted) is skipped. Returns how many entries changed.
pub(super) fn report(ws: &mut WriteSet<'_>, at: At, r: &DeliveryReport) -> Result<Response, StoreError> {
    let mut changed = 0;
    for seq in r.delivered.iter().take(REPORT_ITEMS_MAX) {
        let Some(bytes) = ws.get(&keys::outbox(*seq))? else { continue };
        let entry = decode_entry(&bytes)?;
        ws.remove(keys::outbox(*seq));
        keys::bump(ws, keys::NOTIFY_DEPTH, -1)?;
        let mut s = channel_state(ws, &entry.channel)?;
        s.delivered += 1;
        (s.last_delivery_ms, s.last_event_id) = (Some(at.now_ms), Some(entry.event.id));
        put_channel_state(ws, &entry.channel, &s)?;
        changed += 1;
    }
    for (seq, error) in r.failed.iter().take(REPORT_ITEMS_MAX) {
        let Some(bytes) = ws.get(&keys::outbox(*seq))? else { continue };
        let mut entry = decode_entry(&bytes)?;
        let error = super::executions::truncate_tail(error, DELIVERY_ERROR_LEN_MAX);
        entry.attempts = entry.attempts.saturating_add(1);
        (entry.last_error, entry.last_attempt_ms) = (error.clone(), Some(at.now_ms));
        put_entry(ws, &entry)?;
        let mut s = channel_state(ws, &entry.channel)?;
        s.failures += 1;
        (s.last_error, s.last_error_ms) = (error, Some(at.now_ms));
        put_channel_state(ws, &entry.channel, &s)?;
        changed += 1;
    }
    Ok(Response::Count(changed))
}

/// The outbox's numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    pub depth: u64,
    pub dropped: u64,
    /// Events generated so far.
    pub events: u64,
}

impl StateView {
    pub fn channel(&self, name: &str) -> Result<Option<Channel>, StoreError> {
        self.tree
            .get(keys::channel(name))?
            .map(|b| codec::decode(&b).map(|StoredChannel::V1(c)| c))
            .transpose()
            .map_err(Into::into)
    }

    /// Every channel, by name (at most [`CHANNELS_MAX`]).
    pub fn channels(&self) -> Result<Vec<Channel>, StoreError> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(keys::CHANNEL) {
            let StoredChannel::V1(c) = codec::decode(&kv?.1)?;
            out.push(c);
        }
        Ok(out)
    }

    pub fn channel_state(&self, name: &str) -> Result<ChannelState, StoreError> {
        Ok(match self.tree.get(keys::channel_state(name))? {
            Some(b) => {
                let StoredChannelState::V1(s) = codec::decode(&b)?;
                s
            }
            None => ChannelState::default(),
        })
    }

    pub fn rule(&self, id: u64) -> Result<Option<Rule>, StoreError> {
        self.tree
            .get(keys::rule(id))?
            .map(|b| codec::decode(&b).map(|StoredRule::V1(r)| r))
            .transpose()
            .map_err(Into::into)
    }

    /// Every rule, by id (at most [`RULES_MAX`]).
    pub fn rules(&self) -> Result<Vec<Rule>, StoreError> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(keys::RULE) {
            let StoredRule::V1(r) = codec::decode(&kv?.1)?;
            out.push(r);
        }
        Ok(out)
    }

    /// Up to `limit` outbox entries, oldest first, from seq `after` on (exclusive).
    pub fn outbox(&self, after: u64, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        let start = keys::outbox(after.saturating_add(1));
        let mut out = Vec::new();
        for kv in self.tree.range(start..).take(limit) {
            let (k, v) = kv?;
            if !k.starts_with(keys::OUTBOX) {
                break;
            }
            out.push(decode_entry(&v)?);
        }
        Ok(out)
    }

    /// How many rules exist (0: no event can match, so the leader proposes none).
    pub fn rule_count(&self) -> Result<u64, StoreError> {
        Ok(match self.tree.get(keys::NOTIFY_RULE_SUMMARY)? {
            Some(b) => {
                let StoredSummary::V1(s) = codec::decode(&b)?;
                s.rules
            }
            None => 0,
        })
    }

    /// Whether node `id` is alerted as unreachable (so a leader that sees it reachable says so).
    pub fn node_alert_raised(&self, id: u64) -> Result<bool, StoreError> {
        Ok(self.tree.get(keys::alert(b'n', &key_u64(id)))?.is_some())
    }

    pub fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        let read = |key: &[u8]| -> Result<u64, StoreError> {
            Ok(self.tree.get(key)?.as_deref().and_then(codec::parse_key_u64).unwrap_or(0))
        };
        Ok(OutboxStats {
            depth: read(keys::NOTIFY_DEPTH)?,
            dropped: read(keys::NOTIFY_DROPPED)?,
            events: read(keys::NOTIFY_NEXT_EVENT)?.saturating_sub(1),
        })
    }
}
