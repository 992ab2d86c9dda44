//! The WebSocket fault table: for each fault injected into
//! [`super::broken_ws`], the families run, the profile, and the cases that
//! must `fail`, be `non-strict` or `info`; every other case must pass.
//! Each entry is one test in `tests/broken_ws.rs` (same name).

#![allow(dead_code)]

use super::broken_ws::Fault;
use super::prove::{Entry, Sel, glob, id};
use super::ws_faults::{
    CLOSE, CONTROL, DEFLATE, FRAGMENTATION, FRAMING, HANDSHAKE, LIMITS, ORIGIN, RESERVED, TIMING,
    UTF8, WsProfile,
};

pub type WsEntry = Entry<Fault, WsProfile>;

/// What an entry does not say: no fault, the plain profile, nothing but
/// passes, nothing skipped.
const E: WsEntry = Entry {
    name: "",
    fault: Fault::None,
    profile: WsProfile::Plain,
    families: &[],
    fail: &[],
    non_strict: &[],
    info: &[],
    skip: &[],
    reason: None,
    all_pass_because: None,
};

/// Every handshake case that expects a 101: each checks the whole upgrade
/// response (Accept, and no unoffered subprotocol).
const UPGRADING_HANDSHAKES: &[Sel] = &[
    id("ws.handshake.valid-upgrade"),
    id("ws.handshake.subprotocol-declared-selected"),
    id("ws.handshake.header-case-lowercase"),
    id("ws.handshake.header-case-uppercase"),
    id("ws.handshake.header-case-mixed-token"),
    id("ws.handshake.connection-token-list"),
    id("ws.handshake.split-1-byte-writes"),
    id("ws.handshake.split-7-byte-writes"),
    id("ws.handshake.split-64-byte-writes"),
    id("ws.handshake.subprotocol-not-offered"),
    id("ws.handshake.subprotocol-none-offered"),
    id("ws.handshake.extension-unknown-alone"),
    id("ws.handshake.extension-unknown-with-params"),
    id("ws.handshake.connection-split-lines"),
    // These reconnect with the standard handshake after the oversized request.
    id("ws.handshake.oversized-header-64kib-then-new-connection"),
    id("ws.handshake.oversized-header-1mib-then-new-connection"),
];

/// The `should` handshake case expecting a 101: non-strict when it is invalid.
const UPGRADING_SHOULD: &[Sel] = &[id("ws.handshake.upgrade-duplicate")];

/// Every ws.utf8 case in which the target must fail the connection.
const UTF8_MUST_FAIL: &[Sel] = &[
    glob("ws.utf8.invalid-*").count(82),
    glob("ws.utf8.incomplete-*").count(14),
    glob("ws.utf8.fail-fast-*").count(4),
];

/// The `must` ws.close cases with an invalid close code (5000 and 65535
/// are `should`).
const INVALID_CLOSE_CODES: Sel = glob("ws.close.invalid-code-*")
    .except(&["*-5000", "*-65535"])
    .count(10);
const INVALID_CLOSE_CODES_SHOULD: &[Sel] = &[
    id("ws.close.invalid-code-5000"),
    id("ws.close.invalid-code-65535"),
];

/// The ws.limits cases (without the 8 and 16 MiB ones) above 1 MiB.
const ABOVE_1MIB: &[Sel] = &[
    id("ws.limits.text-4mib"),
    id("ws.limits.binary-4mib"),
    glob("ws.limits.text-4mib-in-fragments-of-*").count(9),
    glob("ws.limits.binary-4mib-in-fragments-of-*").count(9),
];

/// The 4 MiB messages in more than 1000 fragments.
pub const OVER_1000_FRAGMENTS: &[&str] = &[
    "ws.limits.text-4mib-in-fragments-of-64b",
    "ws.limits.binary-4mib-in-fragments-of-64b",
    "ws.limits.text-4mib-in-fragments-of-256b",
    "ws.limits.binary-4mib-in-fragments-of-256b",
    "ws.limits.text-4mib-in-fragments-of-1kib",
    "ws.limits.binary-4mib-in-fragments-of-1kib",
    "ws.limits.text-4mib-in-fragments-of-4kib",
    "ws.limits.binary-4mib-in-fragments-of-4kib",
];
const OVER_1000_FRAGMENTS_SEL: &[Sel] = &[
    id(OVER_1000_FRAGMENTS[0]),
    id(OVER_1000_FRAGMENTS[1]),
    id(OVER_1000_FRAGMENTS[2]),
    id(OVER_1000_FRAGMENTS[3]),
    id(OVER_1000_FRAGMENTS[4]),
    id(OVER_1000_FRAGMENTS[5]),
    id(OVER_1000_FRAGMENTS[6]),
    id(OVER_1000_FRAGMENTS[7]),
];

/// ws.limits cases that only move many small writes or messages: slow in a
/// debug build, and no size or fragment limit affects them.
const NOT_ABOUT_LIMITS: &[&str] = &[
    "text-1mib-in-chops-",
    "binary-1mib-in-chops-",
    "text-1000-round-trips-",
    "binary-1000-round-trips-",
];

/// The compressed echo matrix: many MiB of DEFLATE each way, and only
/// compression itself can break it.
pub const ECHO_MATRIX: &[&str] = &["echo-", "params-"];

pub const TABLE: &[WsEntry] = &[
    // -----------------------------------------------------------------------
    // The fixture itself is correct.
    Entry {
        name: "correct_fixture_passes_ws_handshake",
        families: &[HANDSHAKE],
        ..E
    },
    Entry {
        name: "correct_fixture_passes_ws_framing",
        families: &[FRAMING],
        ..E
    },
    Entry {
        name: "correct_fixture_passes_ws_control",
        families: &[CONTROL],
        ..E
    },
    Entry {
        name: "correct_fixture_passes_ws_reserved",
        families: &[RESERVED],
        ..E
    },
    Entry {
        name: "correct_fixture_passes_ws_origin",
        families: &[ORIGIN],
        ..E
    },
    Entry {
        name: "correct_fixture_passes_ws_fragmentation",
        families: &[FRAGMENTATION],
        ..E
    },
    Entry {
        name: "correct_fixture_passes_ws_utf8",
        families: &[UTF8],
        ..E
    },
    Entry {
        name: "correct_fixture_passes_ws_close",
        families: &[CLOSE],
        ..E
    },
    Entry {
        name: "correct_fixture_passes_ws_limits",
        families: &[LIMITS],
        ..E
    },
    Entry {
        name: "correct_fixture_passes_ws_timing",
        families: &[TIMING],
        ..E
    },
    Entry {
        name: "correct_fixture_passes_ws_deflate",
        profile: WsProfile::Deflate,
        families: &[DEFLATE],
        ..E
    },
    // -----------------------------------------------------------------------
    // ws.handshake
    Entry {
        name: "wrong_accept_fails_ws_handshake",
        fault: Fault::WrongAccept,
        families: &[HANDSHAKE],
        fail: UPGRADING_HANDSHAKES,
        non_strict: UPGRADING_SHOULD,
        ..E
    },
    Entry {
        name: "ignoring_subprotocols_fails_ws_handshake",
        fault: Fault::IgnoresSubprotocols,
        families: &[HANDSHAKE],
        fail: &[id("ws.handshake.subprotocol-declared-selected")],
        ..E
    },
    Entry {
        name: "ignoring_the_version_fails_ws_handshake",
        fault: Fault::IgnoresVersion,
        families: &[HANDSHAKE],
        fail: &[
            id("ws.handshake.version-12"),
            id("ws.handshake.version-14"),
            id("ws.handshake.version-99"),
            id("ws.handshake.version-missing"),
            id("ws.handshake.version-duplicate"),
            id("ws.handshake.version-conflicting"),
        ],
        // Upgrading instead of answering 426 also misses the SHOULD.
        non_strict: &[id("ws.handshake.version-mismatch-426")],
        ..E
    },
    Entry {
        name: "accepting_a_bad_key_fails_ws_handshake",
        fault: Fault::AcceptsBadKey,
        families: &[HANDSHAKE],
        fail: &[
            id("ws.handshake.key-missing"),
            id("ws.handshake.key-empty"),
            id("ws.handshake.key-not-base64"),
            id("ws.handshake.key-15-bytes"),
            id("ws.handshake.key-17-bytes"),
            id("ws.handshake.key-duplicate"),
        ],
        ..E
    },
    Entry {
        name: "refusing_a_connection_token_list_fails_ws_handshake",
        fault: Fault::NoUpgradeTokenList,
        families: &[HANDSHAKE],
        fail: &[
            id("ws.handshake.connection-token-list"),
            id("ws.handshake.connection-split-lines"),
        ],
        ..E
    },
    // The fault answers `superchat` on every upgrade, so every case expecting
    // a 101 catches it, not only the two subprotocol cases.
    Entry {
        name: "selecting_an_unoffered_protocol_fails_ws_handshake",
        fault: Fault::SelectsUnofferedProtocol,
        families: &[HANDSHAKE],
        fail: UPGRADING_HANDSHAKES,
        non_strict: UPGRADING_SHOULD,
        ..E
    },
    Entry {
        name: "upgrading_any_request_fails_ws_handshake",
        fault: Fault::UpgradesAnyRequest,
        families: &[HANDSHAKE],
        fail: &[
            id("ws.handshake.method-post"),
            id("ws.handshake.method-put"),
            id("ws.handshake.method-delete"),
            id("ws.handshake.http-1-0"),
            id("ws.handshake.upgrade-header-missing"),
            id("ws.handshake.host-missing"),
            id("ws.handshake.host-duplicate"),
        ],
        ..E
    },
    Entry {
        name: "echoing_an_unknown_extension_fails_ws_handshake",
        fault: Fault::EchoesUnknownExtension,
        families: &[HANDSHAKE],
        fail: &[
            id("ws.handshake.extension-unknown-alone"),
            id("ws.handshake.extension-unknown-with-params"),
        ],
        ..E
    },
    Entry {
        name: "ignoring_duplicate_headers_fails_ws_handshake",
        fault: Fault::IgnoresDuplicateHeaders,
        families: &[HANDSHAKE],
        fail: &[
            id("ws.handshake.version-duplicate"),
            id("ws.handshake.version-conflicting"),
            id("ws.handshake.host-duplicate"),
        ],
        ..E
    },
    Entry {
        name: "hanging_on_an_oversized_head_fails_ws_handshake",
        fault: Fault::HangsOnOversizedHead,
        families: &[HANDSHAKE],
        fail: &[
            id("ws.handshake.oversized-header-64kib"),
            id("ws.handshake.oversized-header-1mib"),
            id("ws.handshake.oversized-header-64kib-then-new-connection"),
            id("ws.handshake.oversized-header-1mib-then-new-connection"),
        ],
        ..E
    },
    // -----------------------------------------------------------------------
    // ws.origin
    Entry {
        name: "ignoring_the_origin_fails_ws_origin",
        fault: Fault::IgnoresOrigin,
        families: &[ORIGIN],
        fail: &[id("ws.origin.disallowed")],
        ..E
    },
    Entry {
        name: "wrong_accept_fails_ws_origin",
        fault: Fault::WrongAccept,
        families: &[ORIGIN],
        fail: &[id("ws.origin.allowed")],
        ..E
    },
    // -----------------------------------------------------------------------
    // ws.framing
    Entry {
        name: "truncating_long_messages_fails_ws_framing",
        fault: Fault::TruncatesLongMessages,
        families: &[FRAMING],
        fail: &[
            id("ws.framing.text-65536"),
            id("ws.framing.binary-65536"),
            id("ws.framing.text-65536-chops-of-997"),
            id("ws.framing.binary-65536-chops-of-997"),
            id("ws.framing.text-65536-chops-of-64"),
            id("ws.framing.binary-65536-chops-of-64"),
            id("ws.framing.server-length-text-65536"),
            id("ws.framing.server-length-binary-65536"),
            id("ws.framing.server-length-text-65537"),
            id("ws.framing.server-length-binary-65537"),
        ],
        ..E
    },
    Entry {
        name: "accepting_unmasked_frames_fails_ws_framing",
        fault: Fault::AcceptsUnmasked,
        families: &[FRAMING],
        fail: &[
            id("ws.framing.unmasked-text"),
            id("ws.framing.unmasked-binary"),
            id("ws.framing.unmasked-ping"),
            id("ws.framing.unmasked-after-valid"),
            id("ws.framing.unmasked-empty-text"),
            id("ws.framing.unmasked-empty-binary"),
            id("ws.framing.unmasked-empty-ping"),
            id("ws.framing.unmasked-empty-pong"),
            id("ws.framing.unmasked-empty-continuation"),
        ],
        non_strict: &[id("ws.framing.unmasked-empty-close")],
        ..E
    },
    // Every frame the server sends is masked, so every `must` case fails;
    // the `info` cases still only report.
    Entry {
        name: "masking_server_frames_fails_ws_framing",
        fault: Fault::MasksServerFrames,
        families: &[FRAMING],
        fail: &[
            glob("ws.framing.server-length-*").count(19),
            glob("ws.framing.unmasked-empty-*").count(6),
            id("ws.framing.text-0"),
            id("ws.framing.binary-0"),
            id("ws.framing.text-125"),
            id("ws.framing.binary-125"),
            id("ws.framing.text-126"),
            id("ws.framing.binary-126"),
            id("ws.framing.text-127"),
            id("ws.framing.binary-127"),
            id("ws.framing.text-128"),
            id("ws.framing.binary-128"),
            id("ws.framing.text-65535"),
            id("ws.framing.binary-65535"),
            id("ws.framing.text-65536"),
            id("ws.framing.binary-65536"),
            id("ws.framing.text-125-chops-of-1"),
            id("ws.framing.binary-125-chops-of-1"),
            id("ws.framing.text-126-chops-of-1"),
            id("ws.framing.binary-126-chops-of-1"),
            id("ws.framing.text-65536-chops-of-997"),
            id("ws.framing.binary-65536-chops-of-997"),
            id("ws.framing.text-65536-chops-of-64"),
            id("ws.framing.binary-65536-chops-of-64"),
            id("ws.framing.binary-all-byte-values"),
            id("ws.framing.unmasked-text"),
            id("ws.framing.unmasked-binary"),
            id("ws.framing.unmasked-ping"),
            id("ws.framing.unmasked-after-valid"),
            id("ws.framing.length-top-bit-set"),
        ],
        ..E
    },
    // Masked server frames break every case that reads one, in every
    // family: what proves the plain echo cases (valid UTF-8, close codes,
    // sizes, compressed echoes) can fail at all.
    Entry {
        name: "masking_server_frames_fails_ws_utf8",
        fault: Fault::MasksServerFrames,
        families: &[UTF8],
        fail: &[glob("ws.utf8.*")],
        ..E
    },
    Entry {
        name: "masking_server_frames_fails_ws_close",
        fault: Fault::MasksServerFrames,
        families: &[CLOSE],
        fail: &[glob("ws.close.*").except(&["*-5000", "*-65535", "*-then-ping"])],
        non_strict: INVALID_CLOSE_CODES_SHOULD,
        ..E
    },
    Entry {
        name: "masking_server_frames_fails_ws_control",
        fault: Fault::MasksServerFrames,
        families: &[CONTROL],
        fail: &[glob("ws.control.*")],
        ..E
    },
    Entry {
        name: "masking_server_frames_fails_ws_limits",
        fault: Fault::MasksServerFrames,
        families: &[LIMITS],
        fail: &[
            glob("ws.limits.*").except(&["ws.limits.huge-declared-length", "ws.limits.*-4mib*"])
        ],
        non_strict: &[id("ws.limits.huge-declared-length")],
        // The 4 MiB echoes fail under the limit faults already; moving them
        // here too would only load the machine.
        skip: &["text-4mib", "binary-4mib"],
        ..E
    },
    Entry {
        name: "masking_server_frames_fails_ws_deflate",
        fault: Fault::MasksServerFrames,
        profile: WsProfile::Deflate,
        families: &[DEFLATE],
        fail: &[glob("ws.deflate.*").except(&[
            // `info`: they only report.
            "ws.deflate.offer-server-max-window-bits-8",
            "ws.deflate.echo-compressed",
            // `should`.
            "ws.deflate.offer-quoted-value",
            "ws.deflate.offer-fallback-list",
            "ws.deflate.*-fail-fast",
        ])],
        non_strict: &[
            id("ws.deflate.offer-quoted-value"),
            id("ws.deflate.offer-fallback-list"),
            id("ws.deflate.invalid-utf8-fail-fast"),
            id("ws.deflate.bomb-fail-fast"),
        ],
        ..E
    },
    // The edges (issue 15): rules checked at their boundaries.
    Entry {
        name: "a_16_bit_length_for_a_short_frame_fails_ws_framing",
        fault: Fault::Length16ForShortFrames,
        families: &[FRAMING],
        fail: &[
            id("ws.framing.server-length-text-0"),
            id("ws.framing.server-length-binary-0"),
            id("ws.framing.server-length-pong-0"),
            id("ws.framing.server-length-text-1"),
            id("ws.framing.server-length-binary-1"),
            id("ws.framing.server-length-pong-1"),
            id("ws.framing.server-length-text-125"),
            id("ws.framing.server-length-binary-125"),
            id("ws.framing.server-length-pong-125"),
            id("ws.framing.text-0"),
            id("ws.framing.binary-0"),
            id("ws.framing.text-125"),
            id("ws.framing.binary-125"),
            id("ws.framing.text-125-chops-of-1"),
            id("ws.framing.binary-125-chops-of-1"),
            id("ws.framing.unmasked-after-valid"),
        ],
        ..E
    },
    Entry {
        name: "a_64_bit_length_for_a_medium_frame_fails_ws_framing",
        fault: Fault::Length64ForMediumFrames,
        families: &[FRAMING],
        fail: &[
            id("ws.framing.server-length-text-126"),
            id("ws.framing.server-length-binary-126"),
            id("ws.framing.server-length-text-127"),
            id("ws.framing.server-length-binary-127"),
            id("ws.framing.server-length-text-65535"),
            id("ws.framing.server-length-binary-65535"),
            id("ws.framing.text-126"),
            id("ws.framing.binary-126"),
            id("ws.framing.text-127"),
            id("ws.framing.binary-127"),
            id("ws.framing.text-128"),
            id("ws.framing.binary-128"),
            id("ws.framing.text-65535"),
            id("ws.framing.binary-65535"),
            id("ws.framing.text-126-chops-of-1"),
            id("ws.framing.binary-126-chops-of-1"),
            id("ws.framing.binary-all-byte-values"),
        ],
        ..E
    },
    Entry {
        name: "accepting_empty_unmasked_frames_fails_ws_framing",
        fault: Fault::AcceptsUnmaskedEmpty,
        families: &[FRAMING],
        fail: &[
            id("ws.framing.unmasked-empty-text"),
            id("ws.framing.unmasked-empty-binary"),
            id("ws.framing.unmasked-empty-ping"),
            id("ws.framing.unmasked-empty-pong"),
            id("ws.framing.unmasked-empty-continuation"),
        ],
        // The empty close is answered with an empty close: a failure
        // without a status code, which §7.1.7 only makes a SHOULD.
        non_strict: &[id("ws.framing.unmasked-empty-close")],
        ..E
    },
    // -----------------------------------------------------------------------
    // ws.control
    // ping-empty still passes: its pong is empty anyway.
    Entry {
        name: "pong_with_the_wrong_payload_fails_ws_control",
        fault: Fault::PongWrongPayload,
        families: &[CONTROL],
        fail: &[
            id("ws.control.ping-text"),
            id("ws.control.ping-binary"),
            id("ws.control.ping-125-byte"),
            id("ws.control.ping-125-byte-chops-of-1"),
            id("ws.control.unsolicited-pong-then-ping"),
            id("ws.control.ten-pings"),
            id("ws.control.ten-pings-chops-of-1"),
        ],
        ..E
    },
    Entry {
        name: "answering_a_long_ping_fails_ws_control",
        fault: Fault::AcceptsLongPing,
        families: &[CONTROL],
        fail: &[id("ws.control.ping-126-byte")],
        ..E
    },
    Entry {
        name: "accepting_fragmented_control_frames_fails_ws_control",
        fault: Fault::AcceptsFragmentedControl,
        families: &[CONTROL],
        fail: &[
            id("ws.control.fragmented-ping"),
            id("ws.control.fragmented-pong"),
        ],
        ..E
    },
    Entry {
        name: "answering_unsolicited_pongs_fails_ws_control",
        fault: Fault::AnswersUnsolicitedPong,
        families: &[CONTROL],
        fail: &[
            id("ws.control.unsolicited-pong-empty"),
            id("ws.control.unsolicited-pong-with-payload"),
            id("ws.control.unsolicited-pong-then-ping"),
        ],
        ..E
    },
    // -----------------------------------------------------------------------
    // ws.reserved
    Entry {
        name: "ignoring_rsv_bits_fails_ws_reserved",
        fault: Fault::IgnoresRsv,
        families: &[RESERVED],
        fail: &[
            glob("ws.reserved.rsv-*-text").count(7),
            glob("ws.reserved.rsv-*-binary").count(7),
            glob("ws.reserved.rsv-*-ping").count(7),
            id("ws.reserved.rsv-1-close"),
            id("ws.reserved.rsv-4-close"),
            id("ws.reserved.rsv-7-close"),
        ],
        ..E
    },
    Entry {
        name: "ignoring_reserved_opcodes_fails_ws_reserved",
        fault: Fault::IgnoresReservedOpcode,
        families: &[RESERVED],
        fail: &[
            id("ws.reserved.opcode-3"),
            id("ws.reserved.opcode-4"),
            id("ws.reserved.opcode-5"),
            id("ws.reserved.opcode-6"),
            id("ws.reserved.opcode-7"),
            id("ws.reserved.opcode-11"),
            id("ws.reserved.opcode-12"),
            id("ws.reserved.opcode-13"),
            id("ws.reserved.opcode-14"),
            id("ws.reserved.opcode-15"),
            id("ws.reserved.opcode-3-alone"),
            id("ws.reserved.opcode-11-alone"),
        ],
        ..E
    },
    // Across families: every case that expects the connection to be failed.
    Entry {
        name: "wrong_close_code_fails_every_expect_fail",
        fault: Fault::WrongCloseCode,
        families: &[FRAMING, CONTROL, RESERVED],
        fail: &[
            id("ws.framing.unmasked-text"),
            id("ws.framing.unmasked-binary"),
            id("ws.framing.unmasked-ping"),
            id("ws.framing.unmasked-after-valid"),
            id("ws.framing.unmasked-empty-text"),
            id("ws.framing.unmasked-empty-binary"),
            id("ws.framing.unmasked-empty-ping"),
            id("ws.framing.unmasked-empty-pong"),
            id("ws.framing.unmasked-empty-close"),
            id("ws.framing.unmasked-empty-continuation"),
            id("ws.framing.length-top-bit-set"),
            id("ws.control.ping-126-byte"),
            id("ws.control.fragmented-ping"),
            id("ws.control.fragmented-pong"),
            // Every ws.reserved case ends in `expect_fail = { codes = [1002] }`.
            glob("ws.reserved.*").count(36),
        ],
        ..E
    },
    // -----------------------------------------------------------------------
    // ws.fragmentation
    Entry {
        name: "echoing_fragments_separately_fails_ws_fragmentation",
        fault: Fault::EchoesFragmentsSeparately,
        families: &[FRAGMENTATION],
        fail: &[
            id("ws.fragmentation.text-2-fragments-one-write"),
            id("ws.fragmentation.binary-2-fragments-one-write"),
            id("ws.fragmentation.text-2-fragments-octets"),
            id("ws.fragmentation.binary-2-fragments-octets"),
            id("ws.fragmentation.text-2-fragments-per-frame"),
            id("ws.fragmentation.binary-2-fragments-per-frame"),
            id("ws.fragmentation.ping-between-fragments-one-write"),
            id("ws.fragmentation.ping-between-fragments-octets"),
            id("ws.fragmentation.ping-between-fragments-per-frame"),
            id("ws.fragmentation.pings-between-5-fragments-with-pauses"),
            id("ws.fragmentation.unsolicited-pong-between-fragments"),
            id("ws.fragmentation.zero-length-all-empty"),
            id("ws.fragmentation.zero-length-first-empty"),
            id("ws.fragmentation.zero-length-middle-empty"),
            id("ws.fragmentation.zero-length-last-empty"),
            id("ws.fragmentation.text-100-fragments-of-1"),
            id("ws.fragmentation.binary-100-fragments-of-1"),
            id("ws.fragmentation.text-1000-fragments-of-16"),
            id("ws.fragmentation.binary-1000-fragments-of-16"),
            // The first fragment comes back as a message before the failure.
            id("ws.fragmentation.text-then-text-while-open"),
            id("ws.fragmentation.text-then-binary-while-open"),
            id("ws.fragmentation.binary-then-binary-while-open"),
            id("ws.fragmentation.binary-then-text-while-open"),
            id("ws.fragmentation.new-message-interleaved-unfinished"),
        ],
        ..E
    },
    Entry {
        name: "accepting_orphan_continuations_fails_ws_fragmentation",
        fault: Fault::AcceptsOrphanContinuation,
        families: &[FRAGMENTATION],
        fail: &[
            id("ws.fragmentation.orphan-continuation-fin"),
            id("ws.fragmentation.orphan-continuation-no-fin"),
            id("ws.fragmentation.orphan-continuation-fin-octets"),
            id("ws.fragmentation.orphan-continuation-no-fin-octets"),
            id("ws.fragmentation.orphan-continuation-after-message"),
            id("ws.fragmentation.orphan-continuations-repeated"),
        ],
        ..E
    },
    Entry {
        name: "restarting_on_a_new_data_frame_fails_ws_fragmentation",
        fault: Fault::RestartsOnNewDataFrame,
        families: &[FRAGMENTATION],
        fail: &[
            id("ws.fragmentation.text-then-text-while-open"),
            id("ws.fragmentation.text-then-binary-while-open"),
            id("ws.fragmentation.binary-then-binary-while-open"),
            id("ws.fragmentation.binary-then-text-while-open"),
            id("ws.fragmentation.new-message-interleaved-unfinished"),
        ],
        ..E
    },
    Entry {
        name: "deferring_pings_in_fragments_fails_ws_fragmentation",
        fault: Fault::DefersPingsInFragments,
        families: &[FRAGMENTATION],
        fail: &[
            id("ws.fragmentation.ping-between-fragments-one-write"),
            id("ws.fragmentation.ping-between-fragments-octets"),
            id("ws.fragmentation.ping-between-fragments-per-frame"),
            id("ws.fragmentation.pings-between-5-fragments-with-pauses"),
        ],
        ..E
    },
    Entry {
        name: "wrong_close_code_fails_ws_fragmentation_and_ws_close",
        fault: Fault::WrongCloseCode,
        families: &[FRAGMENTATION, CLOSE],
        fail: &[
            glob("ws.fragmentation.orphan-*").count(6),
            glob("ws.fragmentation.text-then-*").count(2),
            glob("ws.fragmentation.binary-then-*").count(2),
            id("ws.fragmentation.new-message-interleaved-unfinished"),
            INVALID_CLOSE_CODES,
            id("ws.close.payload-1-byte"),
            id("ws.close.payload-124-byte-reason"),
            id("ws.close.tcp-closed-after-failing"),
        ],
        non_strict: INVALID_CLOSE_CODES_SHOULD,
        ..E
    },
    // -----------------------------------------------------------------------
    // ws.utf8
    Entry {
        name: "skipping_utf8_validation_fails_ws_utf8",
        fault: Fault::SkipsUtf8Validation,
        families: &[UTF8],
        fail: UTF8_MUST_FAIL,
        ..E
    },
    Entry {
        name: "failing_invalid_utf8_with_1002_fails_ws_utf8",
        fault: Fault::Utf8Fails1002,
        families: &[UTF8],
        fail: UTF8_MUST_FAIL,
        ..E
    },
    Entry {
        name: "validating_each_frame_alone_fails_ws_utf8",
        fault: Fault::ValidatesEachFrameAlone,
        families: &[UTF8],
        fail: &[
            id("ws.utf8.valid-greek-one-byte-per-frame"),
            id("ws.utf8.valid-one-to-four-bytes-one-byte-per-frame"),
            id("ws.utf8.valid-u10ffff-one-byte-per-frame"),
            id("ws.utf8.valid-fragmented-inside-code-points"),
        ],
        ..E
    },
    Entry {
        name: "refusing_noncharacters_fails_ws_utf8",
        fault: Fault::Utf8RefusesNoncharacters,
        families: &[UTF8],
        fail: &[
            // U+xFFFE, U+xFFFF of every plane, and U+FDD0..U+FDEF.
            glob("ws.utf8.valid-noncharacter*").count(35),
            id("ws.utf8.valid-last-3-byte-uffff"),
            id("ws.utf8.valid-last-4-byte-u10ffff"),
            id("ws.utf8.valid-u10ffff-one-byte-per-frame"),
        ],
        ..E
    },
    Entry {
        name: "validating_utf8_only_at_message_end_is_non_strict_in_ws_utf8",
        fault: Fault::ValidatesUtf8AtMessageEnd,
        families: &[UTF8],
        non_strict: &[
            id("ws.utf8.fail-fast-fragment-with-invalid-code-point"),
            id("ws.utf8.fail-fast-fragment-completing-invalid-sequence"),
            id("ws.utf8.fail-fast-in-one-frame-invalid-code-point"),
            id("ws.utf8.fail-fast-in-one-frame-completing-invalid-sequence"),
        ],
        ..E
    },
    Entry {
        name: "skipping_the_final_fragment_fails_ws_utf8",
        fault: Fault::Utf8SkipsFinalFragment,
        families: &[UTF8],
        fail: &[
            glob("ws.utf8.invalid-only-in-final-fragment-*").count(8),
            glob("ws.utf8.incomplete-at-end-of-final-fragment-of-*").count(5),
            glob("ws.utf8.incomplete-before-empty-final-fragment-*").count(7),
            id("ws.utf8.invalid-truncated-at-end-one-byte-per-frame"),
            id("ws.utf8.invalid-split-across-frames"),
            id("ws.utf8.incomplete-at-end-of-last-fragment"),
        ],
        ..E
    },
    Entry {
        name: "an_empty_final_fragment_ending_the_message_unchecked_fails_ws_utf8",
        fault: Fault::Utf8IgnoresEmptyFinalFragment,
        families: &[UTF8],
        fail: &[glob("ws.utf8.incomplete-before-empty-final-fragment-*").count(7)],
        ..E
    },
    Entry {
        name: "validating_binary_continuations_fails_ws_utf8",
        fault: Fault::ValidatesBinaryContinuations,
        families: &[UTF8],
        fail: &[glob("ws.utf8.binary-fragments-not-validated-*").count(10)],
        ..E
    },
    // -----------------------------------------------------------------------
    // ws.close
    Entry {
        name: "echoing_invalid_close_codes_fails_ws_close",
        fault: Fault::EchoesInvalidCloseCodes,
        families: &[CLOSE],
        fail: &[INVALID_CLOSE_CODES],
        non_strict: INVALID_CLOSE_CODES_SHOULD,
        ..E
    },
    Entry {
        name: "ignoring_close_reason_utf8_fails_ws_close",
        fault: Fault::IgnoresCloseReasonUtf8,
        families: &[CLOSE],
        fail: &[glob("ws.close.reason-invalid-utf8-*")],
        ..E
    },
    Entry {
        name: "no_close_reply_fails_ws_close",
        fault: Fault::NoCloseReply,
        families: &[CLOSE],
        // Every case whose close is valid: those with an invalid one expect
        // the connection failed instead, which still happens.
        fail: &[glob("ws.close.*").except(&[
            "ws.close.invalid-code-*",
            "ws.close.reason-invalid-utf8-*",
            "ws.close.payload-1-byte",
            "ws.close.payload-124-byte-reason",
            "ws.close.tcp-closed-after-failing",
            // `info`: it only reports.
            "ws.close.large-message-then-close-then-ping",
        ])],
        ..E
    },
    Entry {
        name: "keeping_tcp_open_fails_ws_close",
        fault: Fault::KeepsTcpOpen,
        families: &[CLOSE],
        fail: &[
            id("ws.close.text-after-close"),
            id("ws.close.ping-after-close"),
            id("ws.close.second-close-after-close"),
            id("ws.close.fragment-after-close"),
            id("ws.close.close-in-fragmented-message"),
            id("ws.close.tcp-closed-after-close-handshake"),
            id("ws.close.tcp-closed-after-failing"),
        ],
        ..E
    },
    // Failing by a bare TCP close meets the MUST but not the SHOULD to send
    // a close frame: non-strict, and the TCP close itself is what a later
    // `expect_tcp_close` asks for (it was once waited for a second time), so
    // tcp-closed-after-close-handshake passes.
    Entry {
        name: "dropping_tcp_on_errors_is_non_strict_not_a_failure",
        fault: Fault::DropsTcpOnError,
        families: &[CLOSE],
        // Every case in which the target fails the connection.
        non_strict: &[
            id("ws.close.tcp-closed-after-failing"),
            id("ws.close.payload-1-byte"),
            id("ws.close.payload-124-byte-reason"),
            glob("ws.close.invalid-code-*").count(12),
            glob("ws.close.reason-invalid-utf8-*").count(4),
        ],
        ..E
    },
    Entry {
        name: "answering_after_close_fails_ws_close",
        fault: Fault::AnswersAfterClose,
        families: &[CLOSE],
        fail: &[
            id("ws.close.text-after-close"),
            id("ws.close.ping-after-close"),
            id("ws.close.second-close-after-close"),
            id("ws.close.close-in-fragmented-message"),
        ],
        ..E
    },
    // -----------------------------------------------------------------------
    // ws.limits
    Entry {
        name: "an_undeclared_message_limit_fails_ws_limits",
        fault: Fault::MessageLimit1MiB,
        families: &[LIMITS],
        fail: ABOVE_1MIB,
        skip: NOT_ABOUT_LIMITS,
        ..E
    },
    Entry {
        name: "a_declared_message_limit_is_info_in_ws_limits",
        fault: Fault::MessageLimit1MiB,
        profile: WsProfile::MessageLimit,
        families: &[LIMITS],
        info: ABOVE_1MIB,
        skip: NOT_ABOUT_LIMITS,
        ..E
    },
    Entry {
        name: "an_undeclared_fragment_limit_fails_ws_limits",
        fault: Fault::FragmentLimit1000,
        families: &[LIMITS],
        fail: OVER_1000_FRAGMENTS_SEL,
        skip: NOT_ABOUT_LIMITS,
        ..E
    },
    Entry {
        name: "a_declared_fragment_limit_is_info_in_ws_limits",
        fault: Fault::FragmentLimit1000,
        profile: WsProfile::FragmentLimit,
        families: &[LIMITS],
        info: OVER_1000_FRAGMENTS_SEL,
        skip: NOT_ABOUT_LIMITS,
        ..E
    },
    // A limit enforced below the declared one is still a failure: the
    // fixture refuses above 1 MiB, the profile claims 8 MiB.
    Entry {
        name: "a_limit_below_the_declared_one_fails_ws_limits",
        fault: Fault::MessageLimit1MiB,
        profile: WsProfile::MessageLimitOverstated,
        families: &[LIMITS],
        fail: ABOVE_1MIB,
        skip: NOT_ABOUT_LIMITS,
        ..E
    },
    Entry {
        name: "waiting_for_a_huge_frame_is_non_strict_in_ws_limits",
        fault: Fault::WaitsForHugeFrame,
        families: &[LIMITS],
        non_strict: &[id("ws.limits.huge-declared-length")],
        skip: NOT_ABOUT_LIMITS,
        ..E
    },
    // -----------------------------------------------------------------------
    // ws.timing
    Entry {
        name: "a_slow_pong_is_non_strict_in_ws_timing",
        fault: Fault::SlowPong,
        families: &[TIMING],
        non_strict: &[
            id("ws.timing.ping-answered-within-500ms"),
            id("ws.timing.ping-answered-within-500ms-after-large-message"),
            // Its ping is answered later than the test's 500 ms timeout.
            id("ws.timing.idle-kept-open"),
        ],
        ..E
    },
    Entry {
        name: "unbounded_buffering_is_non_strict_in_ws_timing",
        fault: Fault::UnboundedBuffering,
        families: &[TIMING],
        non_strict: &[id("ws.timing.slow-reader-backpressure")],
        ..E
    },
    Entry {
        name: "closing_idle_connections_undeclared_is_non_strict_in_ws_timing",
        fault: Fault::ClosesIdleConnections,
        families: &[TIMING],
        non_strict: &[id("ws.timing.idle-kept-open")],
        ..E
    },
    Entry {
        name: "closing_idle_connections_as_declared_passes_ws_timing",
        fault: Fault::ClosesIdleConnections,
        profile: WsProfile::IdleTimeout,
        families: &[TIMING],
        all_pass_because: Some("the profile declares the idle close the fixture makes"),
        ..E
    },
    // The correct fixture keeps idle connections open: a profile declaring
    // an idle timeout for it is wrong, and the idle case says so.
    Entry {
        name: "a_declared_idle_timeout_not_kept_is_non_strict_in_ws_timing",
        profile: WsProfile::IdleTimeout,
        families: &[TIMING],
        non_strict: &[id("ws.timing.idle-timeout-closes")],
        ..E
    },
    // -----------------------------------------------------------------------
    // ws.deflate
    // Every accepted offer without client_max_window_bits gets an answer
    // with it.
    Entry {
        name: "answering_an_unoffered_param_fails_ws_deflate",
        fault: Fault::DeflateAnswersUnofferedParam,
        profile: WsProfile::Deflate,
        families: &[DEFLATE],
        fail: &[
            id("ws.deflate.offer-plain"),
            id("ws.deflate.offer-server-no-context-takeover"),
            id("ws.deflate.offer-client-no-context-takeover"),
            id("ws.deflate.offer-other-extension-first"),
            id("ws.deflate.offer-list-autobahn"),
            id("ws.deflate.offer-two-lines"),
            id("ws.deflate.decline-then-accept"),
            id("ws.deflate.rfc-example-hello"),
            id("ws.deflate.rfc-example-stored-block"),
            id("ws.deflate.rfc-example-bfinal"),
            id("ws.deflate.rfc-example-two-blocks"),
            id("ws.deflate.rfc-example-shared-window"),
            id("ws.deflate.empty-message-text"),
            id("ws.deflate.empty-message-binary"),
            id("ws.deflate.empty-fragments"),
            id("ws.deflate.uncompressed-text"),
            id("ws.deflate.uncompressed-binary"),
            id("ws.deflate.interleaved-compressed-uncompressed"),
            id("ws.deflate.ping-inside-compressed-message"),
            id("ws.deflate.server-no-context-takeover-honoured"),
            id("ws.deflate.rsv1-continuation"),
            id("ws.deflate.rsv1-continuation-uncompressed"),
            id("ws.deflate.rsv1-ping"),
            id("ws.deflate.rsv1-pong"),
            id("ws.deflate.rsv1-close"),
            id("ws.deflate.rsv1-ping-inside-compressed-message"),
            id("ws.deflate.rsv1-rsv2-with-deflate"),
            id("ws.deflate.rsv1-rsv3-with-deflate"),
            id("ws.deflate.rsv2-with-deflate"),
            id("ws.deflate.rsv3-with-deflate"),
            id("ws.deflate.corrupt-reserved-btype"),
            id("ws.deflate.corrupt-stored-len"),
            id("ws.deflate.corrupt-distance-before-start"),
            id("ws.deflate.invalid-utf8-after-inflate-surrogate"),
            id("ws.deflate.invalid-utf8-after-inflate-truncated"),
            id("ws.deflate.bomb"),
            id("ws.deflate.bomb-at-limit"),
            glob("ws.deflate.offer-server-max-window-bits-*").except(&["*-8"]),
            glob("ws.deflate.server-window-*"),
            glob("ws.deflate.server-no-context-takeover-*").except(&["*-honoured"]),
            // The parameter sets without client_max_window_bits in the offer
            // the fixture takes: ctx, noctx (the list's first offer has it).
            glob("ws.deflate.params-ctx-*").except(&["*-w*"]),
            glob("ws.deflate.params-noctx-*").except(&["*-w*"]),
        ],
        non_strict: &[
            id("ws.deflate.offer-quoted-value"),
            id("ws.deflate.invalid-utf8-fail-fast"),
            id("ws.deflate.bomb-fail-fast"),
        ],
        // Info cases report info whatever happens; the echo cases all offer
        // client_max_window_bits.
        skip: &["echo-"],
        ..E
    },
    Entry {
        name: "accepting_invalid_offers_fails_ws_deflate",
        fault: Fault::DeflateAcceptsInvalidOffers,
        profile: WsProfile::Deflate,
        families: &[DEFLATE],
        // decline-then-accept included.
        fail: &[glob("ws.deflate.decline-*").count(20)],
        skip: ECHO_MATRIX,
        ..E
    },
    // Every case with server_no_context_takeover agreed and more than one
    // compressed echo: the second refers back into the first.
    Entry {
        name: "keeping_the_server_context_fails_ws_deflate",
        fault: Fault::DeflateKeepsServerContext,
        profile: WsProfile::Deflate,
        families: &[DEFLATE],
        fail: &[
            id("ws.deflate.offer-server-no-context-takeover"),
            id("ws.deflate.offer-all-params"),
            id("ws.deflate.offer-list-autobahn"),
            // -honoured and the 8 sizes.
            glob("ws.deflate.server-no-context-takeover-*").count(9),
            // Sets noctx, noctx-w9, noctx-w15, 10 sizes each.
            glob("ws.deflate.params-noctx-*").count(30),
            glob("ws.deflate.params-list-*").count(10),
        ],
        skip: &["echo-"],
        ..E
    },
    Entry {
        name: "accepting_rsv1_on_continuations_fails_ws_deflate",
        fault: Fault::DeflateAcceptsRsv1Continuation,
        profile: WsProfile::Deflate,
        families: &[DEFLATE],
        fail: &[
            id("ws.deflate.rsv1-continuation"),
            id("ws.deflate.rsv1-continuation-uncompressed"),
        ],
        skip: ECHO_MATRIX,
        ..E
    },
    Entry {
        name: "dropping_the_client_context_fails_ws_deflate",
        fault: Fault::DeflateDropsClientContext,
        profile: WsProfile::Deflate,
        families: &[DEFLATE],
        // Every case sending a compressed message that refers back into an
        // earlier one (with client context takeover agreed): repeated
        // messages do, but random data 64 KiB apart or more is out of the
        // 32 KiB window.
        fail: &[
            glob("ws.deflate.echo-*")
                .except(&[
                    "*-random-65536",
                    "*-random-131072",
                    "ws.deflate.echo-compressed",
                ])
                .count(38),
            glob("ws.deflate.params-ctx-*").count(30),
            glob("ws.deflate.server-window-*").count(12),
            glob("ws.deflate.server-no-context-takeover-*").count(9),
            glob("ws.deflate.offer-server-max-window-bits-*")
                .except(&["*-8"])
                .count(7),
            id("ws.deflate.offer-client-max-window-bits"),
            glob("ws.deflate.offer-client-max-window-bits-*")
                .except(&["*-8"])
                .count(7),
            id("ws.deflate.offer-plain"),
            id("ws.deflate.offer-server-no-context-takeover"),
            id("ws.deflate.offer-other-extension-first"),
            id("ws.deflate.offer-list-autobahn"),
            id("ws.deflate.offer-two-lines"),
            id("ws.deflate.decline-then-accept"),
            id("ws.deflate.rfc-example-shared-window"),
            id("ws.deflate.interleaved-compressed-uncompressed"),
        ],
        non_strict: &[
            id("ws.deflate.offer-quoted-value"),
            id("ws.deflate.offer-fallback-list"),
        ],
        ..E
    },
    Entry {
        name: "inflating_without_a_limit_fails_ws_deflate",
        fault: Fault::DeflateNoInflateLimit,
        profile: WsProfile::Deflate,
        families: &[DEFLATE],
        fail: &[id("ws.deflate.bomb")],
        non_strict: &[id("ws.deflate.bomb-fail-fast")],
        skip: ECHO_MATRIX,
        ..E
    },
    Entry {
        name: "a_server_window_above_the_agreed_one_fails_ws_deflate",
        fault: Fault::DeflateIgnoresServerWindow,
        profile: WsProfile::Deflate,
        families: &[DEFLATE],
        fail: &[
            glob("ws.deflate.server-window-*").count(12),
            // The other cases that agree a window below 15 bits and echo
            // enough for the fixture's 32 KiB window to reach past it
            // (deterministic: generated messages, zlib at a fixed level).
            id("ws.deflate.offer-server-max-window-bits-9"),
            id("ws.deflate.offer-server-max-window-bits-10"),
            id("ws.deflate.offer-server-max-window-bits-11"),
            id("ws.deflate.offer-server-max-window-bits-12"),
            id("ws.deflate.offer-server-max-window-bits-13"),
            id("ws.deflate.offer-list-autobahn"),
            id("ws.deflate.params-ctx-w9-256"),
            // Sets ctx-w9, noctx-w9 and list from 1 KiB up.
            glob("ws.deflate.params-ctx-w9-*")
                .except(&["*-16", "*-64", "*-256"])
                .count(7),
            glob("ws.deflate.params-noctx-w9-*")
                .except(&["*-16", "*-64", "*-256"])
                .count(7),
            glob("ws.deflate.params-list-*")
                .except(&["*-16", "*-64", "*-256"])
                .count(7),
        ],
        // `should` cases: a violation there is non-strict.
        non_strict: &[
            id("ws.deflate.offer-quoted-value"),
            id("ws.deflate.offer-fallback-list"),
        ],
        skip: &["echo-"],
        ..E
    },
];
