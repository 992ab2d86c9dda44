//! A target profile: what the target declares it supports and its limits.
//! Cases that need an undeclared capability are `unsupported`, not failed.

use std::path::Path;

use serde::Deserialize;

use crate::case::file::{LoadError, line_of};
use crate::case::{Capability, Dur};

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(default)]
    pub ws: WsProfile,
    #[serde(default)]
    pub sse: SseProfile,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsProfile {
    /// Subprotocols the target selects from.
    pub subprotocols: Option<Vec<String>>,
    /// permessage-deflate (RFC 7692) is supported.
    #[serde(default)]
    pub deflate: bool,
    /// The profile says `deflate = ...` itself: the pre-run probe does not
    /// override it (`deflate = false` keeps the family off).
    #[serde(skip)]
    pub deflate_declared: bool,
    /// Largest message the target accepts; larger ones may be refused with 1009.
    pub max_message_size: Option<u64>,
    /// Most fragments per message the target accepts.
    pub max_fragments: Option<u64>,
    /// Origins allowed to connect; others get 403.
    pub allowed_origins: Option<Vec<String>>,
    /// The target closes idle connections after this long.
    pub idle_timeout: Option<Dur>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SseProfile {
    /// The target replays events after `Last-Event-ID` (implied by `--publish`).
    pub replay: Option<bool>,
    /// POSTing here tells the target its stream is finished; later GETs get 204.
    pub finish: Option<String>,
    /// Publish request header carrying an explicit event id.
    pub id_header: Option<String>,
    /// Publish body template: `{data}` is replaced by the event data
    /// JSON-escaped (without quotes); default is the raw data.
    pub publish_template: Option<String>,
    /// Content type of the publish request (default `text/plain; charset=utf-8`).
    pub publish_content_type: Option<String>,
    /// Longest idle gap between keep-alives (default 15 s).
    pub keepalive: Option<Dur>,
    /// Event types (`event:` values) the target sends on its own, such as a
    /// welcome or status event: not findings, never taken for published
    /// events. Every other event a case did not publish is a finding.
    pub extra_event_types: Option<Vec<String>>,
}

impl Profile {
    /// Profiles are TOML files like case files, and fail the same way:
    /// the error names the file and line.
    pub fn load(path: &Path) -> Result<Profile, LoadError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
            file: file.clone(),
            source,
        })?;
        Profile::parse(&file, &text)
    }

    pub fn parse(file: &str, text: &str) -> Result<Profile, LoadError> {
        let mut p: Profile = toml::from_str(text).map_err(|e| LoadError::Invalid {
            file: file.to_string(),
            line: e.span().map_or(1, |s| line_of(text, s.start)),
            message: e.message().to_string(),
        })?;
        let table: toml::Table = toml::from_str(text).unwrap_or_default();
        p.ws.deflate_declared = table
            .get("ws")
            .and_then(|w| w.as_table())
            .is_some_and(|w| w.contains_key("deflate"));
        Ok(p)
    }

    /// The profile of the embedded reference server
    /// (`Config::conformance()`): its origin allow-list, subprotocol,
    /// permessage-deflate, its message limit (64 MiB, also the harness's
    /// own cap; no other case sends more than 16 MiB, so declaring it only
    /// arms the decompression bomb cases of `ws.deflate`), and its SSE
    /// publish contract.
    pub fn reference() -> Profile {
        let ws = pushspec_reference_server::Config::conformance().ws;
        Profile {
            ws: WsProfile {
                deflate: ws.deflate,
                deflate_declared: true,
                max_message_size: Some(ws.max_message_size as u64),
                subprotocols: Some(ws.subprotocols),
                allowed_origins: ws.allowed_origins,
                ..WsProfile::default()
            },
            sse: SseProfile {
                replay: Some(true),
                finish: None,
                id_header: Some("Event-Id".into()),
                ..SseProfile::default()
            },
        }
    }
}

/// What the run can offer cases, from the profile and the command line.
#[derive(Clone, Debug, Default)]
pub struct Capabilities {
    pub profile: Profile,
    pub publish: bool,
    pub skip_timing: bool,
}

impl Capabilities {
    /// Why a case needing `cap` cannot run, or `None` if it can.
    pub fn missing(&self, cap: Capability) -> Option<&'static str> {
        let p = &self.profile;
        let ok = match cap {
            Capability::Deflate => p.ws.deflate,
            Capability::Subprotocols => p.ws.subprotocols.is_some(),
            Capability::Origins => p.ws.allowed_origins.is_some(),
            Capability::MaxMessageSize => p.ws.max_message_size.is_some(),
            Capability::MaxFragments => p.ws.max_fragments.is_some(),
            Capability::IdleTimeout => p.ws.idle_timeout.is_some(),
            Capability::NoIdleTimeout => p.ws.idle_timeout.is_none(),
            Capability::Timing | Capability::Keepalive => !self.skip_timing,
            Capability::Publish => self.publish,
            Capability::Replay => self.publish && p.sse.replay != Some(false),
            Capability::Finish => p.sse.finish.is_some(),
            Capability::EventIds => self.publish && p.sse.id_header.is_some(),
        };
        if ok {
            return None;
        }
        Some(match cap {
            Capability::Deflate => "the profile does not declare permessage-deflate (ws.deflate)",
            Capability::Subprotocols => "the profile declares no subprotocols (ws.subprotocols)",
            Capability::Origins => "the profile declares no allowed origins (ws.allowed_origins)",
            Capability::MaxMessageSize => "the profile declares no ws.max_message_size",
            Capability::MaxFragments => "the profile declares no ws.max_fragments",
            Capability::IdleTimeout => "the profile declares no ws.idle_timeout",
            Capability::NoIdleTimeout => {
                "the profile declares ws.idle_timeout (checked by the idle-timeout case instead)"
            }
            Capability::Timing | Capability::Keepalive => "timing cases skipped (--skip-timing)",
            Capability::Publish => "needs a publish endpoint (--publish)",
            Capability::Replay => "needs Last-Event-ID replay (--publish, sse.replay)",
            Capability::Finish => "the profile declares no sse.finish endpoint",
            Capability::EventIds => "the profile declares no sse.id_header for explicit event ids",
        })
    }
}
