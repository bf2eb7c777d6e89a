//! Proof files over a driver's QUIC session (PROTOCOL.md 6.11): a driver uploads the photo and
//! the signature whose digests its delivery names, hands the parcel to a named person, and the
//! recipient is told who took it. Every bad upload (a digest that does not match, a file over
//! the limit, an empty file, fewer or more bytes than announced, a recipient's upload) gets its
//! typed error, stores nothing, and leaves the connection usable.

mod common;

use common::{report, World};
use milepost::proofs::{sha256_hex, ProofStore};
use milepost_proto::route::{Outcome, ParcelEvent, ParcelState, Proof};
use milepost_proto::{ClientMsg, CommandKind, ErrorCode, ServerMsg, Upload, MAX_FRAME_HARD};

/// Sends an upload header and `body` raw on a new stream, finishes it, and returns the answer.
async fn raw_upload(conn: &quinn::Connection, header: Upload, body: &[u8]) -> ServerMsg {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    milepost::wire::write_msg(&mut send, &ClientMsg::Upload(header))
        .await
        .unwrap();
    // The server may stop reading as soon as it refuses: a failed write is expected then.
    let _ = send.write_all(body).await;
    let _ = send.finish();
    milepost::wire::read_msg::<ServerMsg>(&mut recv, MAX_FRAME_HARD)
        .await
        .unwrap()
        .expect("an answer")
}

fn refused_with(msg: &ServerMsg) -> Option<ErrorCode> {
    match msg {
        ServerMsg::Error(e) => Some(e.code),
        _ => None,
    }
}

#[tokio::test]
async fn a_driver_uploads_its_proof_files_and_hands_the_parcel_to_a_named_person() {
    let mut w = World::with(|c| c.proofs.max_bytes = 4096).await;
    let cfg_store = ProofStore::new(
        w.t.dir.path(),
        &milepost::proofs::ProofsConfig {
            max_bytes: 4096,
            ..Default::default()
        },
    );
    let photo = b"\xff\xd8\xff a jpeg of a parcel on a doorstep ".repeat(40);
    let signature = b"\x89PNG\r\n\x1a\n a signature".to_vec();

    // Uploaded, and again (stored once, answered Done both times).
    let photo_sha = w.driver.upload(1, &photo).await.unwrap();
    assert_eq!(photo_sha, sha256_hex(&photo));
    assert_eq!(w.driver.upload(2, &photo).await.unwrap(), photo_sha);
    let sig_sha = w.driver.upload(3, &signature).await.unwrap();
    assert_eq!(cfg_store.get(&photo_sha).unwrap().unwrap(), photo);
    assert_eq!(cfg_store.get(&sig_sha).unwrap().unwrap(), signature);

    // Refusals, each with its code; the connection stays usable and nothing is stored.
    let conn = w.driver.conn.clone();
    let other = sha256_hex(b"something else");
    let cases: Vec<(&str, Upload, Vec<u8>, ErrorCode)> = vec![
        (
            "digest mismatch",
            Upload {
                id: 10,
                sha256: other.clone(),
                size: 5,
            },
            b"bytes".to_vec(),
            ErrorCode::UploadRefused,
        ),
        (
            "over the limit",
            Upload {
                id: 11,
                sha256: sha256_hex(&[7u8; 5000]),
                size: 5000,
            },
            vec![7u8; 5000],
            ErrorCode::UploadRefused,
        ),
        (
            "empty",
            Upload {
                id: 12,
                sha256: sha256_hex(b""),
                size: 0,
            },
            Vec::new(),
            ErrorCode::UploadRefused,
        ),
        (
            "fewer bytes than announced",
            Upload {
                id: 13,
                sha256: sha256_hex(b"short"),
                size: 10,
            },
            b"short".to_vec(),
            ErrorCode::UploadRefused,
        ),
        (
            "more bytes than announced",
            Upload {
                id: 14,
                sha256: sha256_hex(b"long"),
                size: 4,
            },
            b"longer".to_vec(),
            ErrorCode::UploadRefused,
        ),
        (
            "not a digest",
            Upload {
                id: 15,
                sha256: "ABC".into(),
                size: 3,
            },
            b"abc".to_vec(),
            ErrorCode::UploadRefused,
        ),
    ];
    for (what, header, body, code) in cases {
        let name = header.sha256.clone();
        let answer = raw_upload(&conn, header, &body).await;
        assert_eq!(refused_with(&answer), Some(code), "{what}: {answer:?}");
        if name.len() == 64 {
            assert!(!cfg_store.has(&name), "{what}: stored");
        }
    }
    assert!(!cfg_store.has(&sha256_hex(b"longer")));
    // One upload at a time per connection: a second, while the first still waits for its
    // bytes, is refused at once; the first then completes.
    let slow = b"a photo sent slowly".to_vec();
    let (mut send1, mut recv1) = conn.open_bi().await.unwrap();
    milepost::wire::write_msg(
        &mut send1,
        &ClientMsg::Upload(Upload {
            id: 16,
            sha256: sha256_hex(&slow),
            size: slow.len() as u64,
        }),
    )
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let second = raw_upload(
        &conn,
        Upload {
            id: 17,
            sha256: sha256_hex(b"x"),
            size: 1,
        },
        b"x",
    )
    .await;
    assert_eq!(
        refused_with(&second),
        Some(ErrorCode::UploadRefused),
        "{second:?}"
    );
    send1.write_all(&slow).await.unwrap();
    send1.finish().unwrap();
    let first = milepost::wire::read_msg::<ServerMsg>(&mut recv1, MAX_FRAME_HARD)
        .await
        .unwrap();
    assert!(
        matches!(first, Some(ServerMsg::Done { id: 16 })),
        "{first:?}"
    );
    let recipient = w.t.recipient("MP100000001").await;
    let e = recipient.upload(20, &photo).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::WrongRole));
    // An upload header anywhere but first on a new stream is a protocol violation: its bytes
    // could not be told from frames. (Checked on a connection of its own.)
    let mut spare = w.t.driver("D1", "north").await;
    let (mut send, _recv) = spare.conn.open_bi().await.unwrap();
    milepost::wire::write_msg(
        &mut send,
        &ClientMsg::Command(milepost_proto::Command {
            id: 1,
            kind: CommandKind::ParcelStatus {
                tracking: "MP100000001".into(),
            },
        }),
    )
    .await
    .unwrap();
    milepost::wire::write_msg(
        &mut send,
        &ClientMsg::Upload(Upload {
            id: 2,
            sha256: photo_sha.clone(),
            size: 1,
        }),
    )
    .await
    .unwrap();
    assert_eq!(
        common::close_code(&spare.conn).await,
        Some(ErrorCode::ProtocolViolation)
    );
    let _ = spare.recv().await;

    // The driver session is still usable: deliver S1's parcels to a named person, with the
    // uploaded files as proof.
    let mut follower = w.t.recipient("MP100000001").await;
    let mut feed = follower
        .subscribe(
            milepost_proto::FeedTarget::Parcel("MP100000001".into()),
            None,
        )
        .await
        .unwrap();
    let proof = Proof {
        photo_sha256: Some(photo_sha.clone()),
        signature_sha256: Some(sig_sha.clone()),
        otp: None,
    };
    let bad_name = Outcome::DeliveredTo {
        proof: proof.clone(),
        received_by: "\u{7}".into(),
    };
    let e = report(&mut w.driver, 30, "S1", None, bad_name)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::OutcomeRefused));
    let named = Outcome::DeliveredTo {
        proof,
        received_by: "  Ana Novak ".into(),
    };
    report(&mut w.driver, 31, "S1", None, named).await.unwrap();
    let status = match follower
        .command(
            32,
            CommandKind::ParcelStatus {
                tracking: "MP100000001".into(),
            },
        )
        .await
        .unwrap()
    {
        ServerMsg::ParcelStatus { status, .. } => status,
        other => panic!("{other:?}"),
    };
    assert_eq!(status.state, ParcelState::Delivered);
    let line = milepost_core::present::status_line(&status);
    assert!(line.ends_with(" to Ana Novak"), "{line}");
    // The recipient's feed says who took it.
    let got = loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(5), feed.next())
            .await
            .expect("a delivered event within 5 s")
            .unwrap();
        if let ServerMsg::FeedEvent {
            update: milepost_proto::route::Update::Parcel(p),
            ..
        } = msg
        {
            if let ParcelEvent::DeliveredTo {
                received_by, proof, ..
            } = p.kind
            {
                break (received_by, proof);
            }
        }
    };
    assert_eq!(got.0, "Ana Novak");
    assert_eq!(got.1.photo_sha256.as_deref(), Some(photo_sha.as_str()));
    drop(follower);
}
