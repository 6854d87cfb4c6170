//! Memory stays bounded by the transfer pool, not by file size: a 1 GiB object is uploaded
//! (the dev server spools it to disk) and downloaded (streamed to the attempt's file), and
//! the process's peak RSS (`VmHWM`) grows by far less than the object.

use std::io::Write as _;

use perago::__private::{LakefsClient, LakefsClientOptions, UploadSource, download_prefix};
use perago::{CancelToken, Secret};

use crate::lakefs_publication::harness::Env;

const GIB: u64 = 1024 * 1024 * 1024;
/// Allowed growth of the peak RSS: the copy buffers of the transfer pool (64 KiB per
/// thread), the server's connection threads and their buffers, allocator slack — a
/// sixteenth of the object (one run measured 2 MiB).
const PEAK_GROWTH_LIMIT: u64 = 64 * 1024 * 1024;

/// `VmHWM` of this process in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

#[test]
fn a_one_gib_object_goes_up_and_down_in_bounded_memory() {
    let env = Env::start();
    env.create_repo("huge");
    let scratch = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let source = scratch.path().join("big.bin");
    {
        let file = std::fs::File::create(&source).unwrap_or_else(|e| panic!("{e}"));
        let mut writer = std::io::BufWriter::new(file);
        let mut block: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 247) as u8).collect();
        for round in 0..GIB / (1024 * 1024) {
            block[0] = round as u8;
            writer.write_all(&block).unwrap_or_else(|e| panic!("{e}"));
        }
        writer.flush().unwrap_or_else(|e| panic!("{e}"));
    }
    let before = peak_rss();
    let never = CancelToken::never();
    // The server hashes the whole body before it answers: allow for a loaded machine.
    let (key, secret) = env.credentials();
    let options = LakefsClientOptions {
        request_timeout: std::time::Duration::from_secs(600),
        max_attempts: 1,
        ..LakefsClientOptions::default()
    };
    let client = &LakefsClient::new(
        &env.dev().lakefs_endpoint(),
        key,
        &Secret::new(secret.into()),
        options,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let uploaded = client
        .upload_object(
            "huge",
            "main",
            "big.bin",
            UploadSource::File(&source),
            &never,
        )
        .unwrap_or_else(|e| panic!("upload: {e}"));
    assert_eq!(uploaded.size_bytes, Some(GIB));
    let commit = client
        .commit(
            "huge",
            "main",
            "one big object",
            &Default::default(),
            &never,
        )
        .unwrap_or_else(|e| panic!("commit: {e}"));
    let dest = scratch.path().join("attempt");
    std::fs::create_dir_all(&dest).unwrap_or_else(|e| panic!("{e}"));
    let snapshot = download_prefix(client, "huge", &commit.id, "", &dest, 16, &never)
        .unwrap_or_else(|e| panic!("download: {e}"));
    let after = peak_rss();
    assert_eq!(snapshot.len(), 1);
    let got = std::fs::metadata(dest.join("big.bin"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert_eq!(got, GIB);
    assert!(
        files_equal(&source, &dest.join("big.bin")),
        "downloaded bytes differ"
    );
    assert!(before > 0, "VmHWM readable");
    eprintln!(
        "peak RSS {} MiB before, {} MiB after a 1 GiB upload and download",
        before / (1024 * 1024),
        after / (1024 * 1024)
    );
    assert!(
        after.saturating_sub(before) < PEAK_GROWTH_LIMIT,
        "peak RSS grew by {} MiB for a 1 GiB transfer",
        after.saturating_sub(before) / (1024 * 1024)
    );
}

fn files_equal(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::io::Read as _;
    let (Ok(mut a), Ok(mut b)) = (std::fs::File::open(a), std::fs::File::open(b)) else {
        return false;
    };
    let mut left = vec![0u8; 1 << 20];
    let mut right = vec![0u8; 1 << 20];
    loop {
        let n = a.read(&mut left).unwrap_or(0);
        if n == 0 {
            return b.read(&mut right).unwrap_or(1) == 0;
        }
        if b.read_exact(&mut right[..n]).is_err() || left[..n] != right[..n] {
            return false;
        }
    }
}
