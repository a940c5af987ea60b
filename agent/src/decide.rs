//! The device's answer to "what may play now, and why not" (D4), over the
//! playing manifests ([`crate::state::Documents`]), the trusted clock and
//! the cache: the step between the cache and the player in the agent's data
//! flow (sync → verify → state → cache → decide → play → report). The
//! player acts on its [`Outlook`]; `signet-agent status` and the running
//! agent's status report (the `status` module) explain it.
//!
//! Owns: what the cache tells the shared rule ([`signet_common::play::Cached`]:
//! for media the verified bytes' hash, for templates the parsed template's
//! content hash and sources, A8) and the outlook of one instant — what plays
//! on each layer, with its permit, and which due slots are skipped and why.
//! Must not: change anything; the rule itself is
//! [`signet_common::play::may_play`].

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use signet_common::approval::Template;
use signet_common::clock::TrustedClock;
use signet_common::digest::Sha256;
use signet_common::documents::{ItemKind, ManifestItem};
use signet_common::envelope::MAX_DOCUMENT_BYTES;
use signet_common::ids::ItemId;
use signet_common::play::{Cached, DeviceView, Permit, SkipReason, combine, may_play};
use signet_common::schedule::{Slot, evaluate};

use crate::cache::Cache;
use crate::state::Documents;

/// Where verified content is, as far as the decision is concerned.
pub trait ContentView: Send {
    /// The verified file holding `item`'s bytes, if present.
    fn present(&self, item: &ManifestItem) -> Option<PathBuf>;
}

impl ContentView for Cache {
    fn present(&self, item: &ManifestItem) -> Option<PathBuf> {
        self.contains(&item.sha256)
            .then(|| self.blob_path(&item.sha256))
    }
}

/// The cache as seen from outside a running agent (`signet-agent status`):
/// a file of the declared size in the blobs directory counts as present.
/// It is not hashed again here; the agent verifies every file when it
/// starts and whenever it changes.
#[derive(Debug, Clone)]
pub struct DiskView {
    /// `{data dir}/cache/blobs`.
    pub blobs: PathBuf,
}

impl ContentView for DiskView {
    fn present(&self, item: &ManifestItem) -> Option<PathBuf> {
        let path = self.blobs.join(item.sha256.to_string());
        let len = std::fs::metadata(&path).ok()?.len();
        (len == item.size).then_some(path)
    }
}

/// What plays at one instant and what is skipped.
#[derive(Debug, Clone)]
pub struct Outlook {
    /// The main layer's slot and why it may play.
    pub main: Option<(Slot, Permit)>,
    /// The overlays' slots and why they may play.
    pub overlays: Vec<(Slot, Permit)>,
    /// Due slots (by the schedule alone) whose item may not play, and why.
    pub skipped: Vec<(Slot, SkipReason)>,
    /// When the answer may change next.
    pub next_change: DateTime<Utc>,
    /// What the main layer plays from `next_change` on, if that is another
    /// slot: the player prepares it so the switch has no gap (D7).
    pub upcoming: Option<Slot>,
}

/// Decisions over one content view, with parsed templates remembered.
pub struct Decider {
    /// Where the content is.
    content: Box<dyn ContentView>,
    /// Parsed templates by the hash of their bytes.
    templates: RefCell<HashMap<Sha256, Cached>>,
    /// Files the player could not decode, with its message: unusable until
    /// the cache changes.
    broken: HashMap<Sha256, String>,
}

impl Decider {
    /// A decider over `content`.
    #[must_use]
    pub fn new(content: impl ContentView + 'static) -> Self {
        Self {
            content: Box::new(content),
            templates: RefCell::new(HashMap::new()),
            broken: HashMap::new(),
        }
    }

    /// Forgets parsed templates and broken files (after the cache changed).
    pub fn forget_templates(&mut self) {
        self.templates.get_mut().clear();
        self.broken.clear();
    }

    /// Marks the file `sha256` as one the player cannot decode.
    pub fn mark_broken(&mut self, sha256: Sha256, message: String) {
        self.broken.insert(sha256, message);
    }

    /// What the cache says about `item` (A8 input).
    pub fn cached(&self, item: &ManifestItem) -> Cached {
        let Some(path) = self.content.present(item) else {
            return Cached::Missing;
        };
        if let Some(message) = self.broken.get(&item.sha256) {
            return Cached::Unusable(format!("does not play: {message}"));
        }
        if item.kind != ItemKind::Template {
            return Cached::Present {
                approval_hash: item.sha256,
                sources: Vec::new(),
            };
        }
        if let Some(known) = self.templates.borrow().get(&item.sha256) {
            return known.clone();
        }
        let parsed = parse_template(&path);
        self.templates
            .borrow_mut()
            .insert(item.sha256, parsed.clone());
        parsed
    }

    /// The parsed template of a cached template item.
    ///
    /// # Errors
    /// When it is not cached, unreadable or invalid.
    pub fn template(&self, item: &ManifestItem) -> Result<Template, String> {
        let path = self
            .content
            .present(item)
            .ok_or_else(|| "template not cached".to_owned())?;
        read_template(&path)
    }

    /// The view of `documents` at `now`, if the device has an assignment.
    fn view<'a>(
        documents: &'a Documents,
        clock: &TrustedClock,
        now: DateTime<Utc>,
    ) -> Option<DeviceView<'a>> {
        Some(DeviceView {
            assignment: documents.assignment.as_ref()?,
            manifests: documents.playing_in_order(),
            successors: documents.successors_in_order(),
            now,
            last_hub_contact: clock.last_hub_contact(),
        })
    }

    /// D4 for one item at `now`.
    ///
    /// # Errors
    /// Why it may not play.
    pub fn decide(
        &self,
        documents: &Documents,
        clock: &TrustedClock,
        now: DateTime<Utc>,
        item: &ItemId,
    ) -> Result<Permit, SkipReason> {
        let Some(view) = Self::view(documents, clock, now) else {
            return Err(SkipReason::NotListed);
        };
        may_play(&view, item, &|i| self.cached(i))
    }

    /// What plays at `now` on every layer, and what due slot is skipped;
    /// `None` without an assignment.
    pub fn outlook(
        &self,
        documents: &Documents,
        clock: &TrustedClock,
        now: DateTime<Utc>,
    ) -> Option<Outlook> {
        let view = Self::view(documents, clock, now)?;
        let combined = combine(&view.manifests);
        let decisions: RefCell<BTreeMap<ItemId, Result<Permit, SkipReason>>> =
            RefCell::new(BTreeMap::new());
        let decide = |item: &ItemId| -> Result<Permit, SkipReason> {
            if let Some(known) = decisions.borrow().get(item) {
                return known.clone();
            }
            let answer = may_play(&view, item, &|i| self.cached(i));
            decisions.borrow_mut().insert(item.clone(), answer.clone());
            answer
        };
        let tz = view.assignment.time_zone;
        let playing = evaluate(&combined.schedule, tz, now, &|item| decide(item).is_ok());
        let due = evaluate(&combined.schedule, tz, now, &|_| true);
        let skipped = due
            .main
            .iter()
            .chain(&due.overlays)
            .filter_map(|slot| decide(&slot.item).err().map(|r| (slot.clone(), r)))
            .collect();
        let with_permit = |slot: Slot| decide(&slot.item).ok().map(|permit| (slot, permit));
        let upcoming = evaluate(&combined.schedule, tz, playing.next_change, &|item| {
            decide(item).is_ok()
        })
        .main
        .filter(|next| playing.main.as_ref() != Some(next));
        Some(Outlook {
            main: playing.main.and_then(with_permit),
            overlays: playing
                .overlays
                .into_iter()
                .filter_map(with_permit)
                .collect(),
            skipped,
            next_change: playing.next_change.min(due.next_change),
            upcoming,
        })
    }
}

/// Reads a cached template file: bounded, parsed, validated.
fn read_template(path: &Path) -> Result<Template, String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("template unreadable: {e}"))?
        .len();
    if len > MAX_DOCUMENT_BYTES as u64 {
        return Err(format!(
            "template of {len} bytes is over {MAX_DOCUMENT_BYTES}"
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("template unreadable: {e}"))?;
    let template: Template =
        serde_json::from_slice(&bytes).map_err(|e| format!("template does not parse: {e}"))?;
    template
        .validate()
        .map_err(|e| format!("template is invalid: {e}"))?;
    Ok(template)
}

/// Reads and checks a cached template (A8): its content hash and sources.
fn parse_template(path: &Path) -> Cached {
    let template = match read_template(path) {
        Ok(template) => template,
        Err(reason) => return Cached::Unusable(reason),
    };
    Cached::Present {
        approval_hash: template.content_hash(),
        sources: template
            .zones
            .iter()
            .filter_map(|z| z.source.clone())
            .collect(),
    }
}
