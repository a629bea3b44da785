//! The extended LIST parser (`sealmail::imap::list_command`, RFC 5258
//! §3): arbitrary bytes after `LIST ` never panic, and whatever parses
//! re-encodes to something that parses to the same command.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealmail::imap::list_command::{encode, parse};

fuzz_target!(|input: &[u8]| {
    let mut line = b"LIST ".to_vec();
    line.extend_from_slice(input);
    if let Ok(cmd) = parse(&line) {
        assert_eq!(parse(&encode(&cmd)), Ok(cmd));
    }
});
