//! The SSE fault table: for each fault injected into
//! [`super::broken_sse`], the families run and the cases that must `fail`
//! (`must` cases) or be `non-strict` (`should` cases); every other case
//! must pass. Each entry is one test in `tests/broken_sse.rs` (same name).

#![allow(dead_code)]

use super::broken_sse::Fault;
use super::prove::{Entry, Sel, all, glob, id};
use super::sse_faults::{
    ALL, DATA, DELIVERY, FINISH_CASE, FRAMING, KEEPALIVE, REPLAY, RESPONSE, SseProfileKind,
};

pub type SseEntry = Entry<Fault, SseProfileKind>;

/// What an entry does not say: no fault, the full profile, nothing but
/// passes, nothing skipped.
const E: SseEntry = Entry {
    name: "",
    fault: Fault::None,
    profile: SseProfileKind::Full,
    families: &[],
    fail: &[],
    non_strict: &[],
    info: &[],
    skip: &[],
    reason: None,
    all_pass_because: None,
};

const ACCEPT_CASES: &[Sel] = &[
    id("sse.response.accept-none"),
    id("sse.response.accept-any"),
    id("sse.response.accept-event-stream"),
];

/// Every data case whose payload has a line ending inside or at the end.
const MULTILINE_DATA: &[Sel] = &[
    id("sse.data.line-like-all"),
    id("sse.data.lf"),
    id("sse.data.cr"),
    id("sse.data.crlf"),
    id("sse.data.mixed-endings"),
    id("sse.data.trailing-lf"),
    id("sse.data.trailing-cr"),
    id("sse.data.only-lf"),
    id("sse.data.blank-lines"),
    id("sse.data.line-leading-space"),
    id("sse.data.line-leading-colon"),
    id("sse.data.injection-event-lf"),
    id("sse.data.injection-event-cr"),
    id("sse.data.injection-id-cr"),
    id("sse.data.injection-retry-lf"),
    id("sse.data.injection-new-event-crlf"),
    id("sse.data.injection-new-event-lf"),
];

/// The cases that replay events onto a resumed stream.
const RESUMING: &[Sel] = &[
    id("sse.replay.resume-after-last"),
    id("sse.replay.resume-from-earlier"),
    id("sse.replay.non-ascii-id"),
    id("sse.replay.long-id"),
    id("sse.replay.punctuation-id"),
    id("sse.replay.long-history"),
    id("sse.replay.header-name-lowercase"),
    id("sse.replay.header-name-uppercase"),
    id("sse.replay.publish-while-reconnecting"),
];

/// Every case that reads one of its events on a resumed stream.
const RESUMED_WITH_EVENTS: &[Sel] = &[all(RESUMING), id("sse.replay.nothing-missed")];

/// The cases that resume with an id the target never issued.
const UNKNOWN_ID: Sel = glob("sse.replay.unknown-id*").count(11);

/// The `should` keep-alive cases.
const KEEPALIVES: &[Sel] = &[
    id("sse.keepalive.idle-stream"),
    id("sse.keepalive.after-events"),
];

pub const TABLE: &[SseEntry] = &[
    // -----------------------------------------------------------------------
    // The fixture itself is correct: every family passes, keep-alive and the
    // gzip-compressed stream included.
    Entry {
        name: "correct_fixture_passes_every_sse_family",
        families: &ALL,
        ..E
    },
    // A CRLF split across chunks 120 ms apart is legal CRLF: the framing
    // check judges only what a complete parse has seen.
    Entry {
        name: "crlf_split_across_delayed_chunks_passes_every_sse_family",
        fault: Fault::SplitCrlf,
        families: &ALL,
        all_pass_because: Some("a CRLF split across chunks is still CRLF"),
        ..E
    },
    // -----------------------------------------------------------------------
    // sse.response
    Entry {
        name: "wrong_content_type_fails_sse_response",
        fault: Fault::WrongContentType,
        families: &[RESPONSE],
        fail: &[id("sse.response.content-type")],
        non_strict: &[
            id("sse.response.compressed-events-arrive-promptly"),
            all(ACCEPT_CASES),
        ],
        ..E
    },
    Entry {
        name: "refusing_accept_any_fails_sse_response",
        fault: Fault::NotAcceptableForAny,
        families: &[RESPONSE],
        non_strict: &[id("sse.response.accept-any")],
        ..E
    },
    Entry {
        name: "held_back_headers_fail_sse_response",
        fault: Fault::HeadersOnFirstEvent,
        families: &[RESPONSE],
        non_strict: &[id("sse.response.headers-before-first-event")],
        ..E
    },
    Entry {
        name: "content_length_fails_sse_response",
        fault: Fault::ContentLength,
        families: &[RESPONSE],
        non_strict: &[id("sse.response.no-content-length")],
        ..E
    },
    Entry {
        name: "cacheable_stream_fails_sse_response",
        fault: Fault::Cacheable,
        families: &[RESPONSE],
        non_strict: &[id("sse.response.not-cacheable")],
        ..E
    },
    Entry {
        name: "gzip_without_flush_fails_sse_response",
        fault: Fault::GzipBuffered,
        families: &[RESPONSE],
        non_strict: &[id("sse.response.compressed-events-arrive-promptly")],
        ..E
    },
    Entry {
        name: "a_status_other_than_200_fails_sse_response",
        fault: Fault::Status202,
        families: &[RESPONSE],
        fail: &[
            id("sse.response.status-200"),
            id("sse.response.content-type"),
        ],
        // Every `should` case checks the status first.
        non_strict: &[
            id("sse.response.headers-before-first-event"),
            id("sse.response.no-content-length"),
            id("sse.response.not-cacheable"),
            all(ACCEPT_CASES),
            id("sse.response.compressed-events-arrive-promptly"),
        ],
        reason: Some("status 202 instead of 200"),
        ..E
    },
    // A 200 response that is no event stream: every case that reads the
    // stream fails on that prerequisite, none passes on what it sent.
    Entry {
        name: "a_stream_with_the_wrong_content_type_passes_no_case_that_reads_it",
        fault: Fault::WrongContentType,
        families: &[FRAMING, REPLAY, DATA],
        fail: &[
            glob("sse.framing.*").except(&[
                "sse.framing.unknown-fields",
                "sse.framing.colonless-lines",
                "sse.framing.line-endings",
            ]),
            glob("sse.replay.*").except(&["sse.replay.fresh-stream-no-replay"]),
            glob("sse.data.*").except(&["sse.data.large-1mib"]),
        ],
        non_strict: &[
            id("sse.framing.unknown-fields"),
            id("sse.framing.colonless-lines"),
            id("sse.framing.line-endings"),
            id("sse.replay.fresh-stream-no-replay"),
            id("sse.data.large-1mib"),
        ],
        reason: Some("prerequisite"),
        ..E
    },
    // -----------------------------------------------------------------------
    // sse.framing
    Entry {
        name: "latin1_fails_sse_framing_and_data",
        fault: Fault::Latin1,
        families: &[FRAMING, DATA],
        fail: &[
            id("sse.framing.utf8"),
            id("sse.data.non-ascii"),
            // Characters beyond Latin-1 become `?`; NEL is invalid UTF-8.
            id("sse.data.line-like-ls"),
            id("sse.data.line-like-ps"),
            id("sse.data.line-like-nel"),
            id("sse.data.line-like-all"),
        ],
        ..E
    },
    Entry {
        name: "bom_mid_stream_fails_sse_framing",
        fault: Fault::BomMidStream,
        families: &[FRAMING],
        fail: &[id("sse.framing.bom")],
        ..E
    },
    Entry {
        name: "miscased_field_fails_sse_framing",
        fault: Fault::MiscasedField,
        families: &[FRAMING],
        fail: &[id("sse.framing.field-case")],
        ..E
    },
    Entry {
        name: "unknown_field_fails_sse_framing",
        fault: Fault::UnknownField,
        families: &[FRAMING],
        non_strict: &[id("sse.framing.unknown-fields")],
        ..E
    },
    Entry {
        name: "id_with_nul_fails_sse_framing",
        fault: Fault::IdWithNul,
        families: &[FRAMING],
        fail: &[id("sse.framing.id-nul")],
        ..E
    },
    Entry {
        name: "fractional_retry_fails_sse_framing",
        fault: Fault::RetryFraction,
        families: &[FRAMING],
        fail: &[id("sse.framing.retry")],
        ..E
    },
    Entry {
        name: "cr_line_endings_fail_sse_framing",
        fault: Fault::CrLineEndings,
        families: &[FRAMING],
        non_strict: &[id("sse.framing.line-endings")],
        ..E
    },
    Entry {
        name: "incomplete_last_event_fails_sse_framing",
        fault: Fault::IncompleteLastEvent,
        families: &[FRAMING],
        fail: &[id(FINISH_CASE)],
        ..E
    },
    // -----------------------------------------------------------------------
    // sse.data
    Entry {
        name: "raw_newline_in_data_fails_sse_data_and_framing",
        fault: Fault::RawNewlineInData,
        families: &[DATA, FRAMING],
        fail: MULTILINE_DATA,
        // A raw CR inside a data line is also a lone-CR line ending on the
        // wire.
        non_strict: &[
            id("sse.framing.colonless-lines"),
            id("sse.framing.line-endings"),
        ],
        ..E
    },
    Entry {
        name: "unsplit_cr_fails_sse_data",
        fault: Fault::CrNotSplit,
        families: &[DATA, FRAMING],
        fail: &[
            id("sse.data.cr"),
            id("sse.data.mixed-endings"),
            id("sse.data.trailing-cr"),
            id("sse.data.injection-event-cr"),
            id("sse.data.injection-id-cr"),
            id("sse.data.line-like-all"),
        ],
        non_strict: &[
            id("sse.framing.colonless-lines"),
            // The unsplit CR is a lone-CR line ending on the wire.
            id("sse.framing.line-endings"),
        ],
        ..E
    },
    Entry {
        name: "splitting_on_unicode_line_ends_fails_sse_data",
        fault: Fault::SplitsUnicodeLines,
        families: &[DATA],
        fail: &[glob("sse.data.line-like-*").count(9)],
        ..E
    },
    Entry {
        name: "missing_space_after_colon_fails_sse_data",
        fault: Fault::NoSpaceAfterColon,
        families: &[DATA],
        fail: &[
            id("sse.data.leading-space"),
            id("sse.data.leading-spaces"),
            id("sse.data.line-leading-space"),
        ],
        ..E
    },
    Entry {
        name: "dropped_trailing_newline_fails_sse_data",
        fault: Fault::DropsTrailingNewline,
        families: &[DATA],
        fail: &[
            id("sse.data.trailing-lf"),
            id("sse.data.trailing-cr"),
            id("sse.data.only-lf"),
        ],
        ..E
    },
    // -----------------------------------------------------------------------
    // sse.delivery
    // Concurrent events reach the streams in different orders; sequential
    // publishes (every other delivery case) are unaffected.
    Entry {
        name: "concurrent_events_in_different_orders_fail_sse_delivery",
        fault: Fault::ReordersConcurrent,
        families: &[DELIVERY],
        fail: &[id("sse.delivery.concurrent-publishers")],
        ..E
    },
    Entry {
        name: "duplicating_live_events_fails_sse_delivery",
        fault: Fault::DuplicatesLiveEvents,
        families: &[DELIVERY],
        fail: &[glob("sse.delivery.*")
            .except(&["sse.delivery.prompt", "sse.delivery.mixed-sizes-in-order"])],
        // `should` cases. (In sse.data, whether a case ends before its
        // duplicate arrives is a race: that family is not run here.)
        non_strict: &[
            id("sse.delivery.prompt"),
            id("sse.delivery.mixed-sizes-in-order"),
        ],
        ..E
    },
    // -----------------------------------------------------------------------
    // sse.replay
    Entry {
        name: "ignoring_last_event_id_fails_sse_replay",
        fault: Fault::IgnoresLastEventId,
        families: &[REPLAY],
        fail: RESUMING,
        ..E
    },
    Entry {
        name: "duplicate_on_resume_fails_sse_replay",
        fault: Fault::DuplicateOnResume,
        families: &[REPLAY],
        fail: RESUMED_WITH_EVENTS,
        ..E
    },
    Entry {
        name: "events_without_ids_fail_sse_replay",
        fault: Fault::NoIds,
        families: &[REPLAY],
        fail: &[all(RESUMED_WITH_EVENTS), id("sse.replay.ids-present")],
        ..E
    },
    Entry {
        name: "error_on_unknown_id_fails_sse_replay",
        fault: Fault::UnknownIdIs500,
        families: &[REPLAY],
        fail: &[UNKNOWN_ID],
        ..E
    },
    Entry {
        name: "error_on_a_future_id_fails_sse_replay",
        fault: Fault::FutureIdIs500,
        families: &[REPLAY],
        fail: &[id("sse.replay.unknown-id-future")],
        ..E
    },
    // A stream opened with an id never issued may begin with one marker
    // event; replaying history for it (`0` and `-1` compared as numbers) is
    // a finding.
    Entry {
        name: "history_replayed_for_a_never_issued_id_fails_sse_replay",
        fault: Fault::NumericResume,
        families: &[REPLAY],
        fail: &[
            id("sse.replay.unknown-id-zero"),
            id("sse.replay.unknown-id-negative"),
        ],
        ..E
    },
    Entry {
        name: "a_case_sensitive_header_name_fails_sse_replay",
        fault: Fault::CaseSensitiveLastEventId,
        families: &[REPLAY],
        fail: &[
            id("sse.replay.header-name-lowercase"),
            id("sse.replay.header-name-uppercase"),
        ],
        ..E
    },
    // Events published between the replay snapshot and the live
    // subscription are lost: only a publish while the client reconnects
    // shows it.
    Entry {
        name: "a_gap_between_replay_and_live_fails_sse_replay",
        fault: Fault::SubscribeGap,
        families: &[REPLAY],
        fail: &[id("sse.replay.publish-while-reconnecting")],
        ..E
    },
    // The history (seeded before the run) reaches every fresh stream: an
    // event nobody published in the case is a finding wherever it shows.
    Entry {
        name: "replay_to_fresh_streams_fails_sse_replay",
        fault: Fault::ReplaysToFreshStreams,
        families: &[REPLAY],
        fail: &[glob("sse.replay.*")
            .except(&[
                "sse.replay.unknown-id*",
                "sse.replay.fresh-stream-no-replay",
            ])
            .count(11)],
        non_strict: &[id("sse.replay.fresh-stream-no-replay")],
        ..E
    },
    Entry {
        name: "framing_broken_only_on_resumed_streams_fails_the_resuming_cases",
        fault: Fault::RetryFractionOnResume,
        families: &[REPLAY, FRAMING],
        // The unknown-id streams read a fence, so they are checked too.
        fail: &[all(RESUMED_WITH_EVENTS), UNKNOWN_ID],
        ..E
    },
    Entry {
        name: "an_old_event_sent_again_fails_the_resuming_cases",
        fault: Fault::ReplaysOldEvent,
        families: &[REPLAY],
        fail: RESUMED_WITH_EVENTS,
        ..E
    },
    Entry {
        name: "a_capped_replay_fails_the_long_history",
        fault: Fault::ReplayCapped,
        families: &[REPLAY],
        fail: &[id("sse.replay.long-history")],
        ..E
    },
    Entry {
        name: "renumbered_replays_fail_sse_replay",
        fault: Fault::ReplayRenumbers,
        families: &[REPLAY],
        fail: &[
            id("sse.replay.resume-from-earlier"),
            id("sse.replay.long-history"),
        ],
        ..E
    },
    // -----------------------------------------------------------------------
    // sse.keepalive
    Entry {
        name: "no_keepalive_fails_sse_keepalive",
        fault: Fault::NoKeepalive,
        families: &[KEEPALIVE],
        non_strict: KEEPALIVES,
        ..E
    },
    Entry {
        name: "no_keepalive_after_events_fails_sse_keepalive",
        fault: Fault::NoKeepaliveAfterEvents,
        families: &[KEEPALIVE],
        non_strict: &[id("sse.keepalive.after-events")],
        ..E
    },
    // A keep-alive sent as an event reaches the application as a message.
    Entry {
        name: "keepalive_sent_as_data_fails_sse_keepalive",
        fault: Fault::KeepaliveAsData,
        families: &[KEEPALIVE],
        non_strict: KEEPALIVES,
        ..E
    },
];
