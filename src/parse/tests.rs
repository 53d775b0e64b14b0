//! Expect-style tests: a line in, the parsed entry out (in the compact
//! [`render`] form). Lines come from the Exim specification, Exim's own test
//! suite (with its placeholders), the log of the real Exim in
//! `fixtures/sample/mainlog`, and real-world shapes rewritten with
//! documentation addresses. `UPDATE_EXPECT=1 cargo test` rewrites the
//! expectations; review the diff before committing it.

use expect_test::{Expect, expect};

use super::{Kind, parse_line, render};

fn check(line: &str, expected: Expect) {
    expected.assert_eq(&render(&parse_line(line.as_bytes())));
}

fn check_bytes(line: &[u8], expected: Expect) {
    expected.assert_eq(&render(&parse_line(line)));
}

// ---- prefixes -------------------------------------------------------------

#[test]
fn prefix_plain() {
    check(
        "2001-09-16 16:09:47 SMTP connection from [127.0.0.1] closed by QUIT",
        expect![[
            r#"connection_closed at="2001-09-16 16:09:47" ip="127.0.0.1" detail="closed by QUIT""#
        ]],
    );
}

#[test]
fn prefix_with_zone() {
    check(
        "2003-04-25 11:17:07 +0100 Start queue run: pid=12762",
        expect![[
            r#"queue_run_start at="2003-04-25 11:17:07 +0100" run_pid="12762" detail="pid=12762""#
        ]],
    );
}

#[test]
fn prefix_with_millis_and_new_id() {
    check(
        "2017-07-30 18:51:05.712 10HmaZ-000000005vi-0000 Completed QT=q.qqqs",
        expect![[r#"completed at="2017-07-30 18:51:05.712" id="10HmaZ-000000005vi-0000" QT=?ms"#]],
    );
}

#[test]
fn prefix_with_zone_pid_and_old_id() {
    check(
        "2020-06-20 01:32:57 +0200 [789] 1jmKso-0009d4-Uf Completed",
        expect![[r#"completed at="2020-06-20 01:32:57 +0200" pid="789" id="1jmKso-0009d4-Uf""#]],
    );
}

#[test]
fn prefix_with_micros_negative_zone_and_pid() {
    check(
        "2023-05-30 06:10:13.345678 -0330 [12] 1smkL5-00000000e65-24eQ Completed QT=1m2s",
        expect![[
            r#"completed at="2023-05-30 06:10:13.345 -0330" pid="12" id="1smkL5-00000000e65-24eQ" QT=62000ms"#
        ]],
    );
}

#[test]
fn prefix_with_millis_and_pid_no_id() {
    check(
        "2023-05-30 06:10:13.345 [4711] End queue run: pid=4711",
        expect![[r#"queue_run_end at="2023-05-30 06:10:13.345" pid="4711" run_pid="4711""#]],
    );
}

#[test]
fn a_bracketed_ip_after_the_id_is_not_a_pid() {
    check(
        "1999-03-02 09:44:33 10HmaX-000000005vi-0000 [127.0.0.1] SSL verify error: depth=0 error=self signed certificate cert=/C=UK/O=The Exim Maintainers",
        expect![[
            r#"tls_error at="1999-03-02 09:44:33" id="10HmaX-000000005vi-0000" ip="127.0.0.1" detail="SSL verify error: depth=0 error=self signed certificate cert=/C=UK/O=The Exim Maintainers""#
        ]],
    );
}

#[test]
fn nul_bytes_before_a_line_are_skipped() {
    check_bytes(
        b"\x00\x00\x00\x002014-04-04 04:17:31 exim 4.80 daemon started: pid=2832, -q30m, listening for SMTP on [127.0.0.1]:25 [::1]:25",
        expect![[r#"daemon_started at="2014-04-04 04:17:31" version="4.80" daemon_pid="2832" detail="pid=2832, -q30m, listening for SMTP on [127.0.0.1]:25 [::1]:25""#]],
    );
}

#[test]
fn a_line_merged_with_a_truncated_one_is_unrecognised() {
    check(
        "2012014-04-05 03:17:39 exim 4.80 daemon started: pid=2955",
        expect![[
            r#"unrecognised body="2012014-04-05 03:17:39 exim 4.80 daemon started: pid=2955""#
        ]],
    );
}

// ---- receptions -----------------------------------------------------------

#[test]
fn reception_from_the_real_exim() {
    check(
        r#"2026-11-26 13:58:22 [7339] 1xWZzS-0001uN-1x <= a@outside.example H=(vm) [127.0.0.1]:46022 P=esmtp S=435 id=20261126135822.007338@vm T="hello alice" for alice@test.example"#,
        expect![[
            r#"reception at="2026-11-26 13:58:22" pid="7339" id="1xWZzS-0001uN-1x" sender="a@outside.example" helo="vm" ip="127.0.0.1" port="46022" P="esmtp" S="435" msgid="20261126135822.007338@vm" subject="hello alice" for="alice@test.example""#
        ]],
    );
}

#[test]
fn reception_spec_example() {
    check(
        "2002-10-31 08:57:53 16ZCW1-0005MB-00 <= kryten@dwarf.fict.example H=mailer.fict.example [192.168.123.123] U=exim P=smtp S=5678 id=<incoming message id>",
        expect![[
            r#"reception at="2002-10-31 08:57:53" id="16ZCW1-0005MB-00" sender="kryten@dwarf.fict.example" host="mailer.fict.example" ip="192.168.123.123" U="exim" P="smtp" S="5678" msgid="<incoming""#
        ]],
    );
}

#[test]
fn reception_of_a_bounce() {
    check(
        "2014-03-21 06:25:12 1WQstD-0000qH-EP <= <> R=1WQstC-0000qD-Vl U=Debian-exim P=local S=1579",
        expect![[
            r#"reception at="2014-03-21 06:25:12" id="1WQstD-0000qH-EP" sender="<>" bounce_of="1WQstC-0000qD-Vl" U="Debian-exim" P="local" S="1579""#
        ]],
    );
}

#[test]
fn reception_with_tls_new_id_and_both_names() {
    check(
        "2024-09-07 01:34:11 1smkL5-00000000e65-24eQ <= nothing@example.org H=mx.example.org (helo.example.org) [2001:db8::12]:4025 P=esmtps X=TLS1.3:ECDHE_X25519__RSA_PSS_RSAE_SHA256__AES_256_GCM:256 CV=no S=15813 for a@example.com b@example.com",
        expect![[
            r#"reception at="2024-09-07 01:34:11" id="1smkL5-00000000e65-24eQ" sender="nothing@example.org" host="mx.example.org" helo="helo.example.org" ip="2001:db8::12" port="4025" P="esmtps" X="TLS1.3:ECDHE_X25519__RSA_PSS_RSAE_SHA256__AES_256_GCM:256" CV="no" S="15813" for="a@example.com b@example.com""#
        ]],
    );
}

#[test]
fn reception_with_auth_sni_placeholders_and_old_id_in_message_id() {
    check(
        "1999-03-02 09:44:33 10HmaY-000000005vi-0000 <= CALLER@myhost.test.ex H=the.local.host.name (myhost.test.ex) [ip4.ip4.ip4.ip4] P=esmtpsa X=TLS1.x:ke-RSA-AES256-SHAnnn:xxx SNI=normal A=plain:userx S=sss id=E10HmaX-0005vi-00@myhost.test.ex for normal@test.ex",
        expect![[
            r#"reception at="1999-03-02 09:44:33" id="10HmaY-000000005vi-0000" sender="CALLER@myhost.test.ex" host="the.local.host.name" helo="myhost.test.ex" ip="ip4.ip4.ip4.ip4" P="esmtpsa" X="TLS1.x:ke-RSA-AES256-SHAnnn:xxx" SNI="normal" A="plain:userx" S="sss" msgid="E10HmaX-0005vi-00@myhost.test.ex" for="normal@test.ex""#
        ]],
    );
}

#[test]
fn reception_with_escaped_subject_and_quoted_sender() {
    check(
        r#"1999-03-02 09:44:33 10HmbB-000000005vi-0000 <= "spaced user"@myhost.test.ex U=spaced user P=local S=sss T="Patrik F\344ltstr\366m \"quoted\" \\ end" from <x@y> for a@b"#,
        expect![[
            r#"reception at="1999-03-02 09:44:33" id="10HmbB-000000005vi-0000" sender="\"spaced user\"@myhost.test.ex" U="spaced user" P="local" S="sss" subject="Patrik F\\344ltstr\\366m \\\"quoted\\\" \\\\ end" from="x@y" for="a@b""#
        ]],
    );
}

#[test]
fn reception_with_chunking_prdr_connection_id_and_receive_time() {
    check(
        "2017-07-30 18:51:05.712 10HmaX-000000005vi-0000 <= someone@some.domain H=(tester) [127.0.0.1] Ci=p1235 P=esmtp PRDR K S=sss M8S=8 RT=0.304s DKIM=test.ex Q=alternate for bad1@test.ex good@test.ex",
        expect![[
            r#"reception at="2017-07-30 18:51:05.712" id="10HmaX-000000005vi-0000" sender="someone@some.domain" helo="tester" ip="127.0.0.1" P="esmtp" S="sss" for="bad1@test.ex good@test.ex" Q="alternate" RT=304ms Ci="p1235" DKIM="test.ex" M8S="8" K PRDR"#
        ]],
    );
}

#[test]
fn reception_with_pipelining_and_a_quoted_recipient() {
    let line = br#"1999-03-02 09:44:33 10HmbC-000000005vi-0000 <= CALLER@myhost.test.ex H=localhost (myhost.test.ex) [127.0.0.1] P=esmtp L- S=sss for A@test.ex "b c"@test.ex d@test.ex <trunc>"#;
    check_bytes(
        line,
        expect![[
            r#"reception at="1999-03-02 09:44:33" id="10HmbC-000000005vi-0000" sender="CALLER@myhost.test.ex" host="localhost" helo="myhost.test.ex" ip="127.0.0.1" P="esmtp" S="sss" for="A@test.ex \"b c\"@test.ex d@test.ex <trunc>" L="L-""#
        ]],
    );
    let entry = parse_line(line);
    let super::Event::Reception(reception) = entry.event else {
        panic!("{entry:?}")
    };
    let list: Vec<&[u8]> = reception.recipient_list().collect();
    assert_eq!(list, [&b"A@test.ex"[..], br#""b c"@test.ex"#, b"d@test.ex"]);
}

#[test]
fn fake_reject() {
    check(
        "1999-03-02 09:44:33 10HmaX-000000005vi-0000 (= CALLER@myhost.test.ex U=CALLER P=local-smtp S=sss",
        expect![[
            r#"fake_reject at="1999-03-02 09:44:33" id="10HmaX-000000005vi-0000" sender="CALLER@myhost.test.ex" U="CALLER" P="local-smtp" S="sss""#
        ]],
    );
}

// ---- deliveries -----------------------------------------------------------

#[test]
fn local_delivery_with_original() {
    check(
        "2002-10-31 08:59:13 16ZCW1-0005MB-00 => marv <marv@hitch.fict.example> R=localuser T=local_delivery",
        expect![[
            r#"delivery at="2002-10-31 08:59:13" id="16ZCW1-0005MB-00" final="marv" original="marv@hitch.fict.example" R="localuser" T="local_delivery""#
        ]],
    );
}

#[test]
fn remote_delivery_from_the_real_exim() {
    check(
        r#"2026-11-26 13:58:23 [7350] 1xWZzT-0001uX-0I => dave@remote.example R=remote_relay T=remote_smtp S=450 H=127.0.0.1 [127.0.0.1]:2526 X=TLS1.3:ECDHE_SECP256R1__RSA_PSS_RSAE_SHA256__AES_256_GCM:256 CV=no DN="C=UK,O=Exim Developers,CN=peer.remote.example" K C="250- 450 byte chunk, total 450\\n250 OK id=1xWZzT-0001ua-0M" QT=0s DT=0s"#,
        expect![[
            r#"delivery at="2026-11-26 13:58:23" pid="7350" id="1xWZzT-0001uX-0I" final="dave@remote.example" R="remote_relay" T="remote_smtp" S="450" host="127.0.0.1" ip="127.0.0.1" port="2526" X="TLS1.3:ECDHE_SECP256R1__RSA_PSS_RSAE_SHA256__AES_256_GCM:256" CV="no" DN="C=UK,O=Exim Developers,CN=peer.remote.example" C="250- 450 byte chunk, total 450\\\\n250 OK id=1xWZzT-0001ua-0M" K QT=0ms DT=0ms"#
        ]],
    );
}

#[test]
fn second_address_in_the_same_delivery() {
    check(
        r#"2020-06-20 00:13:16 1jmXgg-000AIC-89 -> sally@example.net R=dnslookup T=remote_smtp_smarthost H=smarthost.example.net [192.0.2.5] X=TLS1.2:ECDHE_RSA_AES_128_GCM_SHA256:128 CV=yes DN="C=XX,L=Here,O=Text Corp,CN=*.example.net" C="250 Received OK""#,
        expect![[
            r#"delivery_more at="2020-06-20 00:13:16" id="1jmXgg-000AIC-89" final="sally@example.net" R="dnslookup" T="remote_smtp_smarthost" host="smarthost.example.net" ip="192.0.2.5" X="TLS1.2:ECDHE_RSA_AES_128_GCM_SHA256:128" CV="yes" DN="C=XX,L=Here,O=Text Corp,CN=*.example.net" C="250 Received OK""#
        ]],
    );
}

#[test]
fn delivery_to_a_file_with_an_intermediate_parent() {
    check(
        "1999-03-02 09:44:33 10HmbA-0005vi-00 => TESTSUITE/test-mail/redirected (redirected@test.ex) <userx@test.ex> R=r0 T=t1",
        expect![[
            r#"delivery at="1999-03-02 09:44:33" id="10HmbA-0005vi-00" final="TESTSUITE/test-mail/redirected" parents="redirected@test.ex" original="userx@test.ex" R="r0" T="t1""#
        ]],
    );
}

#[test]
fn delivery_to_a_pipe_with_spaces_and_quotes() {
    check(
        r#"1999-03-02 09:44:33 10HmaX-000000005vi-0000 => |/bin/sh -c "cat >TESTSUITE/test-mail/pipe" <pipe@test.ex> R=forward T=pipe"#,
        expect![[
            r#"delivery at="1999-03-02 09:44:33" id="10HmaX-000000005vi-0000" final="|/bin/sh -c \"cat >TESTSUITE/test-mail/pipe\"" original="pipe@test.ex" R="forward" T="pipe""#
        ]],
    );
}

#[test]
fn a_blackhole_redirect_is_a_discard_not_a_delivery() {
    check(
        "1999-03-02 09:44:33 10HmaX-0005vi-00 => :blackhole: <hole@nowhere.example> R=blackhole_router",
        expect![[
            r#"blackholed at="1999-03-02 09:44:33" id="10HmaX-0005vi-00" final=":blackhole:" original="hole@nowhere.example" R="blackhole_router""#
        ]],
    );
}

#[test]
fn delivery_over_a_continued_connection_with_port_and_sender() {
    check(
        r#"1999-03-02 09:44:33 10HmaY-000000005vi-0000 => usery@test.ex F=<CALLER@the.local.host.name> R=my_main_router T=my_smtp H=127.0.0.1 [127.0.0.1]:25* C="250 second message accepted OK" QT=1h2m3s DT=4.5s"#,
        expect![[
            r#"delivery at="1999-03-02 09:44:33" id="10HmaY-000000005vi-0000" final="usery@test.ex" F="CALLER@the.local.host.name" R="my_main_router" T="my_smtp" host="127.0.0.1" ip="127.0.0.1" port="25" continued C="250 second message accepted OK" QT=3723000ms DT=4500ms"#
        ]],
    );
}

#[test]
fn delivery_with_early_pipelining_and_fast_open() {
    check(
        r#"2017-07-30 18:51:05.712 10HmbD-000000005vi-0000 => chunking@test.ex R=client T=smtp H=127.0.0.1 [127.0.0.1] TFO* X=TLS1.x:ke-RSA-AES256-SHAnnn:xxx L* K C="250- 3nn byte chunk, total 3nn\n250 OK id=10HmbE-000000005vi-0000""#,
        expect![[
            r#"delivery at="2017-07-30 18:51:05.712" id="10HmbD-000000005vi-0000" final="chunking@test.ex" R="client" T="smtp" host="127.0.0.1" ip="127.0.0.1" X="TLS1.x:ke-RSA-AES256-SHAnnn:xxx" C="250- 3nn byte chunk, total 3nn\\n250 OK id=10HmbE-000000005vi-0000" L="L*" K"#
        ]],
    );
}

#[test]
fn delivery_with_dnssec_and_shadow_transport() {
    check(
        "1999-03-02 09:44:33 10HmaZ-000000005vi-0000 => withlogging@l-sec.test.ex R=client T=send_to_server H=l-sec.test.ex DS [127.0.0.1] ST=t3",
        expect![[
            r#"delivery at="1999-03-02 09:44:33" id="10HmaZ-000000005vi-0000" final="withlogging@l-sec.test.ex" R="client" T="send_to_server" host="l-sec.test.ex" ip="127.0.0.1" DS ST="t3""#
        ]],
    );
}

#[test]
fn cutthrough_delivery_with_return_path() {
    check(
        r#"1999-03-02 09:44:33 10HmaX-000000005vi-0000 >> userx@domain.com P=<fred@myhost.test.ex> R=all T=smtp H=127.0.0.1 [127.0.0.1] C="250 OK""#,
        expect![[
            r#"cutthrough at="1999-03-02 09:44:33" id="10HmaX-000000005vi-0000" final="userx@domain.com" return_path="fred@myhost.test.ex" R="all" T="smtp" host="127.0.0.1" ip="127.0.0.1" C="250 OK""#
        ]],
    );
}

#[test]
fn suppressed_delivery() {
    check(
        r#"1999-03-02 09:44:33 10HmaX-000000005vi-0000 *> newr1@myhost.test.ex <r1@test.ex> R=ok T=t1 H=V4NET.0.0.0 [V4NET.0.0.0] C="delivery bypassed by -N option""#,
        expect![[
            r#"suppressed at="1999-03-02 09:44:33" id="10HmaX-000000005vi-0000" final="newr1@myhost.test.ex" original="r1@test.ex" R="ok" T="t1" host="V4NET.0.0.0" ip="V4NET.0.0.0" C="delivery bypassed by -N option""#
        ]],
    );
}

// ---- failures -------------------------------------------------------------

#[test]
fn failure_with_colon_separator_after_the_original() {
    check(
        "1995-12-19 16:20:23 0tRiQz-0002Q5-00 ** jim@trek99.example <jim@trek99.example>: unknown mail domain",
        expect![[
            r#"failure at="1995-12-19 16:20:23" id="0tRiQz-0002Q5-00" final="jim@trek99.example" original="jim@trek99.example" error="unknown mail domain""#
        ]],
    );
}

#[test]
fn failure_after_tls_fields_with_smtp_code() {
    check(
        r#"2020-06-19 10:32:57 [789] 1jmKso-0009d4-Uf ** molly@example.com R=dnslookup T=remote_smtp H=mail.example.com [192.0.2.3] X=TLS1.2:ECDHE_RSA_AES_256_GCM_SHA384:256 CV=yes DN="C=US,ST=Fake,L=Lost,O=Zee Corp,CN=mail.example.com": SMTP error from remote mail server after end of data: 554 5.2.0 Recipient Mailbox Full [504]"#,
        expect![[
            r#"failure at="2020-06-19 10:32:57" pid="789" id="1jmKso-0009d4-Uf" final="molly@example.com" R="dnslookup" T="remote_smtp" host="mail.example.com" ip="192.0.2.3" X="TLS1.2:ECDHE_RSA_AES_256_GCM_SHA384:256" CV="yes" DN="C=US,ST=Fake,L=Lost,O=Zee Corp,CN=mail.example.com" code=554/5.2.0 error="SMTP error from remote mail server after end of data: 554 5.2.0 Recipient Mailbox Full [504]""#
        ]],
    );
}

#[test]
fn failure_with_the_4_99_separator() {
    check(
        "1999-03-02 09:44:33 10HmaX-000000005vi-0000 ** usery@domain1 <userx@domain1> R=route_smtp T=smtp H=127.0.0.1 [127.0.0.1] : SMTP error from remote mail server after RCPT TO:<usery@domain1>: 550 Not that one",
        expect![[
            r#"failure at="1999-03-02 09:44:33" id="10HmaX-000000005vi-0000" final="usery@domain1" original="userx@domain1" R="route_smtp" T="smtp" host="127.0.0.1" ip="127.0.0.1" code=550 error="SMTP error from remote mail server after RCPT TO:<usery@domain1>: 550 Not that one""#
        ]],
    );
}

#[test]
fn failure_with_the_4_99_separator_after_the_address() {
    check(
        "1999-03-02 09:44:33 10HmaY-000000005vi-0000 ** userx@bad.ex : Unrouteable address",
        expect![[
            r#"failure at="1999-03-02 09:44:33" id="10HmaY-000000005vi-0000" final="userx@bad.ex" error="Unrouteable address""#
        ]],
    );
}

#[test]
fn failure_old_style_with_host_in_the_message() {
    check(
        "2002-07-11 07:14:17 17SXDU-000189-00 ** ace400@pb.example R=dnslookup T=remote_smtp: SMTP error from remote mailer after pipelined RCPT TO:<ace400@pb.example>: host pbmail3.py.example [192.168.63.111]: 553 5.3.0 <ace400@pb.example>...Addressee unknown",
        expect![[
            r#"failure at="2002-07-11 07:14:17" id="17SXDU-000189-00" final="ace400@pb.example" R="dnslookup" T="remote_smtp" code=553/5.3.0 error="SMTP error from remote mailer after pipelined RCPT TO:<ace400@pb.example>: host pbmail3.py.example [192.168.63.111]: 553 5.3.0 <ace400@pb.example>...Addressee unknown""#
        ]],
    );
}

#[test]
fn failure_with_trailing_delivery_time_from_the_real_exim() {
    check(
        "2026-11-26 13:58:23 [7366] 1xWZzT-0001un-20 ** d@outside.example: Unrouteable address DT=0s",
        expect![[
            r#"failure at="2026-11-26 13:58:23" pid="7366" id="1xWZzT-0001un-20" final="d@outside.example" DT=0ms error="Unrouteable address""#
        ]],
    );
}

#[test]
fn failure_of_a_fail_router_address_with_colons() {
    check(
        r#"1999-03-02 09:44:33 10HmbC-000000005vi-0000 ** :fail: fail message@special <":fail: fail message"@special> R=special : fail message"#,
        expect![[
            r#"failure at="1999-03-02 09:44:33" id="10HmbC-000000005vi-0000" final=":fail: fail message@special" original="\":fail: fail message\"@special" R="special" error="fail message""#
        ]],
    );
}

#[test]
fn failure_with_a_fixed_text_and_no_separator() {
    check(
        "1999-03-02 09:44:33 10HmbG-0005vi-00 ** defer@x.y routing yielded a deferred delivery",
        expect![[
            r#"failure at="1999-03-02 09:44:33" id="10HmbG-0005vi-00" final="defer@x.y" error="routing yielded a deferred delivery""#
        ]],
    );
}

#[test]
fn failure_retry_timeout() {
    check(
        "2020-06-19 04:54:02 1jmFYj-00039V-QX ** bob@null.example: retry timeout exceeded",
        expect![[
            r#"failure at="2020-06-19 04:54:02" id="1jmFYj-00039V-QX" final="bob@null.example" error="retry timeout exceeded""#
        ]],
    );
}

// ---- deferrals ------------------------------------------------------------

#[test]
fn deferral_spec_example() {
    check(
        "2002-12-19 16:20:23 16aiQz-0002Q5-00 == marvin@endrest.example R=dnslookup T=smtp defer (146): Connection refused",
        expect![[
            r#"deferral at="2002-12-19 16:20:23" id="16aiQz-0002Q5-00" final="marvin@endrest.example" R="dnslookup" T="smtp" errno="146" error="Connection refused""#
        ]],
    );
}

#[test]
fn deferral_from_the_real_exim_with_greylisting() {
    check(
        "2026-11-26 13:58:23 [7369] 1xWZzT-0001uq-2c == greyuser@remote.example R=remote_relay T=remote_smtp defer (-44) H=127.0.0.1 [127.0.0.1]:2526 DT=0s: SMTP error from remote mail server after RCPT TO:<greyuser@remote.example>: 451 4.7.1 Greylisted, try later",
        expect![[
            r#"deferral at="2026-11-26 13:58:23" pid="7369" id="1xWZzT-0001uq-2c" final="greyuser@remote.example" R="remote_relay" T="remote_smtp" host="127.0.0.1" ip="127.0.0.1" port="2526" errno="-44" DT=0ms code=451/4.7.1 error="SMTP error from remote mail server after RCPT TO:<greyuser@remote.example>: 451 4.7.1 Greylisted, try later""#
        ]],
    );
}

#[test]
fn deferral_ipv6_host_then_message() {
    check(
        "1999-03-02 09:44:33 10HmaX-000000005vi-0000 == userx@test.ex R=r1 T=t1 defer (-45) H=::1 [::1]: SMTP error from remote mail server after MAIL FROM:<CALLER@the.local.host.name>: 450 Temporary error",
        expect![[
            r#"deferral at="1999-03-02 09:44:33" id="10HmaX-000000005vi-0000" final="userx@test.ex" R="r1" T="t1" host="::1" ip="::1" errno="-45" code=450 error="SMTP error from remote mail server after MAIL FROM:<CALLER@the.local.host.name>: 450 Temporary error""#
        ]],
    );
}

#[test]
fn routing_deferral_retry_time_not_reached() {
    check(
        "2026-11-26 13:58:27 [7394] 1xWZzT-0001uq-2c == greyuser@remote.example routing defer (-52) DT=0s: retry time not reached",
        expect![[
            r#"deferral at="2026-11-26 13:58:27" pid="7394" id="1xWZzT-0001uq-2c" final="greyuser@remote.example" routing errno="-52" DT=0ms error="retry time not reached""#
        ]],
    );
}

#[test]
fn deferral_retry_time_not_reached_for_any_host() {
    check(
        "1999-03-02 09:44:33 10HmbB-000000005vi-0000 == xxxx@some.domain R=all T=smtp defer (-54): retry time not reached for any host for 'some.domain'",
        expect![[
            r#"deferral at="1999-03-02 09:44:33" id="10HmbB-000000005vi-0000" final="xxxx@some.domain" R="all" T="smtp" errno="-54" error="retry time not reached for any host for 'some.domain'""#
        ]],
    );
}

// ---- message state --------------------------------------------------------

#[test]
fn completed_frozen_and_thawed() {
    check(
        "2002-10-31 09:00:11 16ZCW1-0005MB-00 Completed",
        expect![[r#"completed at="2002-10-31 09:00:11" id="16ZCW1-0005MB-00""#]],
    );
    check(
        "2026-11-26 13:58:23 [7366] 1xWZzT-0001un-20 Frozen (delivery error message)",
        expect![[
            r#"frozen at="2026-11-26 13:58:23" pid="7366" id="1xWZzT-0001un-20" reason="(delivery error message)""#
        ]],
    );
    check(
        "2009-11-22 19:01:57 [6064] 1NC5En-0001om-Bh Message is frozen",
        expect![[r#"message_is_frozen at="2009-11-22 19:01:57" pid="6064" id="1NC5En-0001om-Bh""#]],
    );
    check(
        "2014-04-06 06:47:31 1WVwcp-00010Z-RO Unfrozen by errmsg timer",
        expect![[r#"unfrozen at="2014-04-06 06:47:31" id="1WVwcp-00010Z-RO" by="errmsg timer""#]],
    );
    check(
        "2014-04-06 06:47:31 1WVwcp-00010Z-RO pi@raspberrypi <root@raspberrypi>: error ignored",
        expect![[
            r#"error_ignored at="2014-04-06 06:47:31" id="1WVwcp-00010Z-RO" address="pi@raspberrypi <root@raspberrypi>""#
        ]],
    );
}

#[test]
fn host_errors_new_and_old_style() {
    check(
        "2020-06-19 04:54:02 1jmFYj-00039V-QX H=null.example [192.0.2.6] Connection timed out",
        expect![[
            r#"host_error at="2020-06-19 04:54:02" id="1jmFYj-00039V-QX" host="null.example" ip="192.0.2.6" error="Connection timed out""#
        ]],
    );
    check(
        "1999-03-02 09:44:33 10HmbF-000000005vi-0000 H=127.0.0.1 [127.0.0.1]: SMTP error from remote mail server after pipelined DATA: 450 sorry no banner for you today",
        expect![[
            r#"host_error at="1999-03-02 09:44:33" id="10HmbF-000000005vi-0000" host="127.0.0.1" ip="127.0.0.1" code=450 error="SMTP error from remote mail server after pipelined DATA: 450 sorry no banner for you today""#
        ]],
    );
    check(
        "1999-03-02 09:44:33 10HmaX-0005vi-00 46c.test.ex [V6NET:ffff:836f:a00:a:800:200a:c033] Network Error",
        expect![[
            r#"host_error at="1999-03-02 09:44:33" id="10HmaX-0005vi-00" host="46c.test.ex" ip="V6NET:ffff:836f:a00:a:800:200a:c033" error="Network Error""#
        ]],
    );
}

#[test]
fn rejected_after_data_with_an_id() {
    check(
        "2026-11-26 13:58:24 [7377] 1xWZzU-0001uz-1g H=(vm) [127.0.0.1]:46076 F=<g@outside.example> rejected after DATA: content rejected",
        expect![[
            r#"rejection at="2026-11-26 13:58:24" pid="7377" id="1xWZzU-0001uz-1g" stage="after_data" helo="vm" ip="127.0.0.1" port="46076" sender="g@outside.example" reason="content rejected""#
        ]],
    );
    check(
        "1999-03-02 09:44:33 10HmaX-000000005vi-0000 U=CALLER F=<CALLER@myhost.test.ex> temporarily rejected after DATA",
        expect![[
            r#"rejection at="1999-03-02 09:44:33" id="10HmaX-000000005vi-0000" stage="after_data" temporary U="CALLER" sender="CALLER@myhost.test.ex" reason="""#
        ]],
    );
}

#[test]
fn local_scan_rejection() {
    check(
        "2010-11-24 21:48:41 1PLKOW-00046U-EW F=sender@example.com H=host.example.net (example.com) [192.0.2.237] I=[10.10.10.32]:25 P=esmtp temporarily rejected by local_scan(): Temporary local problem",
        expect![[
            r#"rejection at="2010-11-24 21:48:41" id="1PLKOW-00046U-EW" stage="after_data" temporary host="host.example.net" helo="example.com" ip="192.0.2.237" sender="sender@example.com" reason="Temporary local problem""#
        ]],
    );
}

#[test]
fn dkim_note_and_spool_lock() {
    check(
        "1999-03-02 09:44:33 10HmaX-000000005vi-0000 DKIM: d=test.ex s=sel c=relaxed/relaxed a=rsa-sha512 b=1024 [verification succeeded]",
        expect![[
            r#"dkim at="1999-03-02 09:44:33" id="10HmaX-000000005vi-0000" detail="d=test.ex s=sel c=relaxed/relaxed a=rsa-sha512 b=1024 [verification succeeded]""#
        ]],
    );
    check(
        "1999-03-02 09:44:33 10HmaX-000000005vi-0000 Spool file for 10HmaX-000000005vi-0000 is locked (another process is handling this message)",
        expect![[r#"spool_locked at="1999-03-02 09:44:33" id="10HmaX-000000005vi-0000""#]],
    );
    // Seen from our real Exim 4.96 in CI: a queue runner picked up a message
    // whose delivery had just finished it.
    check(
        "2026-11-26 16:14:13.553 [11686] 1xWc6v-00032T-1j Spool file 1xWc6v-00032T-1j-D not found",
        expect![[
            r#"message_note at="2026-11-26 16:14:13.553" pid="11686" id="1xWc6v-00032T-1j" detail="Spool file 1xWc6v-00032T-1j-D not found""#
        ]],
    );
    check(
        "1999-03-02 09:44:33 10HmaX-0005vi-00 Spool read error for 10HmaX-0005vi-00-H: Input/output error",
        expect![[
            r#"message_note at="1999-03-02 09:44:33" id="10HmaX-0005vi-00" detail="Spool read error for 10HmaX-0005vi-00-H: Input/output error""#
        ]],
    );
    check(
        "1999-03-02 09:44:33 10HmaX-000000005vi-0000 original recipients ignored (system filter)",
        expect![[
            r#"message_note at="1999-03-02 09:44:33" id="10HmaX-000000005vi-0000" detail="original recipients ignored (system filter)""#
        ]],
    );
    check(
        "1999-03-02 09:44:33 10HmaX-000000005vi-0000 no immediate delivery: queued by ACL",
        expect![[
            r#"queued_only at="1999-03-02 09:44:33" id="10HmaX-000000005vi-0000" reason="queued by ACL""#
        ]],
    );
    check(
        "1999-03-02 09:44:33 10HmaX-000000005vi-0000 removed by CALLER",
        expect![[
            r#"removed at="1999-03-02 09:44:33" id="10HmaX-000000005vi-0000" detail="removed by CALLER""#
        ]],
    );
}

// ---- sessions -------------------------------------------------------------

#[test]
fn connection_open_close_lost() {
    check(
        "2009-11-22 19:00:25 [4623] SMTP connection from [192.0.2.183]:50454 I=[10.1.1.4]:25 (TCP/IP connection count = 1)",
        expect![[
            r#"connection_opened at="2009-11-22 19:00:25" pid="4623" ip="192.0.2.183" port="50454" I="[10.1.1.4]:25" detail="(TCP/IP connection count = 1)""#
        ]],
    );
    check(
        "1999-03-02 09:44:33 SMTP connection Ci=p1239 from (test) [ip4.ip4.ip4.ip4]:10003 I=[ip4.ip4.ip4.ip4]:PORT_D D=qqs closed by QUIT",
        expect![[
            r#"connection_closed at="1999-03-02 09:44:33" helo="test" ip="ip4.ip4.ip4.ip4" port="10003" I="[ip4.ip4.ip4.ip4]:PORT_D" Ci="p1239" D=?ms detail="closed by QUIT""#
        ]],
    );
    check(
        "2023-04-23 03:50:45 SMTP connection from (localhost) [192.0.2.143]:59474 lost D=2s",
        expect![[
            r#"connection_lost at="2023-04-23 03:50:45" helo="localhost" ip="192.0.2.143" port="59474" D=2000ms detail="lost D=2s""#
        ]],
    );
    check(
        "1999-03-02 09:44:33 SMTP connection from CALLER lost while reading message data (after header)",
        expect![[
            r#"connection_lost at="1999-03-02 09:44:33" U="CALLER" detail="lost while reading message data (after header)""#
        ]],
    );
    check(
        "2017-04-10 00:00:30 unexpected disconnection while reading SMTP command from ([192.0.2.111]) [192.0.2.188] (error: Connection reset by peer)",
        expect![[
            r#"connection_lost at="2017-04-10 00:00:30" helo="[192.0.2.111]" ip="192.0.2.188" detail="(error: Connection reset by peer)""#
        ]],
    );
    check(
        "2016-03-21 04:33:13 [26074] 1ahrVl-0006mY-79 SMTP connection from host.example.com [192.0.2.53]:39865 I=[172.89.0.6]:25 closed by DROP in ACL",
        expect![[
            r#"connection_closed at="2016-03-21 04:33:13" pid="26074" id="1ahrVl-0006mY-79" host="host.example.com" ip="192.0.2.53" port="39865" I="[172.89.0.6]:25" detail="closed by DROP in ACL""#
        ]],
    );
}

#[test]
fn no_mail_timeouts_and_protocol_errors() {
    check(
        "2016-03-21 06:38:05 [5718] no MAIL in SMTP connection from host.example.jp [192.0.2.15]:28890 I=[172.89.0.6]:25 D=21s C=EHLO,STARTTLS",
        expect![[
            r#"no_mail at="2016-03-21 06:38:05" pid="5718" host="host.example.jp" ip="192.0.2.15" port="28890" I="[172.89.0.6]:25" D=21000ms detail="C=EHLO,STARTTLS""#
        ]],
    );
    check(
        "2023-04-24 02:29:33 SMTP command timeout on connection from (localhost) [192.0.2.144]:37390",
        expect![[
            r#"smtp_timeout at="2023-04-24 02:29:33" helo="localhost" ip="192.0.2.144" port="37390" detail="""#
        ]],
    );
    check(
        "2017-07-30 18:51:05.712 10HmbC-000000005vi-0000 SMTP data timeout (message abandoned) on connection from (tester) [127.0.0.1] F=<someone@some.domain> D=q.qqqs",
        expect![[
            r#"smtp_timeout at="2017-07-30 18:51:05.712" id="10HmbC-000000005vi-0000" helo="tester" ip="127.0.0.1" D=?ms detail="""#
        ]],
    );
    check(
        r#"2013-06-02 06:54:20 [13314] SMTP protocol synchronization error (input sent without waiting for greeting): rejected connection from H=[192.0.2.192]:25936 I=[198.51.100.4]:25 input="GET / HTTP/1.1\r\n\r\n""#,
        expect![[
            r#"protocol_error at="2013-06-02 06:54:20" pid="13314" ip="192.0.2.192" port="25936" I="[198.51.100.4]:25" detail="SMTP protocol synchronization error (input sent without waiting for greeting): rejected connection from H=[192.0.2.192]:25936 I=[198.51.100.4]:25 input=\"GET / HTTP/1.1\\r\\n\\r\\n\"""#
        ]],
    );
    check(
        r#"2016-03-18 00:34:06 [7513] SMTP protocol error in "AUTH LOGIN" H=(ylmf-pc) [192.0.2.167]:60723 I=[172.89.0.6]:587 AUTH command used when not advertised"#,
        expect![[
            r#"protocol_error at="2016-03-18 00:34:06" pid="7513" helo="ylmf-pc" ip="192.0.2.167" port="60723" I="[172.89.0.6]:587" detail="SMTP protocol error in \"AUTH LOGIN\" H=(ylmf-pc) [192.0.2.167]:60723 I=[172.89.0.6]:587 AUTH command used when not advertised""#
        ]],
    );
    check(
        r#"1999-03-02 09:44:33 SMTP syntax error in "rhubarb" U=CALLER unrecognized command"#,
        expect![[
            r#"protocol_error at="1999-03-02 09:44:33" U="CALLER" detail="SMTP syntax error in \"rhubarb\" U=CALLER unrecognized command""#
        ]],
    );
    check(
        r#"2023-04-23 09:15:04 SMTP call from [192.0.2.103]:60302 dropped: too many unrecognized commands (last was "")"#,
        expect![[
            r#"protocol_error at="2023-04-23 09:15:04" ip="192.0.2.103" port="60302" detail="dropped: too many unrecognized commands (last was \"\")""#
        ]],
    );
}

#[test]
fn incomplete_transaction_and_refusals() {
    check(
        "2009-11-22 19:00:46 [6057] H=mail.example.com [192.0.2.183]:50454 I=[10.1.1.4]:25 incomplete transaction (QUIT) from <someone@example.com>",
        expect![[
            r#"incomplete_transaction at="2009-11-22 19:00:46" pid="6057" host="mail.example.com" ip="192.0.2.183" port="50454" I="[10.1.1.4]:25" detail="incomplete transaction (QUIT) from <someone@example.com>""#
        ]],
    );
    check(
        "2024-03-15 02:08:07 Connection from [192.0.2.7] refused: too many connections",
        expect![[
            r#"connection_refused at="2024-03-15 02:08:07" ip="192.0.2.7" detail="refused: too many connections""#
        ]],
    );
}

#[test]
fn tls_errors() {
    check(
        "2023-04-23 04:12:07 TLS error on connection from [192.0.2.185]:59636 (SSL_accept): error:1407609C:SSL routines:SSL23_GET_CLIENT_HELLO:http request",
        expect![[
            r#"tls_error at="2023-04-23 04:12:07" ip="192.0.2.185" port="59636" detail="TLS error on connection from [192.0.2.185]:59636 (SSL_accept): error:1407609C:SSL routines:SSL23_GET_CLIENT_HELLO:http request""#
        ]],
    );
}

// ---- rejections -----------------------------------------------------------

#[test]
fn rejections_at_every_stage() {
    check(
        "2026-11-26 13:58:24 [7373] H=(vm) [127.0.0.1]:46068 F=<f@outside.example> rejected RCPT <someone@elsewhere.example>: relay not permitted",
        expect![[
            r#"rejection at="2026-11-26 13:58:24" pid="7373" stage="rcpt" helo="vm" ip="127.0.0.1" port="46068" sender="f@outside.example" recipient="someone@elsewhere.example" reason="relay not permitted""#
        ]],
    );
    check(
        "2013-06-10 18:33:32 [10099] H=(example.tw) [192.0.2.178]:3755 I=[198.51.100.4]:25 F=sender@example.org rejected RCPT dir@example.ru: relay not permitted",
        expect![[
            r#"rejection at="2013-06-10 18:33:32" pid="10099" stage="rcpt" helo="example.tw" ip="192.0.2.178" port="3755" sender="sender@example.org" recipient="dir@example.ru" reason="relay not permitted""#
        ]],
    );
    check(
        "2024-03-21 09:18:51 H=m05.example.tld [192.0.2.21]:43030 I=[198.51.100.2]:25 Ci=7326 CV=no SNI=mail.example.tld F=<user@example.tld> rejected RCPT <locus@example.tld>: relay not permitted",
        expect![[
            r#"rejection at="2024-03-21 09:18:51" stage="rcpt" host="m05.example.tld" ip="192.0.2.21" port="43030" CV="no" SNI="mail.example.tld" sender="user@example.tld" recipient="locus@example.tld" reason="relay not permitted""#
        ]],
    );
    check(
        r#"2022-06-29 14:33:43 H=test.example.com [192.0.2.4]:18146 temporarily rejected connection in "connect" ACL: "Host is ratelimited (1.9/1h max:1.2)""#,
        expect![[
            r#"rejection at="2022-06-29 14:33:43" stage="connect" temporary host="test.example.com" ip="192.0.2.4" port="18146" reason="\"Host is ratelimited (1.9/1h max:1.2)\"""#
        ]],
    );
    check(
        "2023-04-23 06:01:48 H=(WIN-CLJ1B0GQ6JP) [192.0.2.59]:58135 rejected MAIL <spam@example.it>: Access denied - Invalid HELO name (See RFC2821 4.1.1.1)",
        expect![[
            r#"rejection at="2023-04-23 06:01:48" stage="mail" helo="WIN-CLJ1B0GQ6JP" ip="192.0.2.59" port="58135" sender="spam@example.it" reason="Access denied - Invalid HELO name (See RFC2821 4.1.1.1)""#
        ]],
    );
    check(
        "1999-03-02 09:44:33 H=(x.y.z) [10.9.8.10] U=CALLER rejected EHLO or HELO x.y.z",
        expect![[
            r#"rejection at="1999-03-02 09:44:33" stage="helo" helo="x.y.z" ip="10.9.8.10" U="CALLER" reason="x.y.z""#
        ]],
    );
    check(
        "1999-03-02 09:44:33 H=(foobar) [127.0.0.1] rejected AUTH plain: STARTTLS required before AUTH",
        expect![[
            r#"rejection at="1999-03-02 09:44:33" stage="auth" helo="foobar" ip="127.0.0.1" reason="STARTTLS required before AUTH""#
        ]],
    );
    check(
        "2022-04-03 21:53:54 H=[192.0.2.101]:62839 dropped by 'connect' ACL: Country is banned",
        expect![[
            r#"rejection at="2022-04-03 21:53:54" stage="connect" ip="192.0.2.101" port="62839" reason="dropped by 'connect' ACL: Country is banned""#
        ]],
    );
    check(
        "1999-03-02 09:44:33 10HmaX-000000005vi-0000 rejected from <> U=CALLER: message too big: read=501 max=500",
        expect![[
            r#"rejection at="1999-03-02 09:44:33" id="10HmaX-000000005vi-0000" stage="after_data" U="CALLER" sender="" reason="message too big: read=501 max=500""#
        ]],
    );
    check(
        "1999-03-02 09:44:33 rejected EHLO from (bad_helo) [192.0.2.9]: syntactically invalid argument(s): bad_helo",
        expect![[
            r#"rejection at="1999-03-02 09:44:33" stage="helo" helo="bad_helo" ip="192.0.2.9" reason="syntactically invalid argument(s): bad_helo""#
        ]],
    );
}

#[test]
fn sender_verify_discard_and_acl_warning() {
    check(
        "2013-06-10 10:10:59 H=mail.example.it (srv.example.it) [192.0.2.211] sender verify fail for <user@example.com>: Unrouteable address",
        expect![[
            r#"sender_verify at="2013-06-10 10:10:59" failed="yes" host="mail.example.it" helo="srv.example.it" ip="192.0.2.211" sender="user@example.com" reason="Unrouteable address""#
        ]],
    );
    check(
        "1999-03-02 09:44:33 H=localhost (primary.test.ex) [127.0.0.1] F=<CALLER@test.ex> RCPT <userx@domA.ex>: discarded by RCPT ACL",
        expect![[
            r#"discarded at="1999-03-02 09:44:33" host="localhost" helo="primary.test.ex" ip="127.0.0.1" detail="RCPT <userx@domA.ex>: discarded by RCPT ACL""#
        ]],
    );
    check(
        "1999-03-02 09:44:33 H=(test) [V4NET.11.12.13] U=CALLER Warning: found in rbl.test.ex: This is a test blacklisting message",
        expect![[
            r#"acl_warning at="1999-03-02 09:44:33" helo="test" ip="V4NET.11.12.13" U="CALLER" detail="Warning: found in rbl.test.ex: This is a test blacklisting message""#
        ]],
    );
}

#[test]
fn authentication_failures() {
    check(
        "2013-01-04 17:03:46 login authenticator failed for host.example.com ([192.168.2.33]) [192.0.2.74]: 535 Incorrect authentication data (set_id=brian)",
        expect![[
            r#"auth_failed at="2013-01-04 17:03:46" authenticator="login" set_id="brian" code=535 host="host.example.com" helo="[192.168.2.33]" ip="192.0.2.74" detail="535 Incorrect authentication data (set_id=brian)""#
        ]],
    );
    check(
        "2014-12-02 03:00:23 auth_plain authenticator failed for (rom182) [192.0.2.35]:41556 I=[10.0.0.1]:25: 535 Incorrect authentication data (set_id=webmaster)",
        expect![[
            r#"auth_failed at="2014-12-02 03:00:23" authenticator="auth_plain" set_id="webmaster" code=535 helo="rom182" ip="192.0.2.35" port="41556" I="[10.0.0.1]:25" detail="535 Incorrect authentication data (set_id=webmaster)""#
        ]],
    );
    check(
        "1999-03-02 09:44:33 expanded_prompt_plain authenticator failed for H=(test.host) [10.0.0.1] U=CALLER: 535 Incorrect authentication data (set_id=userx)",
        expect![[
            r#"auth_failed at="1999-03-02 09:44:33" authenticator="expanded_prompt_plain" set_id="userx" code=535 helo="test.host" ip="10.0.0.1" U="CALLER" detail="535 Incorrect authentication data (set_id=userx)""#
        ]],
    );
}

// ---- daemon ---------------------------------------------------------------

#[test]
fn daemon_queue_and_process_lines() {
    check(
        "2026-11-26 13:58:22 [7333] exim 4.96 daemon started: pid=7333, -q5s, listening for SMTP on [127.0.0.1]:2525 [::1]:2525",
        expect![[
            r#"daemon_started at="2026-11-26 13:58:22" pid="7333" version="4.96" daemon_pid="7333" detail="pid=7333, -q5s, listening for SMTP on [127.0.0.1]:2525 [::1]:2525""#
        ]],
    );
    check(
        "2023-04-23 03:47:01 pid 27421: SIGHUP received: re-exec daemon",
        expect![[r#"sighup at="2023-04-23 03:47:01" daemon_pid="27421""#]],
    );
    check(
        "1999-03-02 09:44:33 Start 'alternate' queue run: pid=p1236",
        expect![[r#"queue_run_start at="1999-03-02 09:44:33" run_pid="p1236" detail="pid=p1236""#]],
    );
    check(
        "1999-03-02 09:44:33 Start queue run: pid=p1234 -qf",
        expect![[
            r#"queue_run_start at="1999-03-02 09:44:33" run_pid="p1234" detail="pid=p1234 -qf""#
        ]],
    );
    check(
        "2026-11-26 13:58:22 [7336] exim user lost privilege for using -C option",
        expect![[
            r#"process at="2026-11-26 13:58:22" pid="7336" detail="exim user lost privilege for using -C option""#
        ]],
    );
    // Strings from the Exim 4.96 binary: what a loaded host logs about itself.
    check(
        "2026-11-26 15:00:00 daemon: fork of queue-runner process failed: Resource temporarily unavailable",
        expect![[
            r#"process_failure at="2026-11-26 15:00:00" detail="daemon: fork of queue-runner process failed: Resource temporarily unavailable""#
        ]],
    );
    check(
        "2026-11-26 15:00:00 Failed to get write lock for /var/spool/exim4/db/retry.lockfile: timed out",
        expect![[
            r#"process at="2026-11-26 15:00:00" detail="Failed to get write lock for /var/spool/exim4/db/retry.lockfile: timed out""#
        ]],
    );
    check(
        "2026-11-26 15:00:00 exim 4.96 daemon terminating, inetd wait timeout reached.",
        expect![[
            r#"process at="2026-11-26 15:00:00" detail="exim 4.96 daemon terminating, inetd wait timeout reached.""#
        ]],
    );
    check(
        "2026-11-26 15:00:00 host lookup for mail.example.net did not complete (DNS timeout?)",
        expect![[
            r#"host_lookup_failed at="2026-11-26 15:00:00" detail="host lookup for mail.example.net did not complete (DNS timeout?)""#
        ]],
    );
    check(
        "2017-12-03 08:32:00 no host name found for IP address 192.0.2.8",
        expect![[
            r#"host_lookup_failed at="2017-12-03 08:32:00" detail="no host name found for IP address 192.0.2.8""#
        ]],
    );
}

#[test]
fn warnings_and_their_continuation() {
    check(
        "2026-11-26 13:58:22 [7330] Warning: No server certificate defined; will use a selfsigned one.",
        expect![[
            r#"tls_setup_error at="2026-11-26 13:58:22" pid="7330" detail="Warning: No server certificate defined; will use a selfsigned one.""#
        ]],
    );
    check(
        " Suggested action: either install a certificate or change tls_advertise_hosts option",
        expect![[
            r#"continuation text=" Suggested action: either install a certificate or change tls_advertise_hosts option""#
        ]],
    );
    check(
        "\tby myhost.test.ex with local-smtp (Exim x.yz)",
        expect![[r#"continuation text="\tby myhost.test.ex with local-smtp (Exim x.yz)""#]],
    );
}

// ---- foreign, blank, broken -------------------------------------------------

#[test]
fn syslog_wrapped_lines() {
    check(
        "Apr 28 15:53:37 server exim[12105]: 2016-04-28 15:53:37 [12105] 1avnJx-00039F-Hs Completed",
        expect![[r#"completed at="2016-04-28 15:53:37" pid="12105" id="1avnJx-00039F-Hs""#]],
    );
    check(
        "Jun 29 16:04:19 server exim[1234]: dovecot_login authenticator failed for ([192.0.2.5]) [192.0.2.4]:55379: 535 Incorrect authentication data",
        expect![[
            r#"auth_failed authenticator="dovecot_login" code=535 helo="[192.0.2.5]" ip="192.0.2.4" port="55379" detail="535 Incorrect authentication data""#
        ]],
    );
    check(
        "2016-04-01 11:08:00 info exim[8001]: [8001] no MAIL in SMTP connection from (User) [192.0.2.29]:20042 I=[192.0.2.1]:25 Ci=8001 D=0.349s C=EHLO,AUTH,QUIT",
        expect![[
            r#"no_mail at="2016-04-01 11:08:00" helo="User" ip="192.0.2.29" port="20042" I="[192.0.2.1]:25" Ci="8001" D=349ms detail="C=EHLO,AUTH,QUIT""#
        ]],
    );
}

#[test]
fn blank_comment_and_garbage() {
    check("", expect![[r#"blank"#]]);
    check(
        "# a comment in a sample file",
        expect![[r##"comment text="# a comment in a sample file""##]],
    );
    check("garbage", expect![[r#"unrecognised body="garbage""#]]);
    check(
        "2024-01-01 00:00:00 1cxKsn-0001GB-2t CTAS=IN RefID= ( ISpam= )",
        expect![[
            r#"unrecognised at="2024-01-01 00:00:00" id="1cxKsn-0001GB-2t" body="CTAS=IN RefID= ( ISpam= )""#
        ]],
    );
}

#[test]
fn invalid_utf8_nul_and_tabs_are_kept_as_bytes() {
    check_bytes(
        b"2015-07-09 15:41:40 SMTP protocol synchronization error (next input sent too soon: pipelining was not advertised): rejected \"EHLO 0\xad]CM<\xff\xfe\" H=remote.example.be [192.0.2.119]:53191",
        expect![[r#"protocol_error at="2015-07-09 15:41:40" host="remote.example.be" ip="192.0.2.119" port="53191" detail="SMTP protocol synchronization error (next input sent too soon: pipelining was not advertised): rejected \"EHLO 0�]CM<��\" H=remote.example.be [192.0.2.119]:53191""#]],
    );
    check_bytes(
        b"1999-03-02 09:44:33 10HmaX-000000005vi-0000 <= a@b U=x\0y P=local S=1 T=\"tab\there\"",
        expect![[
            r#"reception at="1999-03-02 09:44:33" id="10HmaX-000000005vi-0000" sender="a@b" U="x\0y" P="local" S="1" subject="tab\there""#
        ]],
    );
}

// ---- properties -------------------------------------------------------------

#[test]
fn both_id_formats_in_one_file_and_inside_bodies() {
    let entry = parse_line(b"1999-03-02 09:44:33 10HmaY-000000005vi-0000 <= jc@rome R=10HmaX-0005vi-00 U=CALLER P=local S=sss");
    assert_eq!(entry.message_id().map(|id| id.is_new_format()), Some(true));
    match entry.event {
        super::Event::Reception(r) => {
            assert_eq!(r.bounce_of.map(|id| id.is_new_format()), Some(false));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_huge_line_is_parsed() {
    let mut line = b"2024-01-01 00:00:00 1abcde-000000-00 ** x@y R=r T=t: ".to_vec();
    line.extend(std::iter::repeat_n(b"R=a T=b : H=c [d] \"x ", 400_000).flatten());
    // 8 MB of tag look-alikes after the separator: the error text is not
    // scanned for tags, so this is one pass (quadratic would take minutes).
    let entry = parse_line(&line);
    assert_eq!(entry.kind(), Kind::Failure);
}

#[test]
fn every_kind_is_covered_by_an_expectation_above() {
    let source = include_str!("tests.rs");
    let catalogue = include_str!("catalogue.tsv");
    for kind in Kind::ALL {
        // A catalogue row is an expectation too.
        if catalogue.contains(&format!("\t{}\t", kind.name())) {
            continue;
        }
        // rustfmt may move the raw string to its own line, so look for the
        // rendered form's opening: the kind name first.
        let opening = format!("r#\"{} ", kind.name());
        let alone = format!("r#\"{}\"#", kind.name());
        let double = format!("r##\"{} ", kind.name());
        assert!(
            source.contains(&opening) || source.contains(&alone) || source.contains(&double),
            "no expect-style test shows a {} line",
            kind.name()
        );
    }
}

/// Each row of `catalogue.tsv` (a line of each of Exim's formats) reads as
/// its kind, saying what the row says it says.
#[test]
fn every_catalogue_row_reads_right() {
    let table = include_str!("catalogue.tsv");
    let mut rows = 0;
    for row in table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let mut cells = row.splitn(4, '\t');
        let (Some(section), Some(kind), Some(fields), Some(line)) =
            (cells.next(), cells.next(), cells.next(), cells.next())
        else {
            panic!("a row of four cells: {row}");
        };
        let entry = parse_line(line.as_bytes());
        let shown = render(&entry);
        assert_eq!(entry.kind().name(), kind, "{section}: {line}\n{shown}");
        for field in fields.split("; ").filter(|f| !f.is_empty()) {
            assert!(
                shown.contains(&format!(" {field}")),
                "{section}: {line}\nwants {field} in\n{shown}"
            );
        }
        rows += 1;
    }
    assert!(rows >= 369, "{rows} rows");
}
