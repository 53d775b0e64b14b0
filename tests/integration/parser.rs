//! Property tests: the parser is total. Arbitrary bytes and mutated real
//! lines never make it panic, and every line gets exactly one kind.

use exim_pilot::parse::{Kind, parse_line, render};
use proptest::prelude::*;

use crate::util::fixture;

/// Real lines: the log the real Exim wrote, plus shapes it does not produce
/// here (4.99 separators, syslog wrapping, test-suite placeholders).
fn corpus() -> &'static [Vec<u8>] {
    static CORPUS: std::sync::LazyLock<Vec<Vec<u8>>> = std::sync::LazyLock::new(load_corpus);
    &CORPUS
}

fn load_corpus() -> Vec<Vec<u8>> {
    let sample = std::fs::read(fixture("sample/mainlog")).expect("sample log");
    let mut lines: Vec<Vec<u8>> = sample
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    for extra in [
        &b"1999-03-02 09:44:33 10HmaX-000000005vi-0000 ** usery@domain1 <userx@domain1> R=route_smtp T=smtp H=127.0.0.1 [127.0.0.1] : SMTP error from remote mail server after RCPT TO:<usery@domain1>: 550 Not that one"[..],
        b"Apr 28 15:53:37 server exim[12105]: 2016-04-28 15:53:37 [12105] 1avnJx-00039F-Hs <= a@example.com U=a P=local S=1",
        b"2017-07-30 18:51:05.712 +0100 [12] 10HmaX-000000005vi-0000 => |/bin/sh -c \"cat >x\" (p@x) <pipe@test.ex> R=forward T=pipe S=sss QT=q.qqqs",
        b"2013-01-04 17:03:46 login authenticator failed for host.example.com ([192.168.2.33]) [192.0.2.74]:25: 535 Incorrect authentication data (set_id=brian)",
        b"2024-03-21 09:18:51 H=m05.example.tld [192.0.2.21]:43030 I=[198.51.100.2]:25 Ci=7326 CV=no SNI=mail.example.tld F=<user@example.tld> temporarily rejected RCPT <locus@example.tld>: relay not permitted",
        b"1999-03-02 09:44:33 SMTP connection Ci=p1239 from (test) [ip4.ip4.ip4.ip4]:10003 I=[ip4.ip4.ip4.ip4]:PORT_D D=qqs closed by QUIT",
    ] {
        lines.push(extra.to_vec());
    }
    lines
}

/// Bytes that matter to the grammar, for insertion.
const SPECIAL: &[u8] = b" \t\"\\:[]()<>=*-.@|/\0\xff\n\r0123456789";

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, byte: u8 },
    Insert { at: usize, byte: u8 },
    Delete { at: usize, len: usize },
    Truncate { at: usize },
    Duplicate { at: usize, len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let special = proptest::sample::select(SPECIAL);
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Flip { at, byte }),
        (any::<usize>(), special).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        (any::<usize>(), 1usize..20).prop_map(|(at, len)| Mutation::Delete { at, len }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), 1usize..200).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
    ]
}

fn apply(line: &mut Vec<u8>, mutation: &Mutation) {
    let position = |at: usize, line: &Vec<u8>| {
        if line.is_empty() {
            0
        } else {
            at % (line.len() + 1)
        }
    };
    match *mutation {
        Mutation::Flip { at, byte } => {
            if !line.is_empty() {
                let at = at % line.len();
                line[at] = byte;
            }
        }
        Mutation::Insert { at, byte } => {
            let at = position(at, line);
            line.insert(at, byte);
        }
        Mutation::Delete { at, len } => {
            let at = position(at, line);
            let end = (at + len).min(line.len());
            line.drain(at..end);
        }
        Mutation::Truncate { at } => {
            let at = position(at, line);
            line.truncate(at);
        }
        Mutation::Duplicate { at, len } => {
            let at = position(at, line);
            let end = (at + len).min(line.len());
            let copy = line[at..end].to_vec();
            line.splice(at..at, copy);
        }
    }
}

fn check_total(line: &[u8]) {
    let entry = parse_line(line);
    assert!(Kind::ALL.contains(&entry.kind()));
    // Rendering touches every field, so a bad slice would show here too.
    let rendered = render(&entry);
    assert!(rendered.starts_with(entry.kind().name()));
    assert_eq!(parse_line(line), entry, "parsing is deterministic");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(line in proptest::collection::vec(any::<u8>(), 0..600)) {
        check_total(&line);
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_prefix_never_panic(
        body in proptest::collection::vec(proptest::sample::select(SPECIAL.iter().copied().chain(b'A'..=b'z').collect::<Vec<_>>()), 0..300),
        with_id in any::<bool>(),
    ) {
        let mut line = b"2024-01-01 00:00:00 ".to_vec();
        if with_id {
            line.extend_from_slice(b"1smkL5-00000000e65-24eQ ");
        }
        line.extend_from_slice(&body);
        check_total(&line);
    }

    #[test]
    fn mutated_real_lines_never_panic(
        pick in any::<prop::sample::Index>(),
        mutations in proptest::collection::vec(mutation(), 1..8),
    ) {
        let mut line = pick.get(corpus()).clone();
        for mutation in &mutations {
            apply(&mut line, mutation);
        }
        check_total(&line);
    }
}

#[test]
fn every_prefix_of_every_real_line_parses() {
    for line in corpus() {
        for end in 0..=line.len() {
            check_total(&line[..end]);
        }
    }
}
