//! The store against SQLite (always) and PostgreSQL (when EC2BRIDGE_TEST_POSTGRES_URL is set).
//! Each PostgreSQL test works in its own schema, so parallel and repeated runs do not collide on
//! the shared database.

use std::io::Write;
use std::process::{Command, Stdio};

mod store_support;

use ec2bridge::ids::{Kind, ec2_id};
use ec2bridge::store::{KeySource, Store, StoreError};
use sqlx::Row;
use store_support::{databases, key, sqlite_db};

/// A self-signed certificate made now with openssl, and its SHA-256 fingerprint as openssl
/// computes it (an independent check of ours).
fn make_cert(cn: &str) -> (String, String) {
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-keyout", "/dev/null", "-days", "2", "-subj", &format!("/CN={cn}/O=ec2bridge test")])
        .output()
        .expect("openssl is installed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pem = String::from_utf8(out.stdout).unwrap();
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(pem.as_bytes()).unwrap();
    let fp = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
    let fp = fp.trim().rsplit('=').next().unwrap().replace(':', "").to_lowercase();
    (pem, fp)
}

#[tokio::test]
async fn user_keys_round_trip() {
    for db in databases().await {
        let s = Store::open(&db.url, &key()).await.unwrap();
        assert_eq!(s.backend(), db.backend);
        assert!(s.get_user_keys("AK1").await.unwrap().is_none());
        s.put_user_keys("AK1", "secret-one", "acct1", "ROOT").await.unwrap();
        s.put_user_keys("AK2", "secret-two", "acct2", "ROOT/sub").await.unwrap();
        let u = s.get_user_keys("AK1").await.unwrap().unwrap();
        assert_eq!((u.secret_key.as_str(), u.account.as_str(), u.domain.as_str()), ("secret-one", "acct1", "ROOT"));
        assert!(!format!("{u:?}").contains("secret-one"));

        // Upsert replaces the secret and keeps the creation time.
        let before = s.list_users().await.unwrap();
        s.put_user_keys("AK1", "secret-one-b", "acct1", "ROOT").await.unwrap();
        assert_eq!(s.get_user_keys("AK1").await.unwrap().unwrap().secret_key, "secret-one-b");
        let users = s.list_users().await.unwrap();
        assert_eq!(users.iter().map(|u| u.access_key.as_str()).collect::<Vec<_>>(), ["AK1", "AK2"]);
        assert_eq!(users[0].created_at, before[0].created_at);
        assert!(users.iter().all(|u| u.certificate.is_none()));

        let r = s.delete_user("AK1").await.unwrap();
        assert!(r.user);
        assert!(s.get_user_keys("AK1").await.unwrap().is_none());
        assert!(!s.delete_user("AK1").await.unwrap().user);
        assert_eq!(s.list_users().await.unwrap().len(), 1);
        assert!(s.put_user_keys("", "x", "a", "d").await.is_err());
        s.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn secrets_are_encrypted_at_rest() {
    for db in databases().await {
        let k = key();
        let s = Store::open(&db.url, &k).await.unwrap();
        let secret = "VerySecretKey-0123456789-abcdef";
        s.put_user_keys("AKENC", secret, "acct", "ROOT").await.unwrap();
        s.put_user_keys("AKOTHER", "other-secret", "acct", "ROOT").await.unwrap();
        let raw = db.raw().await;
        let row =
            sqlx::query("SELECT secret_enc FROM user_keys WHERE access_key = 'AKENC'").fetch_one(&raw).await.unwrap();
        let stored: String = row.try_get(0).unwrap();
        assert!(!stored.contains(secret) && !stored.contains("SecretKey"), "{stored}");
        // Moving a sealed secret onto another row does not make it readable there.
        sqlx::query("UPDATE user_keys SET secret_enc = $1 WHERE access_key = 'AKOTHER'")
            .bind(&stored)
            .execute(&raw)
            .await
            .unwrap();
        match s.get_user_keys("AKOTHER").await {
            Err(e @ StoreError::Decrypt { .. }) => assert!(!e.to_string().contains(secret)),
            other => panic!("expected Decrypt, got {other:?}"),
        }
        raw.close().await;
        s.close().await;

        // A different key is refused at open, cleanly.
        match Store::open(&db.url, &key()).await {
            Err(StoreError::WrongKey) => {}
            other => panic!("expected WrongKey, got {other:?}"),
        }
        // The right key still works.
        let s = Store::open(&db.url, &k).await.unwrap();
        assert_eq!(s.get_user_keys("AKENC").await.unwrap().unwrap().secret_key, secret);
        s.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn certificates() {
    let (pem_a, fp_a) = make_cert("alice");
    let (pem_a2, fp_a2) = make_cert("alice-new");
    for db in databases().await {
        let s = Store::open(&db.url, &key()).await.unwrap();
        assert!(matches!(s.put_certificate("AKA", &pem_a).await, Err(StoreError::UnknownUser(_))));
        s.put_user_keys("AKA", "sa", "alice", "ROOT").await.unwrap();
        s.put_user_keys("AKB", "sb", "bob", "ROOT").await.unwrap();
        // Surrounding text is tolerated; the stored PEM is canonical.
        let rec = s.put_certificate("AKA", &format!("junk before\n{pem_a}\n")).await.unwrap();
        assert_eq!(rec.fingerprint, fp_a);
        assert!(rec.subject.contains("CN=alice"), "{}", rec.subject);
        let found = s.find_certificate(&fp_a).await.unwrap().unwrap();
        assert_eq!(found.access_key, "AKA");
        assert_eq!(found.pem.trim(), pem_a.trim());
        assert_eq!(s.find_certificate(&fp_a.to_uppercase()).await.unwrap().unwrap().access_key, "AKA");
        // Idempotent for its owner, refused for anyone else.
        s.put_certificate("AKA", &pem_a).await.unwrap();
        assert!(matches!(s.put_certificate("AKB", &pem_a).await, Err(StoreError::CertificateInUse)));
        // A new certificate replaces the old one.
        s.put_certificate("AKA", &pem_a2).await.unwrap();
        assert!(s.find_certificate(&fp_a).await.unwrap().is_none());
        assert_eq!(s.find_certificate(&fp_a2).await.unwrap().unwrap().access_key, "AKA");
        let users = s.list_users().await.unwrap();
        assert_eq!(users[0].certificate.as_deref(), Some(fp_a2.as_str()));
        assert_eq!(s.list_certificates().await.unwrap().len(), 1);
        // Bad input.
        assert!(matches!(s.put_certificate("AKB", "not a pem").await, Err(StoreError::InvalidCertificate(_))));
        let two = format!("{pem_a}{pem_a2}");
        assert!(matches!(s.put_certificate("AKB", &two).await, Err(StoreError::InvalidCertificate(_))));
        // Delete by user; deleting the user takes its certificate along.
        s.put_certificate("AKB", &pem_a).await.unwrap();
        assert_eq!(s.delete_certificate("AKB").await.unwrap(), 1);
        assert!(s.find_certificate(&fp_a).await.unwrap().is_none());
        let r = s.delete_user("AKA").await.unwrap();
        assert_eq!((r.user, r.certificates), (true, 1));
        assert!(s.find_certificate(&fp_a2).await.unwrap().is_none());
        assert!(s.list_certificates().await.unwrap().is_empty());
        s.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn half_written_registration_is_never_visible() {
    let (pem, _) = make_cert("owner");
    for db in databases().await {
        let s = Store::open(&db.url, &key()).await.unwrap();
        s.register("AKOWNER", "so", "owner", "ROOT", Some(&pem)).await.unwrap();
        // Keys then a certificate that belongs to someone else: the whole registration rolls back.
        assert!(matches!(
            s.register("AKTHIEF", "st", "thief", "ROOT", Some(&pem)).await,
            Err(StoreError::CertificateInUse)
        ));
        assert!(s.get_user_keys("AKTHIEF").await.unwrap().is_none());
        // An existing user's keys are not changed by a failed registration either.
        assert!(s.register("AKOWNER", "so-new", "owner", "ROOT", Some("garbage")).await.is_err());
        assert_eq!(s.get_user_keys("AKOWNER").await.unwrap().unwrap().secret_key, "so");
        s.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn id_cache() {
    for db in databases().await {
        let s = Store::open(&db.url, &key()).await.unwrap();
        let uuid = "1128bd56-b4d9-4ac6-a7b9-c715b187ce11";
        let id = ec2_id(Kind::Instance, uuid);
        assert!(s.get_uuid(&id).await.unwrap().is_none());
        s.put_id(&id, Kind::Instance, uuid).await.unwrap();
        s.put_id(&id, Kind::Instance, "some-other-uuid").await.unwrap(); // insert-if-absent
        assert_eq!(s.get_uuid(&id).await.unwrap(), Some((Kind::Instance, uuid.to_string())));
        let batch: Vec<(String, Kind, String)> = (0..50)
            .map(|i| {
                let u = format!("vol-uuid-{i}");
                (ec2_id(Kind::Volume, &u), Kind::Volume, u)
            })
            .collect();
        s.put_ids(&batch).await.unwrap();
        s.put_ids(&batch).await.unwrap();
        assert_eq!(s.get_uuid(&batch[49].0).await.unwrap(), Some((Kind::Volume, "vol-uuid-49".to_string())));
        s.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn survives_reopen_and_two_handles_agree() {
    let (pem, fp) = make_cert("shared");
    for db in databases().await {
        let k = key();
        let a = Store::open(&db.url, &k).await.unwrap();
        let b = Store::open(&db.url, &k).await.unwrap();
        a.register("AKSHARED", "shared-secret", "acct", "ROOT", Some(&pem)).await.unwrap();
        let id = ec2_id(Kind::Image, "tmpl-1");
        b.put_id(&id, Kind::Image, "tmpl-1").await.unwrap();
        // Each handle sees the other's writes at once.
        assert_eq!(b.get_user_keys("AKSHARED").await.unwrap().unwrap().secret_key, "shared-secret");
        assert_eq!(b.find_certificate(&fp).await.unwrap().unwrap().access_key, "AKSHARED");
        assert_eq!(a.get_uuid(&id).await.unwrap().unwrap().1, "tmpl-1");
        b.delete_certificate("AKSHARED").await.unwrap();
        assert!(a.find_certificate(&fp).await.unwrap().is_none());
        a.close().await;
        b.close().await;
        // A restart keeps everything.
        let c = Store::open(&db.url, &k).await.unwrap();
        assert_eq!(c.get_user_keys("AKSHARED").await.unwrap().unwrap().account, "acct");
        assert_eq!(c.get_uuid(&id).await.unwrap(), Some((Kind::Image, "tmpl-1".into())));
        c.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn concurrent_writers() {
    for db in databases().await {
        let k = key();
        let a = Store::open(&db.url, &k).await.unwrap();
        let b = Store::open(&db.url, &k).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..40 {
            let s = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                s.put_user_keys(&format!("AKC{i:02}"), &format!("s{i}"), "acct", "ROOT").await.unwrap();
                s.put_id(&format!("i-{i:017x}"), Kind::Instance, &format!("u{i}")).await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(a.list_users().await.unwrap().len(), 40);
        assert_eq!(b.get_user_keys("AKC07").await.unwrap().unwrap().secret_key, "s7");
        a.close().await;
        b.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn in_memory_sqlite() {
    let s = Store::open("sqlite::memory:", &key()).await.unwrap();
    for i in 0..5 {
        s.put_user_keys(&format!("AK{i}"), "x", "a", "d").await.unwrap();
    }
    assert_eq!(s.list_users().await.unwrap().len(), 5);
}

#[tokio::test]
async fn bad_locations_fail_cleanly() {
    assert!(matches!(Store::open("mysql://h/db", &key()).await, Err(StoreError::Config(_))));
    let e = Store::open("postgres://user:hunter2@127.0.0.1:1/db", &key()).await.unwrap_err().to_string();
    assert!(!e.contains("hunter2"), "{e}");
    assert!(matches!(
        Store::open("sqlite::memory:", &KeySource::Base64("c2hvcnQ=".into())).await,
        Err(StoreError::Key(_))
    ));
}

#[tokio::test]
async fn admin_commands() {
    let (pem, fp) = make_cert("admin-test");
    let db = sqlite_db().await;
    let dir = db.dir.clone().unwrap();
    let key_file = dir.join("store.key");
    let s = Store::open(&db.url, &KeySource::File(key_file.clone())).await.unwrap();
    s.register("AKADMIN1", "admin-secret-1", "acct1", "ROOT", Some(&pem)).await.unwrap();
    s.put_user_keys("AKADMIN2", "admin-secret-2", "acct2", "ROOT").await.unwrap();
    s.close().await;

    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_ec2bridge"))
            .arg("admin")
            .args(["--store", &db.url, "--store-key-file", key_file.to_str().unwrap()])
            .args(args)
            .env_remove("EC2BRIDGE_STORE_KEY")
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!text.contains("admin-secret"), "secret printed: {text}");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string(), text)
    };
    let (ok, users, _) = run(&["users"]);
    assert!(ok);
    assert!(users.contains("AKADMIN1") && users.contains("AKADMIN2") && users.contains(&fp), "{users}");
    let (ok, certs, _) = run(&["certs"]);
    assert!(ok && certs.contains(&fp) && certs.contains("CN=admin-test"), "{certs}");
    let (ok, _, _) = run(&["remove-user", "AKADMIN1"]);
    assert!(ok);
    let (ok, _, text) = run(&["remove-user", "AKADMIN1"]);
    assert!(!ok && text.contains("no registered user"), "{text}");
    let (_, certs, _) = run(&["certs"]);
    assert!(certs.contains("none registered"), "{certs}");
    let (_, users, _) = run(&["users"]);
    assert!(!users.contains("AKADMIN1") && users.contains("AKADMIN2"), "{users}");
    // A missing store is reported, not created.
    let out = Command::new(env!("CARGO_BIN_EXE_ec2bridge"))
        .args(["admin", "--store", dir.join("nope.db").to_str().unwrap(), "users"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!dir.join("nope.db").exists());
    db.cleanup().await;
}

/// Issue 14 items 9 and 13: a signed request is used once, across every gateway sharing the
/// store (two `Store`s on one database stand for two gateways); rows go once past their validity.
#[tokio::test]
async fn signed_requests_are_single_use_across_gateways() {
    for db in databases().await {
        let k = key();
        let a = Store::open(&db.url, &k).await.unwrap();
        let b = Store::open(&db.url, &k).await.unwrap();
        let now = 1_800_000_000;
        assert!(a.claim_once("d1", now + 600, now).await.unwrap());
        assert!(!a.claim_once("d1", now + 600, now).await.unwrap(), "same gateway replay");
        assert!(!b.claim_once("d1", now + 600, now + 10).await.unwrap(), "replay to another gateway");
        assert!(b.claim_once("d2", now + 600, now).await.unwrap());
        // Past its validity the row is dropped (the verifier refuses such a request anyway).
        assert!(a.claim_once("d1", now + 1300, now + 601).await.unwrap());
        let raw = db.raw().await;
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM used_signatures").fetch_one(&raw).await.unwrap().get(0);
        assert_eq!(n, 1, "d2 expired and was dropped, d1 re-recorded");
        raw.close().await;
        a.close().await;
        b.close().await;
        db.cleanup().await;
    }
}

/// Issue 14 item 12: a binding that proved possession of the key replaces another user's unproven
/// binding of the same certificate; a proven binding is never taken over.
#[tokio::test]
async fn proven_certificate_binding_replaces_unproven_one() {
    let (pem, fp) = make_cert("victim");
    for db in databases().await {
        let s = Store::open(&db.url, &key()).await.unwrap();
        for (ak, acct) in [("AKSQUAT", "squatter"), ("AKOWNER", "owner"), ("AKLATE", "late")] {
            s.put_user_keys(ak, "s", acct, "ROOT").await.unwrap();
        }
        s.put_certificate("AKSQUAT", &pem).await.unwrap();
        // Unproven against unproven: first come keeps it.
        assert!(matches!(s.put_certificate("AKOWNER", &pem).await, Err(StoreError::CertificateInUse)));
        s.put_certificate_proven("AKOWNER", &pem, true).await.unwrap();
        assert_eq!(s.find_certificate(&fp).await.unwrap().unwrap().access_key, "AKOWNER");
        assert!(matches!(s.put_certificate_proven("AKLATE", &pem, true).await, Err(StoreError::CertificateInUse)));
        assert!(matches!(s.put_certificate("AKSQUAT", &pem).await, Err(StoreError::CertificateInUse)));
        assert_eq!(s.list_certificates().await.unwrap().len(), 1);
        s.close().await;
        db.cleanup().await;
    }
}
