//! The archive phase into the in-process S3-protocol server, with its requests counted.

use std::collections::HashSet;

use crate::resp::Raw;
use crate::s3::S3Sandbox;
use crate::stats::{s3_requests, ArchiveStats, Commands};
use crate::util::{clear_chains, streamtier};

/// What the S3 phase measured.
pub struct S3Run {
    /// Peak RSS of the archive run, MiB.
    pub rss: f64,
    /// What the archive run did.
    pub stats: ArchiveStats,
    /// Seconds of a replay with new ids of the whole S3 archive (targets deleted after).
    pub replay_secs: f64,
}

/// Archives again into the in-process S3-protocol server (the chain cache in Redis is cleared
/// first: it belongs to the local archive), then replays that archive with new ids; answers
/// what both did.
pub fn archive_to_s3(
    addr: &str,
    config: &str,
    partitions: u64,
    entries: u64,
    cells: u64,
    latency: std::time::Duration,
) -> S3Run {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let sandbox = rt.block_on(S3Sandbox::start());
    sandbox.set_latency(latency);
    clear_chains(addr, partitions);
    let env = vec![
        (
            "STREAMTIER_STORE__URL",
            format!("s3://{}/bench", sandbox.bucket()),
        ),
        ("STREAMTIER_STORE__ENDPOINT", sandbox.endpoint()),
        ("STREAMTIER_STORE__REGION", "us-east-1".to_string()),
        ("STREAMTIER_STORE__FORCE_PATH_STYLE", "true".to_string()),
        ("AWS_ACCESS_KEY_ID", sandbox.access_key().to_string()),
        ("AWS_SECRET_ACCESS_KEY", sandbox.secret_key().to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
    ];
    let mut raw = Raw::connect(addr);
    let logged = sandbox.requests().len();
    let commands = Commands::snapshot(&mut raw);
    let cpu = raw.cpu_seconds();
    let (secs, rss, _) = streamtier(&["archive", "--once", "--config", config], &env);
    let cpu = raw.cpu_seconds() - cpu;
    let commands = Commands::snapshot(&mut raw).since(&commands);
    let log = sandbox.requests()[logged..].to_vec();
    // Distinct keys: a multipart upload PUTs its parts to the object's key too.
    let objects: HashSet<&str> = log
        .iter()
        .filter(|(method, path)| method == "PUT" && path.ends_with(".parquet"))
        .map(|(_, path)| path.as_str())
        .collect();
    let bytes = rt.block_on(parquet_bytes(&sandbox));
    let (replay_secs, _, _) = streamtier(
        &[
            "replay",
            "--config",
            config,
            "--topic",
            "bench",
            "--ids",
            "new",
            "--target",
            "s3fresh:{partition}",
        ],
        &env,
    );
    for i in 0..partitions {
        let key = format!("s3fresh:{i}");
        assert_eq!(raw.integer(&["DEL", &key]), 1, "DEL {key}");
    }
    // The local archive's chain cache must come back for the replays that follow: clear it again.
    clear_chains(addr, partitions);
    let stats = ArchiveStats {
        entries,
        secs,
        objects: objects.len() as u64,
        cells,
        bytes,
        redis_cpu: cpu,
        commands,
        s3: Some(s3_requests(&log, sandbox.bucket())),
    };
    drop(sandbox);
    S3Run {
        rss,
        stats,
        replay_secs,
    }
}

/// The bytes of the `.parquet` objects in the sandbox's bucket.
async fn parquet_bytes(sandbox: &S3Sandbox) -> u64 {
    let client = sandbox.client();
    let (mut total, mut token) = (0u64, None);
    loop {
        let page = client
            .list_objects_v2()
            .bucket(sandbox.bucket())
            .set_continuation_token(token)
            .send()
            .await
            .expect("list the sandbox bucket");
        total += page
            .contents()
            .iter()
            .filter(|o| o.key().is_some_and(|k| k.ends_with(".parquet")))
            .filter_map(|o| o.size())
            .map(|s| s.max(0) as u64)
            .sum::<u64>();
        token = page.next_continuation_token().map(str::to_string);
        if token.is_none() {
            return total;
        }
    }
}
