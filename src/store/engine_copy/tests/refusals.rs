//! Copies that must stop: a target with data of its own, another
//! source's migration, a second writer, a failing engine, and targets
//! that no longer match the source.

use super::super::super::{Batch, Cf, KeyRange, Order, Store};
use super::super::*;
use super::{dump, fill, keys_in, mail_over, rocks, small_chunks};

#[test]
fn refuses_a_target_with_data_of_its_own() {
    let (_s, source) = rocks();
    let (_t, target) = rocks();
    fill(&mail_over(&source));
    mail_over(&target)
        .add_account("someone@example.org", None, &[])
        .unwrap();
    let before = dump(&target.p());
    let err = migrate_engine(
        &source.p(),
        &target.p(),
        &small_chunks("src"),
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(matches!(err, CopyError::TargetNotEmpty { .. }), "{err}");
    assert!(err.is_user_error());
    assert!(err.to_string().contains("new, empty database"), "{err}");
    assert_eq!(dump(&target.p()), before, "nothing written");
}

#[test]
fn refuses_to_resume_another_sources_migration() {
    let (_s, source) = rocks();
    let (_t, target) = rocks();
    fill(&mail_over(&source));
    let first = CopyOptions {
        max_chunks: Some(1),
        ..small_chunks("/srv/one")
    };
    migrate_engine(&source.p(), &target.p(), &first, &mut NoProgress).unwrap();
    let before = dump(&target.p());
    let err = migrate_engine(
        &source.p(),
        &target.p(),
        &small_chunks("/srv/two"),
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(
        matches!(&err, CopyError::OtherSource { source_label } if source_label == "/srv/one"),
        "{err}"
    );
    assert_eq!(dump(&target.p()), before, "nothing written");
}

#[test]
fn a_tampered_target_fails_verification() {
    let (_s, source) = rocks();
    let (_t, target) = rocks();
    fill(&mail_over(&source));
    let copied = copy_store(
        &source.p(),
        &target.p(),
        &small_chunks("src"),
        &mut NoProgress,
    )
    .unwrap();
    assert!(copied.finished);
    assert!(verify_copy(&source.p(), &target.p(), &mut NoProgress)
        .unwrap()
        .is_equal());
    // One byte of the large body changes in the target.
    let all = KeyRange::prefix(&[]);
    let blobs = target
        .p()
        .scan(Cf::Blobs, &all, Order::Forward, usize::MAX)
        .unwrap();
    let (key, mut value) = blobs.into_iter().max_by_key(|(_, v)| v.len()).unwrap();
    value[3 << 20] ^= 1;
    crate::store::BlobStore::put(&*target.blobs, &[(&key, &value)]).unwrap();

    let verification = verify_copy(&source.p(), &target.p(), &mut NoProgress).unwrap();
    let bad: Vec<Cf> = verification.mismatches().map(|(cf, ..)| cf).collect();
    assert_eq!(bad, vec![Cf::Blobs]);
    // The whole migration reports it and keeps the marker.
    let err = migrate_engine(
        &source.p(),
        &target.p(),
        &small_chunks("src"),
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(matches!(err, CopyError::Mismatch(_)), "{err}");
    assert!(err.to_string().contains("`blobs`"), "{err}");
    assert!(target.get(Cf::Meta, MARKER_KEY).unwrap().is_some());
}

#[test]
fn a_missing_key_in_the_target_fails_verification() {
    let (_s, source) = rocks();
    let (_t, target) = rocks();
    fill(&mail_over(&source));
    copy_store(
        &source.p(),
        &target.p(),
        &small_chunks("src"),
        &mut NoProgress,
    )
    .unwrap();
    let all = KeyRange::prefix(&[]);
    let (key, _) = target
        .scan(Cf::Messages, &all, Order::Forward, 1)
        .unwrap()
        .remove(0);
    let mut batch = Batch::new();
    batch.delete(Cf::Messages, key);
    target.write(batch).unwrap();
    let verification = verify_copy(&source.p(), &target.p(), &mut NoProgress).unwrap();
    let bad: Vec<_> = verification.mismatches().collect();
    assert_eq!(bad.len(), 1);
    let (cf, s, t) = bad[0];
    assert_eq!((cf, s.keys), (Cf::Messages, t.keys + 1));
}

/// Writes a marker of its own into the target after the first chunk, as
/// a second copy into the same target would; keeps the keys done then.
struct Intruder<'a>(&'a dyn Store, Option<Phase>, u64);

impl CopyProgress for Intruder<'_> {
    fn phase(&mut self, phase: Phase, _total: u64) {
        self.1 = Some(phase);
    }

    fn advance(&mut self, done: u64) {
        if self.1 == Some(Phase::Copying) && done > 0 && self.2 == 0 {
            self.2 = done;
            let mut batch = Batch::new();
            batch.put(Cf::Meta, MARKER_KEY.to_vec(), b"{}".to_vec());
            self.0.write(batch).unwrap();
        }
    }
}

#[test]
fn a_second_writer_of_the_marker_stops_the_copy() {
    let (_s, source) = rocks();
    let (_t, target) = rocks();
    fill(&mail_over(&source));
    let mut intruder = Intruder(&*target, None, 0);
    let err = copy_store(
        &source.p(),
        &target.p(),
        &small_chunks("src"),
        &mut intruder,
    )
    .unwrap_err();
    assert!(matches!(err, CopyError::Concurrent), "{err}");
    assert!(intruder.2 > 0);
    assert_eq!(
        keys_in(&target.p()),
        intruder.2 + 1,
        "nothing after the first chunk"
    );
}

#[test]
fn a_failed_chunk_write_leaves_nothing_and_the_next_run_resumes() {
    let (_s, source) = rocks();
    let (_t, target) = rocks();
    fill(&mail_over(&source));
    let total = keys_in(&source.p());
    let first = CopyOptions {
        max_chunks: Some(3),
        ..small_chunks("src")
    };
    let stopped = copy_store(&source.p(), &target.p(), &first, &mut NoProgress).unwrap();
    let before = dump(&target.p());
    // The engine fails inside the fourth chunk's batch, after its first op.
    target.fail_next_write_after(1);
    let err = copy_store(
        &source.p(),
        &target.p(),
        &small_chunks("src"),
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(
        matches!(err, CopyError::Target(_)) && !err.is_user_error(),
        "{err}"
    );
    assert_eq!(dump(&target.p()), before, "no part of the failed chunk");

    let rest = migrate_engine(
        &source.p(),
        &target.p(),
        &small_chunks("src"),
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!(rest.copy.copied, total - stopped.copied);
    assert!(rest.verification.unwrap().is_equal());
    assert_eq!(dump(&target.p()), dump(&source.p()));
}
