//! Message bodies in the store, on both engines: when identical bodies
//! share a key, and bodies across segment-record and PostgreSQL-row
//! boundaries, read whole and in ranges until their last reference goes.

use super::fixture::{msg, Fixture};
use super::{alice, inbox};

/// Two identical plaintext messages share one body on RocksDB; on
/// PostgreSQL, whose blobs several nodes write, each gets a key of its
/// own, so a node deleting one body's last reference can never remove a
/// body another node has just put under the same key. Either way,
/// expunging one leaves the other readable.
pub(crate) fn identical_bodies_share_a_key_only_on_a_private_engine(fx: &Fixture) {
    let mail = fx.open();
    let id = alice(&mail);
    let inbox = inbox(&mail, id);
    let a = mail.append(id, inbox, msg(b"same body")).unwrap();
    let b = mail.append(id, inbox, msg(b"same body")).unwrap();
    assert_eq!(
        a.blob == b.blob,
        fx.db.is_none(),
        "{:?} {:?}",
        a.blob,
        b.blob
    );
    mail.expunge(id, inbox, &[a.uid]).unwrap();
    assert_eq!(mail.get_blob(id, b.blob).unwrap().unwrap(), b"same body");
    mail.expunge(id, inbox, &[b.uid]).unwrap();
    assert!(mail.get_blob(id, b.blob).unwrap().is_none());
}

/// Bodies larger than one segment record or one PostgreSQL row (8,000
/// bytes), and of one byte: read whole and in ranges across the boundaries, kept
/// while a copy references them, gone with the last reference.
pub(crate) fn large_bodies_are_read_whole_and_in_ranges_until_their_last_reference_goes(
    fx: &Fixture,
) {
    let mail = fx.open();
    let id = alice(&mail);
    let inbox = inbox(&mail, id);
    let archive = mail.mailbox_by_name(id, "Archive").unwrap().id;
    for len in [1usize, 7_999, 8_000, 8_001, 300_017] {
        let raw: Vec<u8> = b"abcdefghijklmnopqrstuvw"
            .iter()
            .copied()
            .cycle()
            .take(len)
            .collect();
        let m = mail.append(id, inbox, msg(&raw)).unwrap();
        assert_eq!(mail.get_blob(id, m.blob).unwrap().unwrap(), raw, "{len}");
        for (start, end) in [
            (0, 8_000),
            (7_990, 8_010),
            (7_999, 24_001),
            (len as u64, u64::MAX),
        ] {
            let clamp = |at: u64| usize::try_from(at).unwrap_or(usize::MAX).min(len);
            let (from, to) = (clamp(start), clamp(end));
            assert_eq!(
                mail.get_blob_range(id, m.blob, start..end)
                    .unwrap()
                    .unwrap(),
                raw[from..to.max(from)],
                "{len}: {start}..{end}"
            );
        }
        let copied = mail.copy_messages(id, inbox, &[m.uid], archive).unwrap();
        mail.expunge(id, inbox, &[m.uid]).unwrap();
        assert_eq!(mail.get_blob(id, m.blob).unwrap().unwrap(), raw, "{len}");
        mail.expunge(id, archive, &[copied[0].1]).unwrap();
        assert!(mail.get_blob(id, m.blob).unwrap().is_none(), "{len}");
        assert!(mail.get_blob_range(id, m.blob, 0..1).unwrap().is_none());
    }
}
