//! The generator's truth matches the log it writes.

use super::*;
use crate::parse::{Kind, parse_line};

#[test]
fn generated_logs_parse_completely_and_match_their_truth() {
    let mut out = Vec::new();
    let truth = Generator::new(7).write(20_000, &mut out).unwrap();
    let mut counts = std::collections::HashMap::new();
    for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        *counts.entry(parse_line(line).kind()).or_insert(0u64) += 1;
    }
    let count = |kind| counts.get(&kind).copied().unwrap_or(0);
    assert_eq!(count(Kind::Unrecognised), 0);
    assert_eq!(truth.counts.lines, counts.values().sum::<u64>());
    assert_eq!(truth.counts.received, count(Kind::Reception));
    assert_eq!(
        truth.counts.delivered,
        count(Kind::Delivery) + count(Kind::DeliveryMore)
    );
    assert_eq!(truth.counts.deferred, count(Kind::Deferral));
    assert_eq!(truth.counts.bounced, count(Kind::Failure));
    assert_eq!(truth.counts.completed, count(Kind::Completed));
    assert_eq!(truth.counts.frozen, count(Kind::Frozen));
    assert!(
        truth.counts.rejected > 0
            && truth.counts.deferred > 0
            && truth.counts.frozen > 0
            && count(Kind::DeliveryMore) > 0
    );
}

#[test]
fn id_format_is_chosen() {
    let id_lengths = |ids| {
        let mut out = Vec::new();
        Generator::new(3)
            .with_ids(ids)
            .write(2000, &mut out)
            .unwrap();
        out.split(|&b| b == b'\n')
            .filter_map(|line| parse_line(line).message_id().map(|id| id.as_str().len()))
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(id_lengths(IdFormat::Old), [16].into());
    assert_eq!(id_lengths(IdFormat::New), [23].into());
    assert_eq!(id_lengths(IdFormat::Mixed), [16, 23].into());
}

#[test]
fn the_same_seed_gives_the_same_log() {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    Generator::new(1).write(1000, &mut a).unwrap();
    Generator::new(1).write(1000, &mut b).unwrap();
    assert_eq!(a, b);
}

/// Each profile parses completely, matches its truth, and has the shape
/// its name promises (the numbers, per line of log).
#[test]
fn every_profile_has_its_shape() {
    for profile in PROFILES {
        let mut out = Vec::new();
        let mut generator = Generator::new(11).with_profile(profile);
        let truth = generator.write(30_000, &mut out).unwrap();
        let mut counts = std::collections::HashMap::new();
        let mut longest_reception = 0;
        for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let kind = parse_line(line).kind();
            *counts.entry(kind).or_insert(0u64) += 1;
            if kind == Kind::Reception {
                longest_reception = longest_reception.max(line.len());
            }
        }
        let count = |kind| counts.get(&kind).copied().unwrap_or(0);
        let share = |n: u64| n as f64 / truth.counts.lines as f64;
        let name = profile.name;
        assert_eq!(count(Kind::Unrecognised), 0, "{name}");
        assert_eq!(truth.counts.lines, counts.values().sum::<u64>(), "{name}");
        assert_eq!(truth.counts.bounced, count(Kind::Failure), "{name}");
        match name {
            "many-addresses" => assert!(
                share(truth.distinct_recipients) >= 0.1,
                "{name}: {} distinct recipients in {} lines",
                truth.distinct_recipients,
                truth.counts.lines
            ),
            "multi-recipient" => {
                assert!(
                    share(count(Kind::DeliveryMore)) >= 0.10,
                    "{name}: {counts:?}"
                );
            }
            "attack" => {
                let hostile = count(Kind::Rejection)
                    + count(Kind::AuthFailed)
                    + count(Kind::ConnectionLost)
                    + count(Kind::NoMail);
                assert!(share(hostile) > 0.5, "{name}: {counts:?}");
            }
            "bounce-storm" => assert!(share(count(Kind::Failure)) >= 0.10, "{name}: {counts:?}"),
            "long-lines" => assert!(longest_reception >= 500, "{name}: {longest_reception}"),
            // Within a few points of the public logs' shares (profile.rs).
            "realistic" => {
                for (kind, low, high) in [
                    (Kind::AuthFailed, 0.25, 0.45),
                    (Kind::HostLookupFailed, 0.12, 0.25),
                    (Kind::MessageIsFrozen, 0.10, 0.30),
                    (Kind::Reception, 0.003, 0.03),
                ] {
                    let got = share(count(kind));
                    assert!(
                        (low..=high).contains(&got),
                        "{name}: {kind:?} {got:.3}: {counts:?}"
                    );
                }
            }
            "unique-texts" => {
                let texts = |field: &str| {
                    let values: Vec<&[u8]> = out
                        .split(|&b| b == b'\n')
                        .filter_map(|line| {
                            let at = line
                                .windows(field.len())
                                .position(|w| w == field.as_bytes())?;
                            Some(&line[at..])
                        })
                        .collect();
                    let distinct: std::collections::HashSet<&[u8]> =
                        values.iter().copied().collect();
                    (values.len(), distinct.len())
                };
                for field in [" T=\"", " C=\""] {
                    let (seen, distinct) = texts(field);
                    assert!(
                        seen > 1000 && distinct * 100 >= seen * 95,
                        "{name}: {field} {distinct} of {seen}"
                    );
                }
            }
            _ => {}
        }
    }
}

/// Lines of the parser's catalogue appear in generated logs: every kind
/// the catalogue's id-less rows show, in a long enough log.
#[test]
fn the_catalogues_kinds_appear_in_generated_logs() {
    let mut out = Vec::new();
    Generator::new(11).write(200_000, &mut out).unwrap();
    let seen: std::collections::HashSet<Kind> = out
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| parse_line(l).kind())
        .collect();
    let wanted: std::collections::HashSet<Kind> = catalogue_bodies()
        .iter()
        .map(|body| parse_line(format!("2026-12-07 09:00:00 {body}").as_bytes()).kind())
        .collect();
    let missing: Vec<&Kind> = wanted.difference(&seen).collect();
    assert!(missing.is_empty(), "never generated: {missing:?}");
    assert!(wanted.len() >= 20, "{wanted:?}");
}
