//! `S3Sandbox`: a real S3-protocol server (s3s-fs over a temp dir) inside the test process,
//! with fault injection and a request log.
//!
//! Layers, outermost first: a hyper HTTP/1 server on `127.0.0.1:0` (TCP_NODELAY on every
//! accepted socket, without which s3s-fs answers in ~45 ms), [`Front`] (request log and
//! faults), the s3s service (SigV4 auth with fixed test credentials), and [`LockedFs`], which
//! makes s3s-fs's conditional writes atomic by running every write under one mutex (s3s-fs
//! checks `If-None-Match` and then writes, with nothing in between to stop a second writer).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::config::retry::{RetryConfig, RetryPartition};
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::Client;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use s3s::auth::SimpleAuth;
use s3s::dto;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{Body, HttpError, S3Request, S3Response, S3Result, S3};
use streamtier_tiers::store::{S3Store, Store};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const ACCESS_KEY: &str = "streamtier-test";
const SECRET_KEY: &str = "streamtier-test-secret";
const REGION: &str = "us-east-1";
/// Short enough that a `Fault::Delay` of a few seconds makes the client give up and retry.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// An in-process S3 server with one fresh bucket; stops when dropped.
pub struct S3Sandbox {
    endpoint: String,
    bucket: String,
    client: Client,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

#[derive(Default)]
struct Shared {
    faults: Faults,
    log: Mutex<Vec<(String, String)>>,
    /// Microseconds every request waits before it is served (a remote store's latency).
    latency_us: std::sync::atomic::AtomicU64,
}

impl S3Sandbox {
    /// Starts the server and creates a bucket with a unique name.
    pub async fn start() -> S3Sandbox {
        let dir = tempfile::tempdir().expect("create sandbox directory");
        let fs = s3s_fs::FileSystem::new(dir.path()).expect("open s3s-fs root");
        let mut builder = S3ServiceBuilder::new(LockedFs {
            fs,
            root: dir.path().to_owned(),
            writes: tokio::sync::Mutex::new(()),
        });
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let shared = Arc::new(Shared::default());
        let front = Front {
            s3: builder.build(),
            shared: Arc::clone(&shared),
        };
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind sandbox port");
        let endpoint = format!("http://{}", listener.local_addr().expect("local address"));
        let shutdown = CancellationToken::new();
        tokio::spawn(serve(listener, front, shutdown.clone()));

        let bucket = format!("streamtier-test-{:016x}", rand::random::<u64>());
        let client = client(&endpoint, &bucket);
        client
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("create sandbox bucket");
        S3Sandbox {
            endpoint,
            bucket,
            client,
            shared,
            shutdown,
            _dir: dir,
        }
    }

    /// Returns the server's base URL, `http://127.0.0.1:PORT`.
    #[allow(dead_code)] // for tests that spawn the binary
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// Returns the sandbox's bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Returns the access key id the server accepts (for child processes' `AWS_ACCESS_KEY_ID`).
    #[allow(dead_code)] // for tests that spawn the binary
    pub fn access_key(&self) -> &str {
        ACCESS_KEY
    }

    /// Returns the secret key the server accepts (for `AWS_SECRET_ACCESS_KEY`).
    #[allow(dead_code)] // for tests that spawn the binary
    pub fn secret_key(&self) -> &str {
        SECRET_KEY
    }

    /// Returns a client with the test credentials, path-style addressing, production-like
    /// retries with short backoff, and a short attempt timeout ([`ATTEMPT_TIMEOUT`]).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Returns an S3 store over [`S3Sandbox::client`] with `prefix`.
    pub fn store(&self, prefix: &str) -> Store {
        Store::S3(self.s3_store(prefix))
    }

    /// Like [`S3Sandbox::store`], before wrapping, for tests that tune the store.
    pub fn s3_store(&self, prefix: &str) -> S3Store {
        S3Store::new(self.client(), &self.bucket, prefix)
    }

    /// Returns the fault injector.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Makes every request from now on wait `latency` before it is served, as a store across a
    /// network would (real S3 answers a small request in tens of milliseconds).
    #[allow(dead_code)] // for the benchmark
    pub fn set_latency(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.shared
            .latency_us
            .store(us, std::sync::atomic::Ordering::Relaxed);
    }

    /// Returns `(method, path)` of every request received so far, in order.
    pub fn requests(&self) -> Vec<(String, String)> {
        self.shared.log.lock().expect("request log lock").clone()
    }
}

impl Drop for S3Sandbox {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn client(endpoint: &str, bucket: &str) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "sandbox"))
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(8)
                .with_initial_backoff(Duration::from_millis(10))
                .with_max_backoff(Duration::from_millis(100)),
        )
        // The retry token bucket is shared per partition name across the process: one per
        // sandbox keeps fault tests from draining each other's retry budget.
        .retry_partition(RetryPartition::new(format!("sandbox-{bucket}")))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(ATTEMPT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        )
        .build();
    Client::from_conf(config)
}

async fn serve(listener: TcpListener, front: Front, shutdown: CancellationToken) {
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let _ = stream.set_nodelay(true);
        let (front, shutdown) = (front.clone(), shutdown.clone());
        tokio::spawn(async move {
            let conn =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), front);
            tokio::select! {
                _ = conn => {}
                () = shutdown.cancelled() => {}
            }
        });
    }
}

/// What an injected fault does to a matching request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status and an S3 XML error body (503: `SlowDown`, 500:
    /// `InternalError`, ...) without reaching the server.
    Status(u16),
    /// Wait this long before passing the request on (longer than [`ATTEMPT_TIMEOUT`] makes
    /// the client time out and retry).
    Delay(Duration),
    /// Pass the request on, so the write happens, then drop the connection without a reply.
    DropAfterWrite,
}

struct Rule {
    method: String,
    path_contains: String,
    fault: Fault,
    remaining: usize,
}

/// Faults waiting for matching requests.
#[derive(Default)]
pub struct Faults {
    rules: Mutex<Vec<Rule>>,
}

impl Faults {
    /// Gives `fault` to the next `n` requests with `method` (e.g. `PUT`) whose path and query
    /// contain `path_contains`.
    pub fn inject(&self, method: &str, path_contains: &str, fault: Fault, n: usize) {
        self.rules.lock().expect("faults lock").push(Rule {
            method: method.to_owned(),
            path_contains: path_contains.to_owned(),
            fault,
            remaining: n,
        });
    }

    /// Removes every pending fault.
    #[allow(dead_code)] // part of the harness API
    pub fn clear(&self) {
        self.rules.lock().expect("faults lock").clear();
    }

    fn take(&self, method: &str, target: &str) -> Option<Fault> {
        let mut rules = self.rules.lock().expect("faults lock");
        let rule = rules.iter_mut().find(|r| {
            r.remaining > 0 && r.method.eq_ignore_ascii_case(method) && target.contains(&r.path_contains)
        })?;
        rule.remaining -= 1;
        let fault = rule.fault.clone();
        rules.retain(|r| r.remaining > 0);
        Some(fault)
    }
}

/// The HTTP service in front of s3s: logs each request and applies faults.
#[derive(Clone)]
struct Front {
    s3: S3Service,
    shared: Arc<Shared>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl hyper::service::Service<http::Request<Incoming>> for Front {
    type Response = http::Response<Body>;
    type Error = HttpError;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        let method = req.method().as_str().to_owned();
        let target = req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().path().to_owned(), |pq| pq.as_str().to_owned());
        self.shared
            .log
            .lock()
            .expect("request log lock")
            .push((method.clone(), req.uri().path().to_owned()));
        let fault = self.shared.faults.take(&method, &target);
        let s3 = self.s3.clone();
        let latency =
            Duration::from_micros(self.shared.latency_us.load(std::sync::atomic::Ordering::Relaxed));
        Box::pin(async move {
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            match fault {
                None => s3.call(req.map(Body::from)).await,
                Some(Fault::Delay(delay)) => {
                    tokio::time::sleep(delay).await;
                    s3.call(req.map(Body::from)).await
                }
                Some(Fault::Status(status)) => {
                    // Read the body so the client sees the reply, not a reset mid-upload.
                    let _ = req.into_body().collect().await;
                    Ok(error_response(status, &method))
                }
                Some(Fault::DropAfterWrite) => {
                    let _ = s3.call(req.map(Body::from)).await;
                    // A service error makes hyper close the connection without a response.
                    Err(HttpError::new(Box::new(std::io::Error::other(
                        "injected fault: connection dropped after the write",
                    ))))
                }
            }
        })
    }
}

fn error_response(status: u16, method: &str) -> http::Response<Body> {
    let code = match status {
        503 => "SlowDown",
        500 => "InternalError",
        412 => "PreconditionFailed",
        409 => "ConditionalRequestConflict",
        404 => "NoSuchKey",
        403 => "AccessDenied",
        _ => "InjectedFault",
    };
    let body = if method == "HEAD" {
        Body::empty()
    } else {
        Body::from(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
             <Message>injected fault</Message><RequestId>sandbox-fault</RequestId></Error>"
        ))
    };
    http::Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .header("x-amz-request-id", "sandbox-fault")
        .body(body)
        .expect("static response parts are valid")
}

/// s3s-fs with every write under one lock, so that `If-None-Match: *` (checked by s3s-fs
/// before writing) cannot be passed by two writers of the same key.
struct LockedFs {
    fs: s3s_fs::FileSystem,
    /// s3s-fs's root: buckets are its directories, keys are paths below them.
    root: PathBuf,
    writes: tokio::sync::Mutex<()>,
}

impl LockedFs {
    /// s3s-fs serves the directory behind a key prefix (`a` when `a/b` exists) as a broken
    /// object; S3 answers `NoSuchKey`.
    fn not_a_directory(&self, bucket: &str, key: &str) -> S3Result<()> {
        if self.root.join(bucket).join(key).is_dir() {
            return Err(s3s::s3_error!(NoSuchKey));
        }
        Ok(())
    }
}

/// Implements `S3` for `LockedFs`: `read` operations go straight to s3s-fs, `write` ones run
/// under the write lock, `get_object` and `head_object` work around s3s-fs quirks. Generated whole so
/// that `async_trait` sees the expanded methods.
macro_rules! locked_fs_s3 {
    (read { $($r:ident: $ri:ident => $ro:ident;)* } write { $($w:ident: $wi:ident => $wo:ident;)* }) => {
        #[async_trait::async_trait]
        impl S3 for LockedFs {
            $(async fn $r(&self, req: S3Request<dto::$ri>) -> S3Result<S3Response<dto::$ro>> {
                self.fs.$r(req).await
            })*
            $(async fn $w(&self, req: S3Request<dto::$wi>) -> S3Result<S3Response<dto::$wo>> {
                let _write = self.writes.lock().await;
                self.fs.$w(req).await
            })*

            async fn head_object(
                &self,
                req: S3Request<dto::HeadObjectInput>,
            ) -> S3Result<S3Response<dto::HeadObjectOutput>> {
                self.not_a_directory(&req.input.bucket, &req.input.key)?;
                self.fs.head_object(req).await
            }

            async fn get_object(
                &self,
                mut req: S3Request<dto::GetObjectInput>,
            ) -> S3Result<S3Response<dto::GetObjectOutput>> {
                self.not_a_directory(&req.input.bucket, &req.input.key)?;
                // s3s-fs 0.14.1 seeks to `end - N` for `Range: bytes=-N` without clamping, so a
                // suffix longer than the object fails with a 500; S3 returns the whole object.
                if let Some(dto::Range::Suffix { length }) = req.input.range {
                    let head = dto::HeadObjectInput {
                        bucket: req.input.bucket.clone(),
                        key: req.input.key.clone(),
                        ..Default::default()
                    };
                    let head = self.fs.head_object(req.clone().map_input(|_| head)).await?;
                    let size = head.output.content_length.unwrap_or(0);
                    if u64::try_from(size).is_ok_and(|size| length >= size) {
                        req.input.range = None;
                    }
                }
                self.fs.get_object(req).await
            }
        }
    };
}

locked_fs_s3! {
    read {
        create_bucket: CreateBucketInput => CreateBucketOutput;
        head_bucket: HeadBucketInput => HeadBucketOutput;
        get_bucket_location: GetBucketLocationInput => GetBucketLocationOutput;
        list_buckets: ListBucketsInput => ListBucketsOutput;
        list_objects: ListObjectsInput => ListObjectsOutput;
        list_objects_v2: ListObjectsV2Input => ListObjectsV2Output;
        create_multipart_upload: CreateMultipartUploadInput => CreateMultipartUploadOutput;
        upload_part: UploadPartInput => UploadPartOutput;
        list_parts: ListPartsInput => ListPartsOutput;
        abort_multipart_upload: AbortMultipartUploadInput => AbortMultipartUploadOutput;
    }
    write {
        put_object: PutObjectInput => PutObjectOutput;
        copy_object: CopyObjectInput => CopyObjectOutput;
        complete_multipart_upload: CompleteMultipartUploadInput => CompleteMultipartUploadOutput;
        delete_object: DeleteObjectInput => DeleteObjectOutput;
        delete_objects: DeleteObjectsInput => DeleteObjectsOutput;
    }
}
