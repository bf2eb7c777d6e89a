//! The notification store's tests: rounds, erasure, sweeping, and the journal's operations.

use super::*;

fn q(id: u64, tracking: &str) -> Queued {
    Queued {
        id,
        tracking: Some(tracking.into()),
        depot: "D".into(),
        route: "R".into(),
        milestone: Some(Milestone::ArrivingSoon),
        alert: None,
        channel: Channel::Sms,
        to: None,
        rendered: Rendered {
            subject: None,
            text: "hi".into(),
            whatsapp: None,
        },
        unsubscribe: None,
        queued_ms: 1,
        attempts: 0,
        next_ms: 1,
        last_error: None,
        event_ms: None,
    }
}

fn log(id: u64, state: &str) -> MessageLog {
    MessageLog {
        id,
        milestone: Milestone::ArrivingSoon,
        channel: Channel::Sms,
        state: state.into(),
        provider_id: None,
        at_ms: 2,
    }
}

#[test]
fn a_round_is_atomic_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = NotifyStore::open(dir.path()).unwrap();
        let b = Batch {
            enqueue: vec![q(1, "T1"), q(2, "T2")],
            once: vec![("k1".into(), 5)],
            cursors: vec![("milestones".into(), 42)],
            next_id: Some(3),
            ..Batch::default()
        };
        s.commit(&b).unwrap();
        let done = Batch {
            finished: vec![(q(1, "T1"), Some(log(1, "sent")))],
            ..Batch::default()
        };
        s.commit(&done).unwrap();
    }
    let s = NotifyStore::open(dir.path()).unwrap();
    assert_eq!(s.queued().unwrap(), vec![q(2, "T2")]);
    assert!(s.once_taken("k1").unwrap());
    assert!(!s.once_taken("k2").unwrap());
    assert_eq!(s.cursor("milestones").unwrap(), Some(42));
    assert_eq!(s.next_id().unwrap(), 3);
    assert_eq!(s.messages("T1").unwrap(), vec![log(1, "sent")]);
    assert!(s.messages("T2").unwrap().is_empty());
}

#[test]
fn erasing_and_sweeping_remove_personal_data() {
    let dir = tempfile::tempdir().unwrap();
    let s = NotifyStore::open(dir.path()).unwrap();
    let c = |touched_ms| StoredContact {
        contact: Contact {
            email: Some("a@b.example".into()),
            ..Contact::default()
        },
        depot: "D".into(),
        set_ms: 0,
        touched_ms,
    };
    s.set_contact("OLD", &c(10)).unwrap();
    s.set_contact("NEW", &c(1000)).unwrap();
    s.commit(&Batch {
        finished: vec![(q(1, "OLD"), Some(log(1, "sent")))],
        dead: vec![(
            Dead {
                message: q(2, "OLD"),
                to_masked: "+385*****4567".into(),
                at_ms: 10,
            },
            Some(log(2, "dead")),
        )],
        once: vec![("old-key".into(), 10), ("new-key".into(), 1000)],
        ..Batch::default()
    })
    .unwrap();
    assert_eq!(s.dead().unwrap().len(), 1);
    assert_eq!(s.sweep(500).unwrap(), 1);
    assert!(
        s.dead().unwrap().is_empty(),
        "dead letters hold personal data too"
    );
    assert!(s.contact("OLD").unwrap().is_none());
    assert!(s.messages("OLD").unwrap().is_empty());
    assert!(s.contact("NEW").unwrap().is_some());
    assert!(!s.once_taken("old-key").unwrap());
    assert!(s.once_taken("new-key").unwrap());
    assert!(s.erase("NEW").unwrap());
    assert!(!s.erase("NEW").unwrap());
}

#[test]
fn journal_operations_apply_once_and_record_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let s = NotifyStore::open(dir.path()).unwrap();
    assert_eq!(s.journal_seq().unwrap(), 0);
    let contact = StoredContact {
        contact: Contact {
            phone: Some("+385911000001".into()),
            ..Contact::default()
        },
        depot: "D".into(),
        set_ms: 1,
        touched_ms: 1,
    };
    s.apply(&Op::Contacts(vec![("T1".into(), contact.clone())]), Some(3))
        .unwrap();
    assert_eq!(s.contact("T1").unwrap(), Some(contact));
    assert_eq!(s.journal_seq().unwrap(), 3);
    let round = Op::Round(Batch {
        enqueue: vec![q(1, "T1"), q(2, "T1")],
        once: vec![("k".into(), 1)],
        cursors: vec![("milestones".into(), 9)],
        next_id: Some(3),
        ..Batch::default()
    });
    // A round applied twice (resent after a lost acknowledgement) changes nothing more.
    s.apply(&round, Some(4)).unwrap();
    s.apply(&round, Some(5)).unwrap();
    assert_eq!(s.queued().unwrap(), vec![q(1, "T1"), q(2, "T1")]);
    let answers = Op::Round(Batch {
        finished: vec![(q(1, "T1"), Some(log(1, "sent")))],
        dead: vec![(
            Dead {
                message: q(2, "T1"),
                to_masked: "+385*****0001".into(),
                at_ms: 2,
            },
            Some(log(2, "dead")),
        )],
        ..Batch::default()
    });
    s.apply(&answers, Some(6)).unwrap();
    assert!(s.queued().unwrap().is_empty());
    assert_eq!(s.messages("T1").unwrap().len(), 2);
    s.apply(&Op::Dismiss(2), Some(7)).unwrap();
    assert!(s.dead().unwrap().is_empty());
    s.apply(
        &Op::OptOut {
            key: "addr-key".into(),
            at_ms: 8,
        },
        Some(8),
    )
    .unwrap();
    assert!(s.opted_out("addr-key").unwrap());
    // Markers and retries store nothing but their place.
    s.apply(&Op::Lead { node: "g1".into() }, Some(9)).unwrap();
    s.apply(&Op::Retry(2), None).unwrap();
    assert_eq!(s.journal_seq().unwrap(), 9);
    s.apply(&Op::Erase("T1".into()), Some(10)).unwrap();
    assert!(s.contact("T1").unwrap().is_none());
    assert!(s.messages("T1").unwrap().is_empty());
    assert_eq!(s.journal_seq().unwrap(), 10);
}

#[test]
fn operations_round_trip_as_the_journal_carries_them() {
    let ops = [
        Op::Round(Batch {
            enqueue: vec![q(1, "T1")],
            finished: vec![(q(1, "T1"), Some(log(1, "sent")))],
            next_id: Some(2),
            ..Batch::default()
        }),
        Op::Erase("T1".into()),
        Op::Lead { node: "g0".into() },
    ];
    for op in ops {
        let text = serde_json::to_vec(&op).unwrap();
        assert_eq!(serde_json::from_slice::<Op>(&text).unwrap(), op);
    }
}
