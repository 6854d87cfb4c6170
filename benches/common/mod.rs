//! What several benches share (included with `#[path]`; not a bench of its own).

use std::collections::BTreeMap;

use perago::__private::{LakefsClient, UploadSource};
use perago::CancelToken;

/// The benches' error type.
pub type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Creates `repo` and commits `objects` on main with `threads` upload threads; returns the
/// commit.
pub fn seed(
    client: &LakefsClient,
    repo: &str,
    objects: &[(String, Vec<u8>)],
    threads: usize,
) -> BenchResult<String> {
    let never = CancelToken::never();
    client.create_repository(repo, &format!("mem://{repo}"), "main", &never)?;
    let chunk = objects.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| -> BenchResult<()> {
        let handles: Vec<_> = objects
            .chunks(chunk)
            .enumerate()
            .map(|(i, part)| {
                let never = never.clone();
                std::thread::Builder::new()
                    .name(format!("bench-seed-{i}"))
                    .spawn_scoped(scope, move || {
                        part.iter().try_for_each(|(key, bytes)| {
                            client
                                .upload_object(
                                    repo,
                                    "main",
                                    key,
                                    UploadSource::Bytes(bytes),
                                    &never,
                                )
                                .map(drop)
                        })
                    })
            })
            .collect::<Result<_, _>>()?;
        for handle in handles {
            handle.join().map_err(|_| "seed thread panicked")??;
        }
        Ok(())
    })?;
    Ok(client
        .commit(repo, "main", "bench seed", &BTreeMap::new(), &never)?
        .id)
}
