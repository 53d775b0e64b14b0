//! The helper's request decoder: what it accepts, and every way it refuses.

use super::*;

fn line(verb: &str, ids: &[&str]) -> Vec<u8> {
    serde_json::json!({
        "v": 1,
        "request_id": "r-1",
        "verb": verb,
        "ids": ids,
        "reason": "stuck since Tuesday",
        "origin": "cli",
    })
    .to_string()
    .into_bytes()
}

#[test]
fn an_allowed_verb_on_exim_ids_is_accepted_with_a_fixed_command_line() {
    let request = Request::decode(
        &line("freeze", &["1rAAAA-000001-AB", "1rAbCd-0000000000A-1x2Y"]),
        1,
    )
    .unwrap();
    assert_eq!(request.verb, Verb::Freeze);
    assert_eq!(
        request.exim_args(&request.ids),
        ["-Mf", "1rAAAA-000001-AB", "1rAbCd-0000000000A-1x2Y"]
    );
    let listing = Request::decode(&line("list", &[]), 1).unwrap();
    assert_eq!(listing.exim_args(&listing.ids), ["-bpr"]);
    let deliver = Request::decode(&line("deliver", &["1rAAAA-000001-AB"]), 2).unwrap();
    assert_eq!(deliver.exim_args(&deliver.ids), ["-M", "1rAAAA-000001-AB"]);
}

#[test]
fn anything_else_is_refused_before_it_can_run() {
    let refused = |bytes: &[u8], tier: u8| Request::decode(bytes, tier).unwrap_err();
    // Verbs off the list, Exim's own dangerous options among them.
    for verb in ["exec", "-be", "add_recipient", "Freeze", ""] {
        assert!(
            matches!(
                refused(&line(verb, &["1rAAAA-000001-AB"]), 1),
                Refusal::Malformed(_)
            ),
            "{verb}"
        );
    }
    // Ids that are options, paths, shell or almost ids.
    for id in [
        "-C/tmp/evil.conf",
        "1rAAAA-000001-AB;reboot",
        "1rAAAA-000001-AB ",
        "1rAAAA-000001-A",
        "../input/1rAAAA-000001-AB-H",
        "1rAAAA-000001-AB\0",
    ] {
        assert!(
            matches!(refused(&line("remove", &[id]), 1), Refusal::BadId(_)),
            "{id:?}"
        );
    }
    // The wrong tier either way.
    assert!(matches!(
        refused(&line("deliver", &["1rAAAA-000001-AB"]), 1),
        Refusal::WrongTier { tier: 2, .. }
    ));
    assert!(matches!(
        refused(&line("freeze", &["1rAAAA-000001-AB"]), 2),
        Refusal::WrongTier { tier: 1, .. }
    ));
    // Exim reads only the first id of -Mv*: exactly one.
    assert!(matches!(
        refused(
            &line("show_body", &["1rAAAA-000001-AB", "1rAAAA-000002-AB"]),
            1
        ),
        Refusal::IdCount { given: 2, .. }
    ));
    assert!(matches!(
        refused(&line("thaw", &[]), 1),
        Refusal::IdCount { given: 0, .. }
    ));
    assert!(matches!(
        refused(&line("list", &["1rAAAA-000001-AB"]), 1),
        Refusal::IdCount { given: 1, .. }
    ));
    let too_many: Vec<String> = (0..=MAX_IDS).map(|i| format!("1rAAAA-{i:06}-AB")).collect();
    let too_many: Vec<&str> = too_many.iter().map(String::as_str).collect();
    assert!(matches!(
        refused(&line("remove", &too_many), 1),
        Refusal::IdCount { .. } | Refusal::TooLong
    ));
    // Size, version, fields.
    assert_eq!(
        refused(&vec![b' '; MAX_REQUEST_BYTES + 1], 1),
        Refusal::TooLong
    );
    let mut request: serde_json::Value = serde_json::from_slice(&line("count", &[])).unwrap();
    request["v"] = 2.into();
    assert_eq!(
        refused(request.to_string().as_bytes(), 1),
        Refusal::Version(2)
    );
    request["v"] = 1.into();
    request["reason"] = "x".repeat(MAX_REASON_BYTES + 1).into();
    assert_eq!(
        refused(request.to_string().as_bytes(), 1),
        Refusal::FieldTooLong("reason")
    );
    assert!(matches!(refused(b"not json", 1), Refusal::Malformed(_)));
}

#[test]
fn every_verb_has_its_own_flag_and_only_two_need_the_second_tier() {
    let flags: std::collections::BTreeSet<&str> = Verb::ALL.iter().map(|v| v.exim_flag()).collect();
    assert_eq!(flags.len(), Verb::ALL.len());
    let second: Vec<Verb> = Verb::ALL.into_iter().filter(|v| v.tier() == 2).collect();
    assert_eq!(second, [Verb::Deliver, Verb::GiveUp]);
    let audited: Vec<&str> = Verb::ALL
        .into_iter()
        .filter(|v| v.audited())
        .map(Verb::name)
        .collect();
    assert_eq!(
        audited,
        [
            "show_body",
            "freeze",
            "thaw",
            "remove",
            "deliver",
            "give_up"
        ]
    );
    for verb in Verb::ALL {
        let json = serde_json::to_string(&verb).unwrap();
        assert_eq!(json, format!("\"{}\"", verb.name()));
    }
}

#[test]
fn the_configured_bulk_limit_never_exceeds_what_the_helper_takes() {
    assert_eq!(MAX_IDS, crate::config::MAX_BULK_LIMIT);
}
