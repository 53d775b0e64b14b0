//! The queue helper's request decoder on any bytes: it never panics, and
//! whatever it accepts holds only allow-listed verbs and Exim ids, so the
//! command line it makes is Exim's fixed flag and checked ids.
#![no_main]

use exim_pilot::parse::whole_message_id;
use exim_pilot::queue::request::Request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for tier in [1, 2] {
        if let Ok(request) = Request::decode(data, tier) {
            let args = request.exim_args();
            assert_eq!(args[0], request.verb.exim_flag());
            assert!(args[1..]
                .iter()
                .all(|id| whole_message_id(id.as_bytes()).is_some()));
            assert_eq!(request.verb.tier(), tier);
        }
    }
});
