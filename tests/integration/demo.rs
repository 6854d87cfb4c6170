//! The one-command main job, small: every workflow completes and the publications show up
//! as commits on the target branch.

use perago::__private::{DemoOptions, run_demo};

#[test]
fn the_demo_completes_and_prints_the_commit_history() {
    let options = DemoOptions {
        workflows: 40,
        threads: 4,
        publications: 2,
        progress: false,
    };
    let mut out = Vec::new();
    let report = run_demo(&options, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!((report.completed, report.failed), (42, 0), "{text}");
    assert!(text.contains("p50"), "{text}");
    assert_eq!(text.matches("perago: publish").count(), 2, "{text}");
    assert!(
        text.contains("catalog.read matched 6 feature files"),
        "{text}"
    );
}
