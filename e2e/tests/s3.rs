//! The real S3 server the backup suites use (versitygw built from its Go module, POSIX
//! backend): objects go in and come back through `object_store`, multipart uploads are
//! reassembled byte for byte, SHA-256 checksums are verified by the server, and an outage
//! makes writes fail while a restart keeps what was stored.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{future::Future, pin::Pin, time::Duration};

use futures::TryStreamExt;
use gongshu_e2e::{harness::random_suffix, s3::S3Server};
use object_store::{
    ObjectStore, PutPayload, RetryConfig, WriteMultipart,
    client::{
        HttpClient, HttpConnector, HttpError, HttpRequest, HttpRequestBody, HttpResponse,
        HttpService,
    },
    path::Path,
};
use rand::RngCore;

/// SHA-256 of `hello`, base64, as S3 checksum headers carry it.
const HELLO_SHA256: &str = "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=";

async fn server_with_bucket() -> (S3Server, String) {
    let s3 = S3Server::start().await.expect("versitygw starts");
    let bucket = format!("e2e-{}", random_suffix());
    s3.create_bucket(&bucket).await.expect("bucket");
    (s3, bucket)
}

#[tokio::test]
async fn a_fresh_server_stores_lists_and_returns_objects() {
    let (s3, bucket) = server_with_bucket().await;
    assert!(s3.endpoint().starts_with("http://127.0.0.1:"));
    assert_eq!(s3.region(), "us-east-1");
    let store = s3.object_store(&bucket).unwrap();

    store
        .put(&Path::from("runs/1/manifest.json"), PutPayload::from("{}"))
        .await
        .expect("put");
    store
        .put(&Path::from("runs/1/data.age"), PutPayload::from("hello"))
        .await
        .expect("put");
    store
        .put(&Path::from("runs/2/data.age"), PutPayload::from("again"))
        .await
        .expect("put");

    let got = store
        .get(&Path::from("runs/1/data.age"))
        .await
        .expect("get")
        .bytes()
        .await
        .unwrap();
    assert_eq!(&got[..], b"hello");
    let head = store.head(&Path::from("runs/1/data.age")).await.unwrap();
    assert_eq!(head.size, 5);

    let mut listed: Vec<String> = store
        .list(Some(&Path::from("runs/1")))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .expect("list");
    listed.sort();
    assert_eq!(listed, ["runs/1/data.age", "runs/1/manifest.json"]);

    store.delete(&Path::from("runs/2/data.age")).await.unwrap();
    assert!(matches!(
        store.get(&Path::from("runs/2/data.age")).await,
        Err(object_store::Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn a_12_mib_multipart_upload_reads_back_byte_identical() {
    let (s3, bucket) = server_with_bucket().await;
    let store = s3.object_store(&bucket).unwrap();
    let mut data = vec![0u8; 12 * 1024 * 1024 + 12_345];
    rand::rng().fill_bytes(&mut data);

    let path = Path::from("runs/big/tables.tar.zst.age");
    let upload = store.put_multipart(&path).await.expect("create upload");
    // 5 MiB parts (S3's minimum but for the last): three parts, the last one short.
    let mut writer = WriteMultipart::new_with_chunk_size(upload, 5 * 1024 * 1024);
    for chunk in data.chunks(1024 * 1024 - 7) {
        writer.write(chunk);
    }
    writer.finish().await.expect("complete upload");

    assert_eq!(
        store.head(&path).await.unwrap().size,
        data.len() as u64,
        "size"
    );
    let got = store.get(&path).await.unwrap().bytes().await.unwrap();
    assert!(got[..] == data[..], "the object reads back byte-identical");
    // A ranged read of the middle of the second part.
    let range = 6 * 1024 * 1024..6 * 1024 * 1024 + 100;
    let part = store.get_range(&path, range.clone()).await.unwrap();
    assert_eq!(&part[..], &data[range.start as usize..range.end as usize]);
}

/// Sends requests on unchanged but for PUT bodies, which it replaces after signing by as
/// many `x` bytes: corruption in transit that only a checksum can catch.
#[derive(Debug)]
struct CorruptPuts(reqwest::Client);

impl HttpService for CorruptPuts {
    fn call<'a, 'b>(
        &'a self,
        mut req: HttpRequest,
    ) -> Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        let len = req.body().content_length();
        if req.method() == http::Method::PUT && len > 0 {
            *req.body_mut() = HttpRequestBody::from(vec![b'x'; len]);
        }
        Box::pin(HttpService::call(&self.0, req))
    }
}

impl HttpConnector for CorruptPuts {
    fn connect(&self, _: &object_store::ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(CorruptPuts(self.0.clone())))
    }
}

#[tokio::test]
async fn the_server_keeps_sha256_checksums_and_refuses_a_corrupt_body() {
    let (s3, bucket) = server_with_bucket().await;
    // The harness's client sends a SHA-256 checksum with every upload; the server keeps it
    // (the POSIX backend's sidecar metadata, `<dir>/meta/<bucket>/<key>/meta/checksums`).
    let store = s3.object_store(&bucket).unwrap();
    store
        .put(&Path::from("checked"), PutPayload::from("hello"))
        .await
        .expect("put with a SHA-256 checksum");
    let meta = s3
        .buckets_dir()
        .with_file_name("meta")
        .join(&bucket)
        .join("checked/meta/checksums");
    let kept = std::fs::read_to_string(&meta).expect("checksum metadata");
    assert!(
        kept.contains(&format!("\"SHA256\":\"{HELLO_SHA256}\"")),
        "{kept}"
    );

    // A body changed after signing (unsigned payload, so only the checksum covers it) is
    // refused with BadDigest and not stored.
    let corrupting = s3
        .object_store_builder(&bucket)
        .with_unsigned_payload(true)
        .with_http_connector(CorruptPuts(reqwest::Client::new()))
        .build()
        .unwrap();
    let refused = corrupting
        .put(&Path::from("corrupt"), PutPayload::from("hello"))
        .await
        .expect_err("a corrupt body is refused");
    assert!(refused.to_string().contains("BadDigest"), "{refused}");
    assert!(matches!(
        store.head(&Path::from("corrupt")).await,
        Err(object_store::Error::NotFound { .. })
    ));
    // The same client without corruption: accepted, so the checksum was the reason.
    s3.object_store_builder(&bucket)
        .with_unsigned_payload(true)
        .build()
        .unwrap()
        .put(&Path::from("intact"), PutPayload::from("hello"))
        .await
        .expect("an intact body with an unsigned payload is accepted");
}

#[tokio::test]
async fn while_the_server_is_down_puts_fail_and_a_restart_keeps_the_objects() {
    let (mut s3, bucket) = server_with_bucket().await;
    // Few, quick retries: the default client retries a refused connection for about a minute.
    let store = s3
        .object_store_builder(&bucket)
        .with_retry(RetryConfig {
            max_retries: 1,
            retry_timeout: Duration::from_secs(2),
            ..RetryConfig::default()
        })
        .build()
        .unwrap();
    let before = Path::from("before-outage");
    store
        .put(&before, PutPayload::from("kept"))
        .await
        .expect("put");
    let endpoint = s3.endpoint();

    s3.stop().await.expect("stop");
    let during = store
        .put(&Path::from("during-outage"), PutPayload::from("lost"))
        .await;
    assert!(during.is_err(), "a put fails while S3 is down");
    assert!(store.get(&before).await.is_err(), "so does a get");

    s3.restart().await.expect("restart");
    assert_eq!(s3.endpoint(), endpoint, "same port after the restart");
    let got = store
        .get(&before)
        .await
        .expect("get")
        .bytes()
        .await
        .unwrap();
    assert_eq!(&got[..], b"kept");
    assert!(matches!(
        store.head(&Path::from("during-outage")).await,
        Err(object_store::Error::NotFound { .. })
    ));
    store
        .put(&Path::from("after-outage"), PutPayload::from("new"))
        .await
        .expect("put after the restart");
}
